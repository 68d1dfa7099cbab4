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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb

from pipelines import extract_spec as spec
from pipelines.extract_spec import Column, Table

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
    return found[0] if found else None


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def count_physical_lines(path: Path) -> int:
    """Data lines in a CSV (newline count minus the header), measured independently of the CSV parser."""
    opener = gzip.open if path.name.endswith(".gz") else open
    count = 0
    last = b"\n"
    with opener(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            count += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        count += 1  # a last line without a trailing newline
    return max(count - 1, 0)


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


def vocabulary_expr(raw: str) -> str:
    fold = f"upper(regexp_replace(trim({raw}), '[\\s_\\-]', '', 'g'))"
    aliases: dict[str, tuple[str, ...]] = {}
    for alias, vocabulary in spec.VOCABULARY_ALIASES.items():
        aliases.setdefault(vocabulary, ())
        aliases[vocabulary] += (alias,)
    return _value_set_case(raw, aliases, fold)


def code_expr(code_raw: str, vocabulary_normalised: str) -> str:
    """ICD-10-CM codes get the dot after their third character; every code is trimmed and upper-cased."""
    bare = f"upper(replace(trim({code_raw}), '.', ''))"
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


def normalised_expr(column: Column, table: Table, typed_ref: Callable[[str], str]) -> str:
    """SQL for the staging value of a column; `typed_ref(name)` names a typed column of the same row."""
    typed = typed_ref(column.name)
    if column.kind == "sex":
        return _value_set_case(typed, spec.SEX_VALUES, f"upper(trim({typed}))")
    if column.kind == "visit_type":
        return _value_set_case(typed, spec.VISIT_TYPES, f"upper(trim({typed}))")
    if column.kind == "laterality":
        return _value_set_case(typed, spec.LATERALITY_VALUES, f"upper(trim({typed}))")
    if column.kind == "vocabulary":
        return vocabulary_expr(typed)
    if column.kind == "code":
        vocabulary_column = next(v for v, c in table.coded if c == column.name)
        return code_expr(typed, vocabulary_expr(typed_ref(vocabulary_column)))
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


def _source_relation_sql(path: Path, header: list[str]) -> str:
    """SQL for the file as raw records: `_record` (1-based record number) and the file's columns."""
    if is_parquet(path):
        return f"SELECT file_row_number + 1 AS _record, * EXCLUDE (file_row_number) " \
               f"FROM read_parquet({_quote_literal(str(path))}, file_row_number = true)"
    columns = "{" + ", ".join(f"{_quote_literal(name)}: 'VARCHAR'" for name in header) + "}"
    return (
        "SELECT row_number() OVER () AS _record, * FROM read_csv("
        f"{_quote_literal(str(path))}, header = true, auto_detect = false, columns = {columns}, "
        "delim = ',', quote = '\"', escape = '\"', store_rejects = true, "
        "rejects_table = '_ingest_reject_errors', rejects_scan = '_ingest_reject_scans')"
    )


def load_table(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    path: Path,
    log: Log = lambda message: None,
) -> TableLoad:
    """Load one file into staging.<table> and ingest.rejects; return the counts."""
    header = file_columns(con, path)
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
    con.execute(f"CREATE OR REPLACE TEMP VIEW _source AS {_source_relation_sql(path, header)}")
    source_types = {row[0].lower(): row[1] for row in con.execute("DESCRIBE _source").fetchall()}

    # -- per-row parse checks, in REJECT_REASONS order -----------------------------------------------------------
    select_items = ["_record"]
    checks: list[tuple[str, str, str]] = []  # (condition SQL, reason, column)
    for column in table.columns:
        present = column.name in by_lower
        raw = _quote_ident(by_lower[column.name]) if present else "NULL"
        source_type = source_types.get(column.name, "VARCHAR") if present else "VARCHAR"
        typed = typed_expr(column, raw, source_type)
        select_items.append(f"{raw} AS {_quote_ident('_raw_' + column.name)}")
        select_items.append(f"{typed} AS {_quote_ident('_typed_' + column.name)}")
    for column in table.columns:
        if column.required:
            raw = _quote_ident("_raw_" + column.name)
            checks.append((f"{raw} IS NULL OR trim(CAST({raw} AS VARCHAR)) = ''", "missing_required_field",
                           column.name))
    for kind in ("unparseable_date", "unparseable_number"):
        for column in table.columns:
            if parse_failure_kind(column) == kind:
                raw, typed = _quote_ident("_raw_" + column.name), _quote_ident("_typed_" + column.name)
                checks.append((f"{raw} IS NOT NULL AND trim(CAST({raw} AS VARCHAR)) <> '' AND {typed} IS NULL",
                               kind, column.name))
    reason_sql = "CASE " + " ".join(f"WHEN {cond} THEN {_quote_literal(reason)}" for cond, reason, _ in checks) \
                 + " END" if checks else "NULL"
    column_sql = "CASE " + " ".join(f"WHEN {cond} THEN {_quote_literal(col)}" for cond, _, col in checks) \
                 + " END" if checks else "NULL"

    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT *, {reason_sql} AS _reason, {column_sql} AS _reason_column
        FROM (SELECT {', '.join(select_items)} FROM _source)
        """
    )

    # -- malformed lines (DuckDB's reader rejected them) --------------------------------------------------------
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

    # -- record number -> line number, skipping over malformed lines (header is line 1) ------------------------
    if malformed:
        # g = good records before malformed line number `line`; for record r, the malformed lines before it are
        # those with g < r, and their count is the largest rank among them.
        line_sql = """
            SELECT p._record + 1 + coalesce(m.rank, 0) AS _line, p.* FROM _parsed p
            ASOF LEFT JOIN (
                SELECT good_before, max(rank) AS rank FROM (
                    SELECT line - row_number() OVER (ORDER BY line) - 1 AS good_before,
                           row_number() OVER (ORDER BY line) AS rank
                    FROM _malformed) GROUP BY good_before
            ) m ON p._record > m.good_before
        """
    elif is_parquet(path):
        line_sql = "SELECT _record AS _line, * FROM _parsed"  # Parquet: the row number in the file
    else:
        line_sql = "SELECT _record + 1 AS _line, * FROM _parsed"
    con.execute(f"CREATE OR REPLACE TEMP VIEW _lined AS {line_sql}")

    # -- duplicate primary keys and unknown persons, among rows that passed the parse checks -------------------
    pk = table.primary_key
    dup_join, dup_cond = "", "FALSE"
    if pk:
        dup_join = f"""
            LEFT JOIN (
                SELECT {_quote_ident('_typed_' + pk)} AS _dup_key, min(_record) AS _first_record
                FROM _parsed WHERE _reason IS NULL
                GROUP BY 1 HAVING count(*) > 1
            ) dups ON dups._dup_key = l.{_quote_ident('_typed_' + pk)}"""
        dup_cond = "dups._first_record IS NOT NULL AND l._record > dups._first_record"
    person_join, person_cond = "", "FALSE"
    if table.references_person:
        person_join = "LEFT JOIN staging.person known ON known.person_id = l._typed_person_id"
        person_cond = "known.person_id IS NULL"

    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _classified AS
        SELECT l.*,
               CASE WHEN l._reason IS NOT NULL THEN l._reason
                    WHEN {dup_cond} THEN 'duplicate_primary_key'
                    WHEN {person_cond} THEN 'unknown_person' END AS _final_reason,
               CASE WHEN l._reason IS NOT NULL THEN l._reason_column
                    WHEN {dup_cond} THEN {_quote_literal(pk or '')}
                    WHEN {person_cond} THEN 'person_id' END AS _final_column
        FROM _lined l {dup_join} {person_join}
        """
    )

    # -- staging table: typed, normalised, good rows only --------------------------------------------------------
    def typed_ref(name: str) -> str:
        return _quote_ident("_typed_" + name)

    staged = [
        f"CAST({normalised_expr(column, table, typed_ref)} AS {column.type}) AS {_quote_ident(column.name)}"
        for column in table.columns
    ]
    con.execute(f"DROP TABLE IF EXISTS staging.{table.name}")
    con.execute(
        f"CREATE TABLE staging.{table.name} AS SELECT {', '.join(staged)} FROM _classified "
        "WHERE _final_reason IS NULL ORDER BY _record"
    )

    # -- rejects ---------------------------------------------------------------------------------------------
    raw_struct = "{" + ", ".join(f"{_quote_literal(c.name)}: _raw_{c.name}" for c in table.columns) + "}"
    con.execute(
        f"""
        INSERT INTO ingest.rejects
        SELECT {_quote_literal(table.name)}, {_quote_literal(path.name)}, _line, _final_column, _final_reason,
               CASE _final_reason
                    WHEN 'missing_required_field' THEN 'required column ' || _final_column || ' is empty'
                    WHEN 'duplicate_primary_key' THEN _final_column || ' repeats an earlier row''s id'
                    WHEN 'unknown_person' THEN 'person_id ' || coalesce(_typed_person_id, '') ||
                                               ' is not in the person table'
                    ELSE _final_column || ' cannot be read as ' ||
                         CASE _final_reason WHEN 'unparseable_date' THEN 'a YYYY-MM-DD date' ELSE 'a number' END
               END,
               CAST(to_json({raw_struct}) AS VARCHAR)
        FROM _classified WHERE _final_reason IS NOT NULL ORDER BY _line
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

    counts = dict(
        con.execute(
            "SELECT coalesce(_final_reason, '_loaded'), count(*) FROM _classified GROUP BY 1"
        ).fetchall()
    )
    loaded = counts.pop("_loaded", 0)
    if malformed:
        counts["malformed_line"] = malformed
    result = TableLoad(
        table=table.name,
        file=path.name,
        input_records=loaded + sum(counts.values()),
        loaded=loaded,
        rejected_by_reason={reason: counts.get(reason, 0) for reason in spec.REJECT_REASON_CODES},
        ignored_columns=ignored,
        physical_lines=None if is_parquet(path) else count_physical_lines(path),
    )
    staged_rows = con.execute(f"SELECT count(*) FROM staging.{table.name}").fetchone()[0]
    if staged_rows != result.loaded or result.input_records != result.loaded + result.rejected:
        raise AssertionError(f"{path}: row accounting does not add up: {result}")
    for temp in ("_classified", "_parsed", "_malformed"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    log(
        f"{table.name}: {result.input_records:,} records, {result.loaded:,} loaded, {result.rejected:,} rejected"
        + (f" ({', '.join(f'{k} {v:,}' for k, v in result.rejected_by_reason.items() if v)})" if result.rejected else "")
    )
    return result


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
                   loads: dict[str, TableLoad]) -> None:
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
            [str(extract_dir.resolve()), name, path.name, fmt, path.stat().st_size, sha256_of(path),
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
    loads: dict[str, TableLoad] = {}
    for table in spec.TABLES:
        path = files[table.name]
        if path is None:
            create_empty_staging_table(con, table)
            loads[table.name] = TableLoad(table.name, "", 0, 0, {r: 0 for r in spec.REJECT_REASON_CODES})
            log(f"{table.name}: no file in the extract (optional table), created empty")
            continue
        loads[table.name] = load_table(con, table, path, log)
    write_load_counts(con, loads)
    write_manifest(con, extract_dir, files, loads)
    comment_tables(con)
    return loads


INGEST_TABLE_COMMENTS = {
    "ingest.rejects": "Every input row the ingest refused: table, file, line (header = 1), column, reason, detail, "
                      "raw record.",
    "ingest.load_counts": "Per table: input records = loaded + rejected, with the count per reject reason.",
    "ingest.manifest": "The extract's files as loaded: format, size, sha256 and record count.",
}


def comment_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Table and column comments, so analysts see the data dictionary in the database itself."""
    for table in spec.TABLES:
        con.execute(f"COMMENT ON TABLE staging.{table.name} IS {_quote_literal(table.description)}")
        for column in table.columns:
            con.execute(f"COMMENT ON COLUMN staging.{table.name}.{_quote_ident(column.name)} "
                        f"IS {_quote_literal(column.description)}")
    for name, comment in INGEST_TABLE_COMMENTS.items():
        con.execute(f"COMMENT ON TABLE {name} IS {_quote_literal(comment)}")


def create_empty_staging_table(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    columns = ", ".join(f"{_quote_ident(c.name)} {c.type}" for c in table.columns)
    con.execute(f"CREATE OR REPLACE TABLE staging.{table.name} ({columns})")
