"""Load an extract folder into the `staging` schema, accounting for every input row.

For each canonical table (pipelines/extract_spec.py) the loader:
1. finds its file (`<table>.csv`, `.csv.gz` or `.parquet`) and checks the header has every required column;
2. reads it with DuckDB's own reader, every field as text, keeping lines that do not parse as records
   (DuckDB's `store_rejects`) as `malformed_line` rejects with their line number;
3. types and normalises each field in SQL and gives every row at most one reject reason, the first that applies
   in the order of extract_spec.REJECT_REASONS;
4. writes the good rows to `staging.<table>` and the others to `ingest.rejects` (file, line, column, reason, the
   raw record), and checks that input records = loaded + rejected.

This module is one of the few places with DuckDB-specific SQL (read_csv/read_parquet options, store_rejects,
ASOF JOIN); the models under sql/ stay plain.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb

from pipelines import extract_spec as spec
from pipelines.extract_spec import Column, Table
from pipelines.ingest.containment import inside_folder

Log = Callable[[str], None]


class ExtractError(Exception):
    """The extract cannot be loaded at all (a required file or column is missing, a file is ambiguous)."""


@dataclass
class TableLoad:
    """What happened to one table's file."""

    table: str
    file: str
    input_records: int
    loaded: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    physical_lines: int | None = None

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


# ---------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------
def find_table_file(extract_dir: Path, table: Table) -> Path | None:
    """The table's file in the extract, None when absent; an error when several formats are present."""
    found = [extract_dir / f"{table.name}{suffix}" for suffix in spec.FILE_SUFFIXES]
    found = [p for p in found if p.exists()]
    if len(found) > 1:
        raise ExtractError(
            f"{extract_dir}: table {table.name} is present in several files ({', '.join(p.name for p in found)}); "
            "keep one."
        )
    return inside_folder(extract_dir, found[0].name, f"table file of {table.name}") if found else None


def is_parquet(path: Path) -> bool:
    return path.name.endswith(".parquet")


def read_csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise ExtractError(f"{path}: the file is empty; line 1 must be a header naming the columns.")
    return [name.strip() for name in header]


def file_columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    if is_parquet(path):
        rows = con.execute("SELECT name FROM parquet_schema(?) WHERE num_children IS NULL", [str(path)]).fetchall()
        return [r[0] for r in rows]
    return read_csv_header(path)


@dataclass(frozen=True)
class FileFingerprint:
    """What the manifest records of a file, measured independently of DuckDB's reader."""

    sha256: str  # of the file's bytes as stored (compressed for .csv.gz)
    physical_lines: int | None  # CSV data lines (newlines minus the header); None for Parquet


def _count_lines(blocks) -> int:
    count, last = 0, b"\n"
    for block in blocks:
        count += block.count(b"\n")
        last = block[-1:]
    if last != b"\n":
        count += 1  # a last line without a trailing newline
    return max(count - 1, 0)


def _blocks(handle, size: int = 1 << 22):
    return iter(lambda: handle.read(size), b"")


def fingerprint_file(path: Path) -> FileFingerprint:
    """The file's sha256 and, for CSV, its data lines, in one read of the file (two for .csv.gz)."""
    digest = hashlib.sha256()
    lines = None
    with open(path, "rb") as handle:
        if path.name.endswith(".csv"):
            def hashed_blocks():
                for block in _blocks(handle):
                    digest.update(block)
                    yield block
            lines = _count_lines(hashed_blocks())
        else:
            for block in _blocks(handle):
                digest.update(block)
    if path.name.endswith(".csv.gz"):
        with gzip.open(path, "rb") as handle:
            lines = _count_lines(_blocks(handle))
    return FileFingerprint(digest.hexdigest(), lines)


class FileFingerprints:
    """Fingerprints the extract's files in a background thread while DuckDB loads them.

    Reading 7 GB of CSV once more costs about 20 s on its own; hashlib and DuckDB both release the GIL, so the
    read overlaps the load instead of following it."""

    def __init__(self, paths: list[Path]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fingerprint")
        self._futures = {path: self._pool.submit(fingerprint_file, path) for path in paths}
        self._pool.shutdown(wait=False)

    def __getitem__(self, path: Path) -> FileFingerprint:
        return self._futures[path].result()


# ---------------------------------------------------------------------------------------------------------------
# SQL expressions built from the spec (the fact lists live in extract_spec, never in SQL text)
# ---------------------------------------------------------------------------------------------------------------
def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _value_set_case(expr: str, values: dict[str, tuple[str, ...]], fold: str) -> str:
    """CASE that maps accepted spellings (compared after `fold`) to canonical values; others pass unchanged."""
    whens = []
    for canonical, spellings in values.items():
        listed = ", ".join(_quote_literal(s) for s in spellings)
        whens.append(f"WHEN {fold} IN ({listed}) THEN {_quote_literal(canonical)}")
    return f"CASE WHEN {expr} IS NULL THEN NULL {' '.join(whens)} ELSE trim({expr}) END"


def fold_expr(column: Column, typed: str) -> str | None:
    """The spelling a coded field is compared in (upper case, trimmed, ...), or None for other columns.

    The loader computes it once per row in its own column: DuckDB evaluates an expression again in every CASE
    branch that repeats it, and a regular expression in each of eight branches cost more than the CSV parse.
    """
    if column.kind in ("sex", "visit_type", "laterality"):
        return f"upper(trim({typed}))"
    if column.kind == "vocabulary":
        return f"upper(regexp_replace(trim({typed}), '[\\s_\\-]', '', 'g'))"
    if column.kind == "code":
        return f"upper(replace(trim({typed}), '.', ''))"
    return None


def vocabulary_expr(raw: str, folded: str) -> str:
    """The canonical vocabulary name of a field, from its folded spelling (see `fold_expr`)."""
    aliases: dict[str, tuple[str, ...]] = {}
    for alias, vocabulary in spec.VOCABULARY_ALIASES.items():
        aliases.setdefault(vocabulary, ())
        aliases[vocabulary] += (alias,)
    return _value_set_case(raw, aliases, folded)


def code_expr(code_raw: str, code_folded: str, vocabulary_normalised: str) -> str:
    """ICD-10-CM codes get the dot after their third character; every code is trimmed and upper-cased.

    `code_folded` is the code without dots, trimmed and upper-cased (see `fold_expr`)."""
    bare = code_folded
    icd = f"CASE WHEN length({bare}) > 3 THEN substr({bare}, 1, 3) || '.' || substr({bare}, 4) ELSE {bare} END"
    return f"CASE WHEN {vocabulary_normalised} = 'ICD10CM' THEN {icd} ELSE upper(trim({code_raw})) END"


def typed_expr(column: Column, raw: str, source_type: str) -> str:
    """SQL that turns the raw field into the column's staging type (NULL when it does not parse)."""
    if source_type.upper() == column.type:
        return raw
    if column.type == "DATE":
        if source_type.upper().startswith("TIMESTAMP"):
            return f"CAST({raw} AS DATE)"
        return f"CAST(try_strptime(trim({raw}), {_quote_literal(spec.DATE_FORMAT)}) AS DATE)"
    if column.type in ("INTEGER", "DOUBLE", "BIGINT"):
        return f"TRY_CAST(trim(CAST({raw} AS VARCHAR)) AS {column.type})"
    return f"NULLIF(trim(CAST({raw} AS VARCHAR)), '')"


def normalised_expr(column: Column, table: Table, typed_ref: Callable[[str], str],
                    folded_ref: Callable[[str], str]) -> str:
    """SQL for the staging value of a column; `typed_ref(name)` / `folded_ref(name)` name the typed and folded
    (`fold_expr`) columns of the same row."""
    typed = typed_ref(column.name)
    if column.kind == "sex":
        return _value_set_case(typed, spec.SEX_VALUES, folded_ref(column.name))
    if column.kind == "visit_type":
        return _value_set_case(typed, spec.VISIT_TYPES, folded_ref(column.name))
    if column.kind == "laterality":
        return _value_set_case(typed, spec.LATERALITY_VALUES, folded_ref(column.name))
    if column.kind == "vocabulary":
        return vocabulary_expr(typed, folded_ref(column.name))
    if column.kind == "code":
        vocabulary_column = next(v for v, c in table.coded if c == column.name)
        vocabulary = vocabulary_expr(typed_ref(vocabulary_column), folded_ref(vocabulary_column))
        return code_expr(typed, folded_ref(column.name), vocabulary)
    if table.name == "drug_exposure" and column.name == "drug_exposure_end_date":
        # The last day of supply: the recorded end, else start + days_supply - 1, else the start day itself.
        start, days = typed_ref("drug_exposure_start_date"), typed_ref("days_supply")
        return f"coalesce({typed}, CAST({start} + (coalesce({days}, 1) - 1) * INTERVAL 1 DAY AS DATE))"
    return typed


def parse_failure_kind(column: Column) -> str | None:
    if column.type == "DATE":
        return "unparseable_date"
    if column.type in ("INTEGER", "DOUBLE", "BIGINT"):
        return "unparseable_number"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Loading one table
# ---------------------------------------------------------------------------------------------------------------
def create_ingest_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute("CREATE SCHEMA IF NOT EXISTS ingest")
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS ingest.rejects (
            table_name VARCHAR, file_name VARCHAR, line BIGINT, column_name VARCHAR,
            reason VARCHAR, detail VARCHAR, record VARCHAR
        )"""
    )


def _source_relation_sql(path: Path, header: list[str], numbered: bool = True) -> str:
    """SQL for the file as raw records: `_record` (1-based record number, when `numbered`) and the file's columns.

    Numbering CSV records takes a window (row_number() OVER ()), which runs the whole parse on one thread; the
    canonical path leaves it out and uses the staging table's rowid instead (see `load_table`)."""
    if is_parquet(path):
        return f"SELECT file_row_number + 1 AS _record, * EXCLUDE (file_row_number) " \
               f"FROM read_parquet({_quote_literal(str(path))}, file_row_number = true)"
    columns = "{" + ", ".join(f"{_quote_literal(name)}: 'VARCHAR'" for name in header) + "}"
    numbering = "row_number() OVER () AS _record, " if numbered else ""
    return (
        f"SELECT {numbering}* FROM read_csv("
        f"{_quote_literal(str(path))}, header = true, auto_detect = false, columns = {columns}, "
        "delim = ',', quote = '\"', escape = '\"', store_rejects = true, "
        "rejects_table = '_ingest_reject_errors', rejects_scan = '_ingest_reject_scans')"
    )


def load_table(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    path: Path,
    log: Log = lambda message: None,
    shape_sql: str | None = None,
) -> TableLoad:
    """Load one file into staging.<table> and ingest.rejects; return the counts.

    The file is parsed once, straight into the staging table, with each row's first parse problem in helper
    columns; duplicate ids and unknown persons are then found with hash joins, line numbers are worked out for
    the rejected rows only, the rejected rows are deleted and the helper columns dropped (both cheap in DuckDB,
    unlike a second copy of the table).

    ``shape_sql`` [extract formats, issue 9; see pipelines/ingest/formats/]: a SELECT over the view ``_raw_source``
    (the file as raw records, read exactly as below) returning ``_record`` and canonical columns, one row per raw
    record. Everything after that (typing, reject reasons, line numbers, accounting) is the canonical path's.
    """
    header = file_columns(con, path)
    if shape_sql is not None:  # [extract formats] shape a non-canonical source file into the canonical columns
        con.execute(f"CREATE OR REPLACE TEMP VIEW _raw_source AS {_source_relation_sql(path, header)}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW _shaped_source AS {shape_sql}")
        header = [row[0] for row in con.execute("DESCRIBE _shaped_source").fetchall() if row[0] != "_record"]
    by_lower = {name.lower(): name for name in header}
    missing = [c for c in table.required_columns if c not in by_lower]
    if missing:
        raise ExtractError(
            f"{path}: required column(s) {', '.join(missing)} missing from the header "
            f"(found: {', '.join(header)}). See docs/extract_format.md."
        )
    ignored = [name for name in header if name.lower() not in table.column_names]

    log(f"{table.name}: reading {path.name}")
    con.execute("DROP TABLE IF EXISTS _ingest_reject_errors")
    con.execute("DROP TABLE IF EXISTS _ingest_reject_scans")
    # A record's number (line numbers, which copy of a repeated id came first): from the source when it has one
    # (Parquet row numbers, shaped sources); for canonical CSV the staging table's rowid, which with
    # preserve_insertion_order (pipelines/warehouse.py) follows the file's order and lets the parse run in parallel.
    numbered = shape_sql is not None or is_parquet(path)

    def record_of(alias: str | None = None) -> str:
        prefix = f"{alias}." if alias else ""
        return f"{prefix}_record" if numbered else f"({prefix}rowid + 1)"

    if shape_sql is None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _source AS {_source_relation_sql(path, header, numbered)}")
    else:  # [extract formats]
        con.execute("CREATE OR REPLACE TEMP VIEW _source AS SELECT * FROM _shaped_source")
    source_types = {row[0].lower(): row[1] for row in con.execute("DESCRIBE _source").fetchall()}

    # -- 1. one pass over the file: staging values, the first parse problem, the raw record of rejected rows ----
    def raw_ref(name: str) -> str:
        return _quote_ident("_raw_" + name)

    def typed_ref(name: str) -> str:
        return _quote_ident("_typed_" + name)

    def folded_ref(name: str) -> str:
        return _quote_ident("_folded_" + name)

    inner = ["_record"] if numbered else []
    for column in table.columns:
        present = column.name in by_lower
        raw = _quote_ident(by_lower[column.name]) if present else "NULL"
        source_type = source_types.get(column.name, "VARCHAR") if present else "VARCHAR"
        typed = typed_expr(column, raw, source_type)
        inner.append(f"{raw} AS {raw_ref(column.name)}")
        inner.append(f"{typed} AS {typed_ref(column.name)}")
        folded = fold_expr(column, typed)
        if folded is not None:
            inner.append(f"{folded} AS {folded_ref(column.name)}")

    checks: list[tuple[str, str, str]] = []  # (condition, reason, column), in REJECT_REASONS order
    for column in table.columns:
        if column.required:
            raw = raw_ref(column.name)
            checks.append((f"{raw} IS NULL OR trim(CAST({raw} AS VARCHAR)) = ''", "missing_required_field",
                           column.name))
    for kind in ("unparseable_date", "unparseable_number"):
        for column in table.columns:
            if parse_failure_kind(column) == kind:
                raw = raw_ref(column.name)
                checks.append((f"{raw} IS NOT NULL AND trim(CAST({raw} AS VARCHAR)) <> '' "
                               f"AND {typed_ref(column.name)} IS NULL", kind, column.name))
    reason_sql = "CASE " + " ".join(f"WHEN {c} THEN {_quote_literal(r)}" for c, r, _ in checks) + " END"
    column_sql = "CASE " + " ".join(f"WHEN {c} THEN {_quote_literal(col)}" for c, _, col in checks) + " END"
    raw_struct = "{" + ", ".join(f"{_quote_literal(c.name)}: {raw_ref(c.name)}" for c in table.columns) + "}"
    staged = [
        f"CAST({normalised_expr(column, table, typed_ref, folded_ref)} AS {column.type}) AS {_quote_ident(column.name)}"
        for column in table.columns
    ]
    staging_table = f"staging.{table.name}"
    con.execute(f"DROP TABLE IF EXISTS {staging_table}")
    con.execute(
        f"""
        CREATE TABLE {staging_table} AS
        SELECT {', '.join(staged)}, {'_record, ' if numbered else ''}_reason, _reason_column,
               CASE WHEN _reason IS NOT NULL THEN CAST(to_json({raw_struct}) AS VARCHAR) END AS _raw_record
        FROM (SELECT *, {reason_sql} AS _reason, {column_sql} AS _reason_column
              FROM (SELECT {', '.join(inner)} FROM _source))
        """
    )

    # -- 2. rows that parse but repeat an earlier id, or name a person the person table does not have -----------
    pk = table.primary_key
    typed_record = "CAST(to_json({" + ", ".join(
        f"{_quote_literal(c.name)}: p.{_quote_ident(c.name)}" for c in table.columns) + "}) AS VARCHAR)"
    con.execute("CREATE OR REPLACE TEMP TABLE _duplicates (_record BIGINT)")
    if pk:
        con.execute(
            f"""
            INSERT INTO _duplicates
            SELECT {record_of('p')} FROM {staging_table} p JOIN (
                SELECT {_quote_ident(pk)} AS id, min({record_of()}) AS first_record
                FROM {staging_table} WHERE _reason IS NULL GROUP BY 1 HAVING count(*) > 1
            ) repeated ON repeated.id = p.{_quote_ident(pk)} AND {record_of('p')} > repeated.first_record
            WHERE p._reason IS NULL"""
        )
    con.execute("CREATE OR REPLACE TEMP TABLE _unknown_person (_record BIGINT)")
    if table.references_person:
        # A duplicate row is reported as a duplicate only (the first reason that applies).
        con.execute(
            f"""
            INSERT INTO _unknown_person
            SELECT {record_of('p')} FROM {staging_table} p ANTI JOIN staging.person known ON known.person_id = p.person_id
            WHERE p._reason IS NULL
            EXCEPT SELECT _record FROM _duplicates"""
        )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _late_rejects AS
        SELECT {record_of('p')} AS _record, 'duplicate_primary_key' AS reason,
               {_quote_literal(pk or '')} AS column_name,
               {_quote_literal(pk or '')} || ' repeats an earlier row''s id' AS detail, {typed_record} AS record
        FROM {staging_table} p SEMI JOIN _duplicates d ON d._record = {record_of('p')}
        UNION ALL
        SELECT {record_of('p')}, 'unknown_person', 'person_id',
               'person_id ' || p.person_id || ' is not in the person table', {typed_record}
        FROM {staging_table} p SEMI JOIN _unknown_person u ON u._record = {record_of('p')}
        """
    )

    # -- 3. rejects, with line numbers worked out for them only ------------------------------------------------
    malformed = 0
    if not is_parquet(path):
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _malformed AS
            SELECT line, any_value(error_type)::VARCHAR AS error_type, any_value(error_message) AS error_message,
                   any_value(csv_line) AS csv_line
            FROM _ingest_reject_errors GROUP BY line
            """
        )
        malformed = con.execute("SELECT count(*) FROM _malformed").fetchone()[0]
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _row_rejects AS
        SELECT {record_of()} AS _record, _reason AS reason, _reason_column AS column_name,
               CASE _reason
                    WHEN 'missing_required_field' THEN 'required column ' || _reason_column || ' is empty'
                    ELSE _reason_column || ' cannot be read as ' ||
                         CASE _reason WHEN 'unparseable_date' THEN 'a YYYY-MM-DD date' ELSE 'a number' END
               END AS detail,
               _raw_record AS record
        FROM {staging_table} WHERE _reason IS NOT NULL
        UNION ALL SELECT * FROM _late_rejects
        """
    )
    con.execute(
        f"""
        INSERT INTO ingest.rejects
        SELECT {_quote_literal(table.name)}, {_quote_literal(path.name)}, {_line_number_sql(path, malformed)},
               r.column_name, r.reason, r.detail, r.record
        FROM _row_rejects r {_line_number_join(malformed)}
        ORDER BY r._record
        """
    )
    if malformed:
        con.execute(
            f"""
            INSERT INTO ingest.rejects
            SELECT {_quote_literal(table.name)}, {_quote_literal(path.name)}, line, NULL, 'malformed_line',
                   error_type || ': ' || error_message, csv_line
            FROM _malformed ORDER BY line
            """
        )

    # -- 4. the staging table keeps the rows without a reason, and only the spec's columns ------------------------
    parsed_records = con.execute(f"SELECT count(*) FROM {staging_table}").fetchone()[0]
    con.execute(f"DELETE FROM {staging_table} WHERE _reason IS NOT NULL "
                f"OR {record_of()} IN (SELECT _record FROM _late_rejects)")
    for helper in (("_record",) if numbered else ()) + ("_reason", "_reason_column", "_raw_record"):
        con.execute(f"ALTER TABLE {staging_table} DROP COLUMN {helper}")

    counts = dict(con.execute("SELECT reason, count(*) FROM _row_rejects GROUP BY 1").fetchall())
    if malformed:
        counts["malformed_line"] = malformed
    loaded = con.execute(f"SELECT count(*) FROM {staging_table}").fetchone()[0]
    result = TableLoad(
        table=table.name,
        file=path.name,
        input_records=parsed_records + malformed,
        loaded=loaded,
        rejected_by_reason={reason: counts.get(reason, 0) for reason in spec.REJECT_REASON_CODES},
        ignored_columns=ignored,
    )
    if result.input_records != result.loaded + result.rejected:
        raise AssertionError(f"{path}: row accounting does not add up: {result}")
    for work_table in ("_duplicates", "_unknown_person", "_late_rejects", "_row_rejects", "_malformed"):
        con.execute(f"DROP TABLE IF EXISTS {work_table}")
    log(
        f"{table.name}: {result.input_records:,} records, {result.loaded:,} loaded, {result.rejected:,} rejected"
        + (f" ({', '.join(f'{k} {v:,}' for k, v in result.rejected_by_reason.items() if v)})" if result.rejected else "")
    )
    return result


def _line_number_sql(path: Path, malformed: int) -> str:
    """A rejected row's line: the header is line 1, and DuckDB's malformed lines are skipped over."""
    if is_parquet(path):
        return "r._record"  # Parquet has no lines: the row number in the file
    return "r._record + 1 + coalesce(m.rank, 0)" if malformed else "r._record + 1"


def _line_number_join(malformed: int) -> str:
    """For record r, the malformed lines before it are those with fewer than r good records before them."""
    if not malformed:
        return ""
    return """
        ASOF LEFT JOIN (
            SELECT good_before, max(rank) AS rank FROM (
                SELECT line - row_number() OVER (ORDER BY line) - 1 AS good_before,
                       row_number() OVER (ORDER BY line) AS rank
                FROM _malformed) GROUP BY good_before
        ) m ON r._record > m.good_before"""



# ---------------------------------------------------------------------------------------------------------------
# The whole extract
# ---------------------------------------------------------------------------------------------------------------
def resolve_extract(extract_dir: Path) -> dict[str, Path | None]:
    """The file of every canonical table; an error naming every required table that has no file."""
    if not extract_dir.is_dir():
        raise ExtractError(f"{extract_dir}: no such extract folder.")
    files = {table.name: find_table_file(extract_dir, table) for table in spec.TABLES}
    missing = [t.name for t in spec.TABLES if t.required and files[t.name] is None]
    if missing:
        expected = ", ".join(f"{name}.csv" for name in missing)
        raise ExtractError(
            f"{extract_dir}: required table file(s) missing: {expected} (or .csv.gz / .parquet). "
            "See docs/extract_format.md."
        )
    return files


def write_manifest(con: duckdb.DuckDBPyConnection, extract_dir: Path, files: dict[str, Path | None],
                   loads: dict[str, TableLoad], fingerprints: FileFingerprints) -> None:
    con.execute(
        """
        CREATE OR REPLACE TABLE ingest.manifest (
            extract_folder VARCHAR, table_name VARCHAR, file_name VARCHAR, file_format VARCHAR,
            size_bytes BIGINT, sha256 VARCHAR, input_records BIGINT, physical_lines BIGINT
        )"""
    )
    for name, path in files.items():
        if path is None:
            continue
        load = loads[name]
        fmt = "parquet" if is_parquet(path) else ("csv.gz" if path.name.endswith(".gz") else "csv")
        con.execute(
            "INSERT INTO ingest.manifest VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [str(extract_dir.resolve()), name, path.name, fmt, path.stat().st_size, fingerprints[path].sha256,
             load.input_records, load.physical_lines],
        )


def write_load_counts(con: duckdb.DuckDBPyConnection, loads: dict[str, TableLoad]) -> None:
    reason_columns = ", ".join(f"{reason} BIGINT" for reason in spec.REJECT_REASON_CODES)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE ingest.load_counts (
            table_name VARCHAR, file_name VARCHAR, input_records BIGINT, loaded BIGINT, rejected BIGINT,
            {reason_columns}, ignored_columns VARCHAR
        )"""
    )
    for load in loads.values():
        con.execute(
            f"INSERT INTO ingest.load_counts VALUES ({', '.join(['?'] * (6 + len(spec.REJECT_REASON_CODES)))})",
            [load.table, load.file, load.input_records, load.loaded, load.rejected,
             *[load.rejected_by_reason[r] for r in spec.REJECT_REASON_CODES], json.dumps(load.ignored_columns)],
        )


def load_extract(con: duckdb.DuckDBPyConnection, extract_dir: Path, log: Log = lambda m: None) -> dict[str, TableLoad]:
    """Load every table of the extract (person first, so events can be checked against it)."""
    extract_dir = Path(extract_dir)
    files = resolve_extract(extract_dir)
    create_ingest_schema(con)
    con.execute("DELETE FROM ingest.rejects")
    fingerprints = FileFingerprints([path for path in files.values() if path is not None])
    loads: dict[str, TableLoad] = {}
    for table in spec.TABLES:
        path = files[table.name]
        if path is None:
            create_empty_staging_table(con, table)
            loads[table.name] = TableLoad(table.name, "", 0, 0, {r: 0 for r in spec.REJECT_REASON_CODES})
            log(f"{table.name}: no file in the extract (optional table), created empty")
            continue
        loads[table.name] = load_table(con, table, path, log)
        loads[table.name].physical_lines = fingerprints[path].physical_lines
    write_load_counts(con, loads)
    write_manifest(con, extract_dir, files, loads, fingerprints)
    comment_tables(con)
    return loads


def comment_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The staging tables' and columns' comments from the extract spec, so analysts see the extract's data
    dictionary in the database itself (every other table is described in pipelines/data_dictionary.yaml)."""
    for table in spec.TABLES:
        con.execute(f"COMMENT ON TABLE staging.{table.name} IS {_quote_literal(table.description)}")
        for column in table.columns:
            con.execute(f"COMMENT ON COLUMN staging.{table.name}.{_quote_ident(column.name)} "
                        f"IS {_quote_literal(column.description)}")


def create_empty_staging_table(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    columns = ", ".join(f"{_quote_ident(c.name)} {c.type}" for c in table.columns)
    con.execute(f"CREATE OR REPLACE TABLE staging.{table.name} ({columns})")
