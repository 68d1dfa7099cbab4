"""Load an extract folder into the `staging` schema, accounting for every input row.

For each canonical table (pipelines/extract_spec.py) the loader:
1. finds its file (`<table>.csv`, `.csv.gz` or `.parquet`) and checks the header has every required column;
2. reads it with DuckDB's own reader, every field as text, keeping lines that do not parse as records
   (DuckDB's `store_rejects`) as `malformed_line` rejects with their line number;
3. types and normalises each field in SQL and gives every row at most one reject reason, the first that applies
   in the order of extract_spec.REJECT_REASONS;
4. writes the good rows to `staging.<table>` and the others to `ingest.rejects` (file, physical line, column,
   reason, the raw record), checks that input records = loaded + rejected, and reconciles the records with the
   file's physical lines (counted while the file is hashed for the manifest): lines that are neither a record,
   a blank line nor the continuation of a quoted field stop the load with the line where the reader went wrong.

The Spark ingest (spark_loader.py) reads the records its own way and shares the rest of this loader through
public names: read_csv_header, csv_delimiter and header_columns (the header), OpenedSource.text_records,
row_checks, staged_rows_sql, check_case and reject_detail (typing and reasons, as DuckDB SQL it translates),
canonical_sources (the files, inside the extract), TableLoad, write_load_counts, write_manifest and
comment_tables (the accounting tables).

This module is one of the few places with DuckDB-specific SQL (read_csv/read_parquet options, store_rejects,
ASOF JOIN); the models under sql/ stay plain.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import shutil
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import duckdb

from pipelines import extract_spec as spec
from pipelines.engine.dialect import ROW_HASH, cte_read_twice, repeated_hash_candidates
from pipelines.engine.spark_ingest import TEXT_FIELD_PREFIX
from pipelines.extract_spec import Column, Table
from pipelines.ingest.containment import inside_folder
from pipelines.sql_quoting import quote_identifier, quote_literal

Log = Callable[[str], None]

# What the extract must be, named in every encoding error.
ENCODING_FIX = ("the extract must be UTF-8: convert the file, for example "
                "`iconv -f latin1 -t utf-8 in.csv > out.csv`, and load it again")


class ExtractError(Exception):
    """The extract cannot be loaded at all (a required file or column is missing, a file is ambiguous or unreadable,
    its records do not reconcile with its lines)."""


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
    blank_lines: int = 0
    quoted_line_breaks: int = 0

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


def is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


_GLOB_CHARACTERS = re.compile(r"([\[\]*?{}])")


def reader_path_sql(path: Path) -> str:
    """The path as a SQL literal for DuckDB's file readers, matching that one file only.

    DuckDB's readers (read_csv, read_parquet, parquet_schema) treat every path as a glob pattern and have no option
    to turn globbing off; a folder named ``site[ab]`` would read ``sitea``'s files. Each glob character is therefore
    written as a one-character class (``[`` -> ``[[]``, ``*`` -> ``[*]``), which matches only itself."""
    return quote_literal(_GLOB_CHARACTERS.sub(r"[\1]", str(path)))


def _open_binary(path: Path):
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def _not_gzip_error(path: Path, error: Exception) -> ExtractError:
    with open(path, "rb") as handle:
        start = handle.read(2)
    return ExtractError(
        f"{path}: not a gzip-compressed file ({error}; it starts with {start!r}). The name ends in .gz: compress "
        f"it with gzip, or rename it to {path.name[:-3]} if it is plain CSV."
    )


# The field separators a header is sniffed for, the first winning a tie: sites ship tab-, pipe- and
# semicolon-separated files as often as comma-separated ones.
DELIMITERS = (",", "\t", "|", ";")


def sniff_delimiter(header_line: str) -> str:
    """The separator of a header line: the candidate of DELIMITERS found most often outside quotes (comma when none
    is)."""
    unquoted = "".join(header_line.split('"')[0::2])
    counts = {delimiter: unquoted.count(delimiter) for delimiter in DELIMITERS}
    best = max(DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _header_line(path: Path) -> str:
    """Line 1 of a CSV file as text (a UTF-8 byte-order mark dropped); errors name the file, the line and the fix."""
    try:
        with _open_binary(path) as handle:
            first_line = handle.readline(1 << 20)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise _not_gzip_error(path, error) from error
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ExtractError(
            f"{path}: line 1 (the header), byte {error.start + 1}: {first_line[error.start:error.start + 1]!r} is "
            f"not UTF-8; {ENCODING_FIX}."
        ) from error
    return text.rstrip("\r\n")


def csv_delimiter(path: Path) -> str:
    """The field separator of a CSV file, sniffed from its header (see `sniff_delimiter`)."""
    return sniff_delimiter(_header_line(path))


def read_csv_header(path: Path) -> list[str]:
    """The column names of line 1 (a UTF-8 byte-order mark before them is dropped), split at the sniffed
    separator; errors name the file, the line and the fix."""
    text = _header_line(path)
    if not text.strip():
        raise ExtractError(f"{path}: the file is empty; line 1 must be a header naming the columns.")
    if text.count('"') % 2:
        # A quoted name that runs past the end of line 1: the records' physical line numbers (and their
        # reconciliation with the file's lines) assume a one-line header, so this is refused rather than guessed.
        raise ExtractError(f"{path}: line 1 (the header) has an unclosed quote or a line break inside a quoted "
                           "column name; write the header on one line with balanced quotes.")
    header = [name.strip() for name in next(csv.reader([text], delimiter=sniff_delimiter(text)))]
    seen: dict[str, str] = {}
    for name in header:
        if name.lower() in seen:
            raise ExtractError(
                f"{path}: line 1 (the header) names the column {name!r} twice"
                + (f" (as {seen[name.lower()]!r} and {name!r})" if seen[name.lower()] != name else "")
                + "; every column must have one name: rename or remove one of them."
            )
        seen[name.lower()] = name
    return header


def file_columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    if is_parquet(path):
        rows = con.execute(f"SELECT name FROM parquet_schema({reader_path_sql(path)}) "
                           "WHERE num_children IS NULL").fetchall()
        return [r[0] for r in rows]
    return read_csv_header(path)


@dataclass(frozen=True)
class FileFingerprint:
    """What the manifest records of a file, measured independently of DuckDB's reader."""

    sha256: str  # of the file's bytes as stored (compressed for .csv.gz)
    physical_lines: int | None  # CSV data lines (newlines minus the header); None for Parquet
    # CSV: the physical line numbers of empty lines (DuckDB's reader skips them), and how many line ends are CRLF.
    blank_lines: tuple[int, ...] = ()
    crlf_line_ends: int = 0
    line_ends: int = 0
    # CSV: the physical line of the first carriage return that does not end its line (no LF after it), if any.
    first_inner_carriage_return: int | None = None

    @property
    def mixed_line_endings(self) -> bool:
        return 0 < self.crlf_line_ends < self.line_ends


_INNER_CR = re.compile(rb"\r(?!\n)")


class _LineCounter:
    """Counts lines, CRLF line ends and the positions of empty lines of a byte stream, block by block, with
    C-speed bytes methods (no loop over lines)."""

    def __init__(self) -> None:
        self.newlines = 0
        self.crlf = 0
        self.blank: list[int] = []
        self._tail = b""  # the last two bytes of the previous block
        self._last = b"\n"
        self.first_inner_cr: int | None = None

    def feed(self, block: bytes) -> None:
        buffer = self._tail + block
        newlines_before_buffer = self.newlines - self._tail.count(b"\n")
        has_cr = b"\r" in buffer
        if has_cr:
            self.crlf += buffer.count(b"\r\n") - self._tail.count(b"\r\n")
            if self.first_inner_cr is None:
                # A CR that is the buffer's last byte is judged with the next block (it starts the next buffer's
                # tail); one at the very end of the file is not judged.
                inner = _INNER_CR.search(buffer)
                if inner is not None and inner.start() < len(buffer) - 1:
                    self.first_inner_cr = newlines_before_buffer + buffer.count(b"\n", 0, inner.start()) + 1
        # An empty CRLF line needs a CR: LF-only files (most) skip that search, a third of the fingerprint's CPU.
        for pattern in (b"\n\n", b"\n\r\n") if has_cr else (b"\n\n",):
            start = buffer.find(pattern)
            while start != -1:
                if start + len(pattern) > len(self._tail):  # not already seen in the previous block
                    # The empty line starts after the newline at `start`.
                    self.blank.append(newlines_before_buffer + buffer.count(b"\n", 0, start + 1) + 1)
                start = buffer.find(pattern, start + 1)
        self.newlines += block.count(b"\n")
        self._tail = buffer[-2:]
        self._last = block[-1:] or self._last

    def data_lines(self) -> int:
        lines = self.newlines + (0 if self._last == b"\n" else 1)  # a last line without a trailing newline
        return max(lines - 1, 0)


def _blocks(handle, size: int = 1 << 22):
    return iter(lambda: handle.read(size), b"")


def fingerprint_file(path: Path) -> FileFingerprint:
    """The file's sha256 and, for CSV, its data lines, in one read of the file (two for .csv.gz)."""
    digest = hashlib.sha256()
    counter = _LineCounter() if not is_parquet(path) else None
    with open(path, "rb") as handle:
        for block in _blocks(handle):
            digest.update(block)
            if counter is not None and not is_gzip(path):
                counter.feed(block)
    if counter is not None and is_gzip(path):
        try:
            with gzip.open(path, "rb") as handle:
                for block in _blocks(handle):
                    counter.feed(block)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise _not_gzip_error(path, error) from error
    if counter is None:
        return FileFingerprint(digest.hexdigest(), None)
    return FileFingerprint(digest.hexdigest(), counter.data_lines(), tuple(sorted(set(counter.blank))),
                           counter.crlf, counter.newlines, counter.first_inner_cr)


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


def normalised_line_endings_copy(path: Path, folder: Path) -> Path:
    """A plain-CSV copy of the file with every CRLF line end written as LF, in `folder`.

    DuckDB's reader takes one line-end style per file and stops at the first line of the other style; only files
    that mix both are copied (CR bytes inside quoted fields become LF too, which no canonical field holds)."""
    target = folder / (path.name[:-3] if is_gzip(path) else path.name)
    with _open_binary(path) as source, open(target, "wb") as out:
        carry = b""
        for block in _blocks(source):
            block = carry + block
            carry = b"\r" if block.endswith(b"\r") else b""
            out.write((block[:-1] if carry else block).replace(b"\r\n", b"\n"))
        out.write(carry)
    return target


# ---------------------------------------------------------------------------------------------------------------
# SQL expressions built from the spec (the fact lists live in extract_spec, never in SQL text)
# ---------------------------------------------------------------------------------------------------------------
NUMERIC_TYPES = ("INTEGER", "BIGINT", "DOUBLE")
INTEGER_TYPES = ("INTEGER", "BIGINT")
# Parquet types whose values the ingest can take for a column of each staging type (text is always accepted and
# parsed like CSV text).
_PARQUET_INTEGER_SOURCES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                            "UINTEGER", "UBIGINT", "UHUGEINT")
_PARQUET_NUMERIC_SOURCES = _PARQUET_INTEGER_SOURCES + ("FLOAT", "DOUBLE", "DECIMAL")
ACCEPTED_PARQUET_TYPES: dict[str, tuple[str, ...]] = {
    "DATE": ("DATE", "TIMESTAMP"),
    "INTEGER": _PARQUET_NUMERIC_SOURCES,
    "BIGINT": _PARQUET_NUMERIC_SOURCES,
    "DOUBLE": _PARQUET_NUMERIC_SOURCES,
}
INTEGER_RANGES = {"INTEGER": (-2**31, 2**31 - 1), "BIGINT": (-2**63, 2**63 - 1)}


def _base_type(source_type: str) -> str:
    """DuckDB's type name without its parameters or time zone: DECIMAL(18,3) -> DECIMAL, TIMESTAMP_NS -> TIMESTAMP."""
    base = source_type.upper().split("(")[0].strip()
    return "TIMESTAMP" if base.startswith("TIMESTAMP") else base


def text_expr(raw: str) -> str:
    """A field as trimmed text, NULL when empty: every text field, id and code of every table and source format is
    read through this one expression (sql/staging/format_macros.sql field_text is the same rule), so ' 77 ' and
    '77' are one person everywhere."""
    return f"NULLIF(trim(CAST({raw} AS VARCHAR)), '')"


def _value_set_case(expr: str, values: dict[str, tuple[str, ...]], fold: str) -> str:
    """CASE that maps accepted spellings (compared after `fold`) to canonical values; others pass unchanged.
    `expr` is a text column's typed value, already trimmed (`text_expr`).

    The IN lists stay behind a first WHEN that is not an IN: DuckDB 2.0.1 rewrites an IN list of five or more
    constants in a CASE's first WHEN (or outside a CASE) into a join, and a join in the parse statement loses the
    file order of CREATE TABLE AS (tests/ingest/test_ingest_parse_plan.py)."""
    whens = []
    for canonical, spellings in values.items():
        listed = ", ".join(quote_literal(s) for s in spellings)
        whens.append(f"WHEN {fold} IN ({listed}) THEN {quote_literal(canonical)}")
    return f"CASE WHEN {expr} IS NULL THEN NULL {' '.join(whens)} ELSE {expr} END"


def fold_expr(column: Column, typed: str) -> str | None:
    """The spelling a coded field is compared in (upper case, without dots, ...), or None for other columns.
    `typed` is the column's typed value, text already trimmed (`text_expr`).

    The loader computes it once per row in its own column: DuckDB evaluates an expression again in every CASE
    branch that repeats it, and a regular expression in each of eight branches cost more than the CSV parse.
    """
    if column.kind in ("sex", "visit_type", "laterality"):
        return f"upper({typed})"
    if column.kind == "vocabulary":
        return f"upper(regexp_replace({typed}, '[\\s_\\-]', '', 'g'))"
    if column.kind == "code":
        return f"upper(replace({typed}, '.', ''))"
    return None


def vocabulary_expr(raw: str, folded: str) -> str:
    """The canonical vocabulary name of a field, from its folded spelling (see `fold_expr`)."""
    aliases: dict[str, tuple[str, ...]] = {}
    for alias, vocabulary in spec.VOCABULARY_ALIASES.items():
        aliases.setdefault(vocabulary, ())
        aliases[vocabulary] += (alias,)
    return _value_set_case(raw, aliases, folded)


def code_expr(code_raw: str, code_folded: str, vocabulary_normalised: str) -> str:
    """ICD-10-CM and ICD-9-CM codes get the dot after their third character (ICD-9-CM E codes, E880.1, after the
    fourth); every code is trimmed and upper-cased.

    `code_folded` is the code without dots, trimmed and upper-cased (see `fold_expr`)."""
    bare = code_folded
    icd = f"CASE WHEN length({bare}) > 3 THEN substr({bare}, 1, 3) || '.' || substr({bare}, 4) ELSE {bare} END"
    icd9_e = f"CASE WHEN length({bare}) > 4 THEN substr({bare}, 1, 4) || '.' || substr({bare}, 5) ELSE {bare} END"
    return (f"CASE WHEN {vocabulary_normalised} = 'ICD10CM' THEN {icd} "
            f"WHEN {vocabulary_normalised} = 'ICD9CM' AND {bare} LIKE 'E%' THEN {icd9_e} "
            f"WHEN {vocabulary_normalised} = 'ICD9CM' THEN {icd} ELSE upper({code_raw}) END")


def reads_text(column: Column, source_type: str) -> bool:
    """Whether the column's value is read from the field as text (`text_expr`): always, except a date or a number
    the source already types (Parquet DATE, TIMESTAMP and numeric columns)."""
    source = _base_type(source_type)
    if column.type == "DATE":
        return source not in ("DATE", "TIMESTAMP")
    if column.type in NUMERIC_TYPES:
        return source not in _PARQUET_NUMERIC_SOURCES
    return True


def typed_expr(column: Column, field: str, source_type: str) -> str:
    """SQL that turns a field into the column's staging type (NULL when it does not parse). `field` names the
    field as trimmed text, NULL when empty (`text_expr`), when the column `reads_text`; else the source's own
    typed value.

    Text reaches TRY_CAST only through `text_expr`, never as a bare column of read_csv: DuckDB's optimizer moves
    a TRY_CAST of a reader column into the reader, which then drops the lines that do not cast as malformed
    (DuckDB 2.0.1)."""
    source = _base_type(source_type)
    if column.type == "DATE":
        if not reads_text(column, source_type):
            return f"CAST({field} AS DATE)"
        return f"CAST(try_strptime({field}, {quote_literal(spec.DATE_FORMAT)}) AS DATE)"
    if column.type in NUMERIC_TYPES:
        return field if source == column.type else f"TRY_CAST({field} AS {column.type})"
    return field


def number_expr(column: Column, field: str, source_type: str) -> str | None:
    """For an integer column read from text or a non-integer type: the field (as `typed_expr` takes it) as a
    DOUBLE, to tell a fraction (1.5, which a cast to INTEGER would round), an infinity (1e400) and an overflow
    apart; None when the typed value itself says all (integer sources, DOUBLE columns)."""
    source = _base_type(source_type)
    if column.type not in INTEGER_TYPES or source in _PARQUET_INTEGER_SOURCES:
        return None
    if not reads_text(column, source_type):
        return f"CAST({field} AS DOUBLE)"
    return f"TRY_CAST({field} AS DOUBLE)"


def normalised_expr(column: Column, table: Table, typed_ref: Callable[[str], str],
                    folded_ref: Callable[[str], str], vocabulary_ref: Callable[[str], str] | None = None) -> str:
    """SQL for the staging value of a column; `typed_ref(name)` / `folded_ref(name)` name the typed and folded
    (`fold_expr`) columns of the same row, `vocabulary_ref(name)` (when given) a vocabulary column's
    `vocabulary_expr`, computed once per row: a code's rule names its vocabulary three times."""
    if vocabulary_ref is None:
        def vocabulary_ref(name: str) -> str:
            return vocabulary_expr(typed_ref(name), folded_ref(name))
    typed = typed_ref(column.name)
    if column.kind == "sex":
        return _value_set_case(typed, spec.SEX_VALUES, folded_ref(column.name))
    if column.kind == "visit_type":
        return _value_set_case(typed, spec.VISIT_TYPES, folded_ref(column.name))
    if column.kind == "laterality":
        return _value_set_case(typed, spec.LATERALITY_VALUES, folded_ref(column.name))
    if column.kind == "vocabulary":
        return vocabulary_ref(column.name)
    if column.kind == "code":
        vocabulary_column = next(v for v, c in table.coded if c == column.name)
        return code_expr(typed, folded_ref(column.name), vocabulary_ref(vocabulary_column))
    if table.name == "drug_exposure" and column.name == "drug_exposure_end_date":
        # The last day of supply: the recorded end, else start + days_supply - 1, else the start day itself.
        start, days = typed_ref("drug_exposure_start_date"), typed_ref("days_supply")
        return f"coalesce({typed}, CAST({start} + (coalesce({days}, 1) - 1) * INTERVAL 1 DAY AS DATE))"
    return typed


def value_range(column: Column) -> tuple[int, int] | None:
    """The values an integer column takes: its own plausible range (extract_spec) within what its type holds."""
    if column.type not in INTEGER_TYPES:
        return None
    return column.valid_range or INTEGER_RANGES[column.type]


def reject_detail(reason: str, column: str | None, table: Table) -> str:
    """The readable detail of a row reject for `reason` on `column` (ingest.rejects.detail)."""
    if reason == "missing_required_field":
        return f"required column {column} is empty"
    if reason == "unparseable_date":
        return f"{column} cannot be read as a YYYY-MM-DD date"
    if reason == "unparseable_number":
        return f"{column} cannot be read as a number"
    if reason == "non_integer_number":
        return f"{column} must be a whole number"
    if reason == "infinite_number":
        return f"{column} is infinite (or beyond the range of a floating-point number)"
    if reason == "number_out_of_range":
        low, high = value_range(table.column(column))
        return f"{column} is outside {low:,} to {high:,}"
    if reason == "duplicate_primary_key":
        return f"{column} repeats an earlier row's id"
    raise ValueError(reason)


def value_checks(column: Column, field: str, typed: str, number: str | None) -> list[tuple[str, str]]:
    """(condition, reason) for the ways a non-empty field of `column` can fail to be a value of its type, in
    REJECT_REASONS order; `field`, `typed` and `number` name the row's field (as `typed_expr` takes it: NULL
    when empty), typed and `number_expr` columns."""
    present = f"{field} IS NOT NULL"
    if column.type == "DATE":
        return [(f"{present} AND {typed} IS NULL", "unparseable_date")]
    if column.type == "DOUBLE":
        return [(f"{present} AND ({typed} IS NULL OR isnan({typed}))", "unparseable_number"),
                (f"isinf({typed})", "infinite_number")]
    if column.type in INTEGER_TYPES:
        checks = []
        if number is not None:
            checks += [(f"{present} AND ({number} IS NULL OR isnan({number}))", "unparseable_number"),
                       (f"{number} <> trunc({number})", "non_integer_number"),
                       (f"isinf({number})", "infinite_number")]
        low, high = value_range(column)
        checks.append((f"{present} AND ({typed} IS NULL OR {typed} NOT BETWEEN {low} AND {high})",
                       "number_out_of_range"))
        return checks
    return []


def _parquet_type_problems(path: Path, table: Table, source_types: dict[str, str]) -> None:
    """A Parquet column whose type cannot hold its canonical column's values is an error naming it and the fix."""
    problems = []
    for column in table.columns:
        source = source_types.get(column.name)
        accepted = ACCEPTED_PARQUET_TYPES.get(column.type)
        if source is None or accepted is None or _base_type(source) in accepted + ("VARCHAR",):
            continue
        problems.append(f"{column.name} is {source}, expected {column.type} "
                        f"({' or '.join(accepted[:2] if column.type == 'DATE' else (column.type,))} or text)")
    if problems:
        raise ExtractError(
            f"{path}: column type(s) the ingest cannot read: {'; '.join(problems)}. Write these columns with the "
            "types of docs/extract_formats.md, the canonical layout (dates as DATE or 'YYYY-MM-DD' text), or as text, and load again."
        )


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


def _csv_reader_sql(path: Path, header: list[str], keep_rejects: bool = True) -> str:
    """read_csv of the file, every column as text; lines that do not parse go to DuckDB's rejects tables (or are
    skipped, for a second read that only needs the records)."""
    columns = "{" + ", ".join(f"{quote_literal(name)}: 'VARCHAR'" for name in header) + "}"
    rejects = ("store_rejects = true, rejects_table = '_ingest_reject_errors', "
               "rejects_scan = '_ingest_reject_scans'") if keep_rejects else "ignore_errors = true"
    return (f"read_csv({reader_path_sql(path)}, header = true, auto_detect = false, columns = {columns}, "
            f"delim = {quote_literal(csv_delimiter(path))}, quote = '\"', escape = '\"', {rejects})")


def _source_relation_sql(path: Path, header: list[str], numbered: bool = True) -> str:
    """SQL for the file as raw records: `_record` (1-based record number, when `numbered`) and the file's columns.

    Numbering CSV records takes a window (row_number() OVER ()), which runs the whole parse on one thread; the
    canonical path leaves it out and uses the staging table's rowid instead (see `load_table`)."""
    if is_parquet(path):
        return f"SELECT file_row_number + 1 AS _record, * EXCLUDE (file_row_number) " \
               f"FROM read_parquet({reader_path_sql(path)}, file_row_number = true)"
    numbering = "row_number() OVER () AS _record, " if numbered else ""
    return f"SELECT {numbering}* FROM {_csv_reader_sql(path, header)}"


def inner_carriage_return_error(path: Path, line: int) -> ExtractError:
    """The file cannot be read: DuckDB's CSV reader refuses a carriage return outside quotes that no line feed
    follows (one inside quotes is text), and says neither where nor why; the Spark ingest refuses it too."""
    return ExtractError(
        f"{path}: line {line} holds a carriage return (CR, \\r) that does not end the line; DuckDB's CSV reader "
        "refuses a CR outside quotes that is not followed by a line feed, so it cannot read the file. Remove the CR "
        "(or quote the field that holds it) and load again.")


class _MixedLineEndings(Exception):
    """The file mixes CRLF and LF line ends: it is loaded again from a copy with LF only (see `load_file`)."""


@dataclass(frozen=True)
class OpenedSource:
    """A file opened for loading as the view `_source`: its canonical columns (as named in the source), the file's
    own header, the columns the load ignores, and how records are numbered."""

    header: list[str]  # the source's columns: the file's, or the shaping SELECT's (without _record)
    file_header: list[str]  # the file's own columns
    by_lower: dict[str, str]  # lower-case column name -> name in the source
    source_types: dict[str, str]  # lower-case column name -> DuckDB type
    ignored: list[str]
    # A record's number (line numbers, which copy of a repeated id came first) comes from the source when it has
    # one (Parquet row numbers, shaped sources); for canonical CSV it is the staging table's rowid, which with
    # preserve_insertion_order (pipelines/warehouse.py) follows the file's order and lets the parse run in parallel.
    numbered: bool

    @classmethod
    def text_records(cls, header: list[str], by_lower: dict[str, str], ignored: list[str]) -> "OpenedSource":
        """A source whose records are numbered (`_record`) and whose every column is text: how the Spark ingest
        hands its parsed CSV records to the loader's SQL (pipelines/ingest/spark_loader.py)."""
        return cls(header, header, by_lower, {name.lower(): "VARCHAR" for name in header}, ignored, numbered=True)

    def record_of(self, alias: str | None = None) -> str:
        """SQL for a staging row's record number."""
        prefix = f"{alias}." if alias else ""
        return f"{prefix}_record" if self.numbered else f"({prefix}rowid + 1)"


def _open_source(con: duckdb.DuckDBPyConnection, table: Table, path: Path, read_path: Path, shape_sql: str | None,
                 source_columns: tuple[str, ...] | None) -> OpenedSource:
    """Create the view `_source` (the file's raw records, shaped into canonical columns when `shape_sql` is given);
    an ExtractError when a required column is missing or a Parquet column has a type the ingest cannot read."""
    header = file_header = file_columns(con, read_path)
    if shape_sql is not None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _raw_source AS {_source_relation_sql(read_path, file_header)}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW _shaped_source AS {shape_sql}")
        header = [row[0] for row in con.execute("DESCRIBE _shaped_source").fetchall() if row[0] != "_record"]
    by_lower, ignored = header_columns(path, table, header)
    if shape_sql is not None and source_columns is not None:
        ignored = [name for name in file_header if name.lower() not in source_columns]
    numbered = shape_sql is not None or is_parquet(path)
    if shape_sql is None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _source AS {_source_relation_sql(read_path, header, numbered)}")
    else:
        con.execute("CREATE OR REPLACE TEMP VIEW _source AS SELECT * FROM _shaped_source")
    source_types = {row[0].lower(): row[1] for row in con.execute("DESCRIBE _source").fetchall()}
    if is_parquet(path) and shape_sql is None:
        _parquet_type_problems(path, table, {c.name: source_types[by_lower[c.name].lower()]
                                             for c in table.columns if c.name in by_lower})
    return OpenedSource(header, file_header, by_lower, source_types, ignored, numbered)


def _raw_ref(name: str) -> str:
    return quote_identifier("_raw_" + name)


def _text_ref(name: str) -> str:
    return quote_identifier(TEXT_FIELD_PREFIX + name)


def _typed_ref(name: str) -> str:
    return quote_identifier("_typed_" + name)


def _folded_ref(name: str) -> str:
    return quote_identifier("_folded_" + name)


def _vocabulary_ref(name: str) -> str:
    return quote_identifier("_vocabulary_" + name)


def _number_ref(name: str) -> str:
    return quote_identifier("_number_" + name)


# A row check: (SQL condition over the typed row, reject reason, column).
RowCheck = tuple[str, str, str]


def _source_column(column: Column, source: OpenedSource) -> tuple[str, str]:
    """(SQL for the column's raw field in `_source`, its DuckDB type); NULL text when the source lacks it."""
    if column.name not in source.by_lower:
        return "NULL", "VARCHAR"
    name = source.by_lower[column.name]
    return quote_identifier(name), source.source_types.get(name.lower(), "VARCHAR")


def _field_ref(column: Column, source_type: str) -> str:
    """The row's column that holds the field as `typed_expr` takes it, NULL when empty: its trimmed text
    (`_text_<name>`) when the column `reads_text`, else the source's typed value (`_raw_<name>`)."""
    return _text_ref(column.name) if reads_text(column, source_type) else _raw_ref(column.name)


def row_checks(table: Table, source: OpenedSource) -> list[RowCheck]:
    """The checks of every column, in the order a row's first reason is chosen: REJECT_REASONS order, then the
    column order of the table."""
    checks: list[RowCheck] = []
    for column in table.columns:
        _, source_type = _source_column(column, source)
        field = _field_ref(column, source_type)
        if column.required:
            checks.append((f"{field} IS NULL", "missing_required_field", column.name))
        has_number = number_expr(column, field, source_type) is not None
        number = _number_ref(column.name) if has_number else None
        for condition, reason in value_checks(column, field, _typed_ref(column.name), number):
            checks.append((condition, reason, column.name))
    order = {reason: i for i, reason in enumerate(spec.REJECT_REASON_CODES)}
    checks.sort(key=lambda check: order[check[1]])
    return checks


def _typed_columns_sql(table: Table, source: OpenedSource) -> str:
    """The two innermost SELECTs over `_source`: each column's raw field and, when it `reads_text`, its trimmed
    text (`text_expr`, computed once: the typing and every check read it); then its typed and (integer columns
    read from text or a non-integer type) number value."""
    fields = ["_record"] if source.numbered else []
    typed = []
    for column in table.columns:
        raw, source_type = _source_column(column, source)
        fields.append(f"{raw} AS {_raw_ref(column.name)}")
        if reads_text(column, source_type):
            fields.append(f"{text_expr(raw)} AS {_text_ref(column.name)}")
        field = _field_ref(column, source_type)
        typed.append(f"{typed_expr(column, field, source_type)} AS {_typed_ref(column.name)}")
        number = number_expr(column, field, source_type)
        if number is not None:
            typed.append(f"{number} AS {_number_ref(column.name)}")
    return f"SELECT *, {', '.join(typed)} FROM (SELECT {', '.join(fields)} FROM _source)"


def staging_table_sql(table: Table, source: OpenedSource, checks: list[RowCheck]) -> str:
    """CREATE TABLE staging.<table> in one pass over the file (`staged_rows_sql`; helper columns dropped once the
    rejects are written)."""
    return f"CREATE TABLE staging.{table.name} AS {staged_rows_sql(table, source, checks)}"


def staged_rows_sql(table: Table, source: OpenedSource, checks: list[RowCheck]) -> str:
    """The SELECT over `_source` of every record typed and checked: the staging values, `_record` (numbered
    sources), the number of each row's first failing check in `checks` (`_check`), and the raw record of rejected
    rows (`_raw_record`). DuckDB SQL; the Spark ingest runs it translated (pipelines/engine/spark_ingest.py)."""
    folds = [f"{folded} AS {_folded_ref(column.name)}" for column in table.columns
             if (folded := fold_expr(column, _typed_ref(column.name))) is not None]
    # One CASE names the first failing check by its number (`_check`); its reason and column are looked up from
    # the number for the rejected rows only (`_collect_row_rejects`). Two CASEs (reason, column) evaluated every
    # condition twice on every row.
    check_sql = "CASE " + " ".join(f"WHEN {c} THEN {number}" for number, (c, _, _) in enumerate(checks, 1)) + " END"
    raw_struct = "{" + ", ".join(f"{quote_literal(c.name)}: {_raw_ref(c.name)}" for c in table.columns) + "}"
    vocabularies = "".join(f", {vocabulary_expr(_typed_ref(c.name), _folded_ref(c.name))} AS {_vocabulary_ref(c.name)}"
                           for c in table.columns if c.kind == "vocabulary")
    staged = [f"CAST({normalised_expr(column, table, _typed_ref, _folded_ref, _vocabulary_ref)} AS {column.type}) "
              f"AS {quote_identifier(column.name)}" for column in table.columns]
    return f"""
        SELECT {', '.join(staged)}, {'_record, ' if source.numbered else ''}_check,
               CASE WHEN _check IS NOT NULL THEN CAST(to_json({raw_struct}) AS VARCHAR) END AS _raw_record
        FROM (SELECT *, CAST({check_sql if checks else 'NULL'} AS SMALLINT) AS _check{vocabularies}
              FROM (SELECT *{''.join(', ' + f for f in folds)} FROM ({_typed_columns_sql(table, source)})))
        """


def late_checks(table: Table) -> list[RowCheck]:
    """The checks decided after the parse, on the staging table (`_mark_late_rejects`): a row that repeats an
    earlier row's id, then one naming a person the person table does not have. Their numbers in `_check` follow
    the row checks'; the conditions are joins, not row conditions (empty here)."""
    return [("", "duplicate_primary_key", table.primary_key or ""), ("", "unknown_person", "person_id")]


def repeated_ids_sql(staging_table: str, key: str, record: str) -> str:
    """A SELECT of each id of `staging_table` held by more than one not yet rejected row (`_check` NULL): the id,
    its first and last record and its number of copies. Only the rows whose id hash repeats are grouped
    (repeated_hash_candidates; the same ids, exactly): a hash aggregate with a group per row, holding the id and
    three aggregates, spilled past the 40 GB of free disk on 750 million drug rows at 10 million patients (session
    14), and at 200,000 patients ran out of a 250 MB memory limit where this completes."""
    key = quote_identifier(key)
    return f"""
        {cte_read_twice("checked")} (SELECT {key}, {record} AS _record FROM {staging_table} WHERE _check IS NULL),
        {repeated_hash_candidates(key)}
        SELECT {key} AS id, min(_record) AS first_record, max(_record) AS last_record, count(*) AS copies
        FROM checked WHERE {ROW_HASH}({key}) IN (SELECT row_hash FROM candidates)
        GROUP BY 1 HAVING count(*) > 1"""


def _mark_late_rejects(con: duckdb.DuckDBPyConnection, table: Table, source: OpenedSource,
                       checks: list[RowCheck]) -> None:
    """Give the rows that parse but repeat an earlier row's id, or name a person the person table does not have,
    the numbers of their `late_checks` in `_check` (a duplicate is reported as a duplicate only: the first reason
    that applies). Marking the few rows in place lets the rejects be read from the table in one filtered scan;
    reading the rows of a join back from the table scanned all its columns (1.8 CPU s for drug_exposure at
    200,000 patients, session 13)."""
    staging_table, record_of, pk = f"staging.{table.name}", source.record_of, table.primary_key
    duplicate, unknown = len(checks) + 1, len(checks) + 2
    con.execute("CREATE OR REPLACE TEMP TABLE _duplicates (_record BIGINT)")
    if pk:
        # Each repeated id with its first and last record and its number of copies: the copy after the first of
        # an id seen twice (nearly every repeat) is its last record; only ids with more copies join the table.
        con.execute(f"CREATE OR REPLACE TEMP TABLE _repeated AS {repeated_ids_sql(staging_table, pk, record_of())}")
        con.execute("INSERT INTO _duplicates SELECT last_record FROM _repeated WHERE copies = 2")
        if con.execute("SELECT count(*) FROM _repeated WHERE copies > 2").fetchall()[0][0]:
            con.execute(
                f"""
                INSERT INTO _duplicates
                SELECT {record_of('p')} FROM {staging_table} p
                JOIN (SELECT * FROM _repeated WHERE copies > 2) repeated
                    ON repeated.id = p.{quote_identifier(pk)} AND {record_of('p')} > repeated.first_record
                WHERE p._check IS NULL"""
            )
        con.execute(f"UPDATE {staging_table} SET _check = {duplicate} "
                    f"WHERE {record_of()} IN (SELECT _record FROM _duplicates)")
    if table.references_person:
        con.execute(
            f"""
            UPDATE {staging_table} SET _check = {unknown}
            WHERE _check IS NULL AND NOT EXISTS (
                SELECT 1 FROM staging.person known WHERE known.person_id = {staging_table}.person_id)"""
        )


def _count_malformed_lines(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """`_malformed`: the lines DuckDB's reader could not parse (one row per line); their number."""
    if is_parquet(path):
        return 0
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _malformed AS
        SELECT line, any_value(error_type)::VARCHAR AS error_type, any_value(error_message) AS error_message,
               any_value(csv_line) AS csv_line
        FROM _ingest_reject_errors GROUP BY line
        """
    )
    return con.execute("SELECT count(*) FROM _malformed").fetchall()[0][0]


def header_columns(path: Path, table: Table, header: list[str]) -> tuple[dict[str, str], list[str]]:
    """The header's columns by lower-case name and the columns the table does not know (ignored); an ExtractError
    naming the file when a required column is missing."""
    by_lower = {name.lower(): name for name in header}
    missing = [c for c in table.required_columns if c not in by_lower]
    if missing:
        raise ExtractError(
            f"{path}: required column(s) {', '.join(missing)} missing from the header "
            f"(found: {', '.join(header)}). See docs/extract_formats.md (the canonical layout)."
        )
    return by_lower, [name for name in header if name.lower() not in table.column_names]


def check_case(checks: list[RowCheck], value: Callable[[str, str], str],
               quote: Callable[[str], str] = quote_literal) -> str:
    """CASE over the check number (`staged_rows_sql`'s `_check`, 1-based in `checks` order) giving
    `value(reason, column)` of the row's first failing check, written as a literal by `quote` (DuckDB's by
    default; the Spark ingest passes Spark's); NULL for a row that passed them all."""
    whens = " ".join(f"WHEN {number} THEN {quote(value(reason, column))}"
                     for number, (_, reason, column) in enumerate(checks, 1))
    return f"CASE _check {whens} END" if checks else "NULL"


def _collect_row_rejects(con: duckdb.DuckDBPyConnection, table: Table, source: OpenedSource,
                         checks: list[RowCheck]) -> None:
    """`_row_rejects`: every rejected row (`_check` set by the parse or by `_mark_late_rejects`) with its reason,
    column, readable detail and record: the raw record of a row that does not parse, the staged values of a late
    reject."""
    duplicate, unknown = late_checks(table)
    every_check = checks + [duplicate, unknown]

    def by_check(value: Callable[[str, str], str]) -> str:
        return check_case(every_check, value)

    detail = check_case(checks + [duplicate], lambda reason, column: reject_detail(reason, column, table))
    if table.references_person:  # the unknown person's detail names the person
        detail = (f"CASE WHEN _check = {len(every_check)} THEN 'person_id ' || person_id || ' is not in the person "
                  f"table' ELSE {detail} END")
    typed_record = "CAST(to_json({" + ", ".join(
        f"{quote_literal(c.name)}: {quote_identifier(c.name)}" for c in table.columns) + "}) AS VARCHAR)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _row_rejects AS
        SELECT {source.record_of()} AS _record, {by_check(lambda reason, column: reason)} AS reason,
               {by_check(lambda reason, column: column)} AS column_name, {detail} AS detail,
               CASE WHEN _check > {len(checks)} THEN {typed_record} ELSE _raw_record END AS record
        FROM staging.{table.name} WHERE _check IS NOT NULL
        """
    )


def _write_rejects(con: duckdb.DuckDBPyConnection, table: Table, path: Path, malformed: int) -> None:
    """The row rejects and malformed lines into ingest.rejects, at their physical lines (`_create_line_map`)."""
    con.execute(
        f"""
        INSERT INTO ingest.rejects
        SELECT {quote_literal(table.name)}, {quote_literal(path.name)},
               {'r._record' if is_parquet(path) else _PHYSICAL_LINE},
               r.column_name, r.reason, r.detail, r.record
        FROM _row_rejects r {'' if is_parquet(path) else _PHYSICAL_LINE_JOINS}
        ORDER BY r._record
        """
    )
    if malformed:
        con.execute(
            f"""
            INSERT INTO ingest.rejects
            SELECT {quote_literal(table.name)}, {quote_literal(path.name)}, physical_line, NULL, 'malformed_line',
                   error_type || ': ' || error_message
                   || CASE WHEN error_type = 'INVALID ENCODING' THEN {quote_literal('; ' + ENCODING_FIX)} ELSE '' END,
                   csv_line
            FROM _malformed_lines ORDER BY physical_line
            """
        )


def _keep_loaded_rows(con: duckdb.DuckDBPyConnection, table: Table, source: OpenedSource) -> None:
    """The staging table keeps the rows without a reason, and only the spec's columns.

    Cheap as long as the ingest runs without a transaction around it: each statement commits on its own, so the
    DELETE removes committed rows (0.4 of drug_exposure's 51 CPU s at 200,000 patients, the DROPs less; session 12).
    Inside one transaction with the CREATE TABLE, DuckDB 2.0.1's COMMIT would re-append the whole table row by row
    (sql/phenotypes/record_exclusions.sql)."""
    staging_table = f"staging.{table.name}"
    con.execute(f"DELETE FROM {staging_table} WHERE _check IS NOT NULL")
    for helper in (("_record",) if source.numbered else ()) + ("_check", "_raw_record"):
        con.execute(f"ALTER TABLE {staging_table} DROP COLUMN {helper}")


_LOAD_WORK_TABLES = ("_repeated", "_duplicates", "_row_rejects", "_malformed", "_malformed_lines", "_line_gaps",
                     "_continuations")


def load_table(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    path: Path,
    log: Log = lambda message: None,
    shape_sql: str | None = None,
    fingerprint: Callable[[], FileFingerprint] | None = None,
    read_path: Path | None = None,
    source_columns: tuple[str, ...] | None = None,
) -> TableLoad:
    """Load one file into staging.<table> and ingest.rejects; return the counts.

    The file is parsed once, straight into the staging table, with each row's first parse problem in helper
    columns; duplicate ids and unknown persons are then found with an aggregate and a join and marked in the same
    column, line numbers are worked out for the rejected rows only, the rejected rows are deleted and the helper
    columns dropped (both cheap in DuckDB, unlike a second copy of the table).

    ``shape_sql``: a SELECT over the view ``_raw_source`` (the file as raw records, read exactly as below)
    returning ``_record`` and canonical columns, one row per raw record (non-canonical formats, see
    pipelines/ingest/formats/). Everything after that (typing, reject reasons, line numbers, accounting) is the
    canonical path's.

    ``fingerprint``: the CSV file's `FileFingerprint` (waited for only after the parse); with it, reject lines are
    physical lines (blank lines and quoted line breaks counted) and the records are reconciled with the lines.
    ``read_path``: the file DuckDB reads when it is not ``path`` itself (a copy with normalised line ends).
    ``source_columns``: with ``shape_sql``, the (lower-case) source columns the shaping reads; the file's other
    columns are reported as ignored.
    """
    read_path = read_path or path
    con.execute("DROP TABLE IF EXISTS _ingest_reject_errors")
    con.execute("DROP TABLE IF EXISTS _ingest_reject_scans")
    source = _open_source(con, table, path, read_path, shape_sql, source_columns)
    log(f"{table.name}: reading {path.name}")
    checks = row_checks(table, source)

    # 1. one pass over the file: staging values, the first parse problem, the raw record of rejected rows
    con.execute(f"DROP TABLE IF EXISTS staging.{table.name}")
    try:
        con.execute(staging_table_sql(table, source, checks))
    except duckdb.InvalidInputException as error:
        if fingerprint is not None and read_path == path and fingerprint().mixed_line_endings:
            raise _MixedLineEndings() from error
        inner_cr = fingerprint().first_inner_carriage_return if fingerprint is not None else None
        if inner_cr is not None:
            raise inner_carriage_return_error(path, inner_cr) from error
        raise ExtractError(f"{path}: DuckDB's CSV reader cannot parse the file: {error}") from error

    # 2. rows that parse but repeat an earlier id or name an unknown person
    _mark_late_rejects(con, table, source, checks)

    # 3. rejects, with physical line numbers worked out for them only, and the records reconciled with the lines
    malformed = _count_malformed_lines(con, path)
    _collect_row_rejects(con, table, source, checks)
    parsed_records = con.execute(f"SELECT count(*) FROM staging.{table.name}").fetchall()[0][0]
    lines = None
    if not is_parquet(path) and fingerprint is not None:
        lines = fingerprint()
        if lines.mixed_line_endings and read_path == path:
            raise _MixedLineEndings()
    # The records DuckDB read: a shaping SELECT may keep some of them only (Synthea's death rows are the patients
    # with a death date), so shaped sources are counted again when the lines do not already add up.
    records_read = parsed_records
    if (shape_sql is not None and lines is not None
            and lines.physical_lines != parsed_records + malformed + len(lines.blank_lines)):
        records_read = con.execute("SELECT count(*) FROM _raw_source").fetchall()[0][0]
    quoted_line_breaks = _create_line_map(con, path, read_path, source.file_header, lines, records_read, malformed)
    _write_rejects(con, table, path, malformed)
    if lines is not None:
        _reconcile(con, path, lines, records_read, malformed, quoted_line_breaks)

    # 4. the staging table keeps the rows without a reason, and only the spec's columns
    _keep_loaded_rows(con, table, source)
    counts = dict(con.execute("SELECT reason, count(*) FROM _row_rejects GROUP BY 1").fetchall())
    if malformed:
        counts["malformed_line"] = malformed
    loaded = con.execute(f"SELECT count(*) FROM staging.{table.name}").fetchall()[0][0]
    result = TableLoad(
        table=table.name,
        file=path.name,
        input_records=parsed_records + malformed,
        loaded=loaded,
        rejected_by_reason={reason: counts.get(reason, 0) for reason in spec.REJECT_REASON_CODES},
        ignored_columns=source.ignored,
        physical_lines=lines.physical_lines if lines is not None else None,
        blank_lines=len(lines.blank_lines) if lines is not None else 0,
        quoted_line_breaks=quoted_line_breaks,
    )
    if result.input_records != result.loaded + result.rejected:
        raise AssertionError(f"{path}: row accounting does not add up: {result}")
    for work_table in _LOAD_WORK_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {work_table}")
    log(
        f"{table.name}: {result.input_records:,} records, {result.loaded:,} loaded, {result.rejected:,} rejected"
        + (f" ({', '.join(f'{k} {v:,}' for k, v in result.rejected_by_reason.items() if v)})" if result.rejected else "")
    )
    return result


# The physical line of parsed record r (1-based, malformed lines not counted). DuckDB's line numbering counts the
# header, blank lines and malformed lines but not the line breaks inside quoted fields: the r-th line that is none
# of those "gaps" is line r + (gaps with fewer than r records before them); the quoted line breaks of earlier
# records come on top.
_PHYSICAL_LINE = "r._record + g.rank + coalesce(c.breaks_through, 0)"
_PHYSICAL_LINE_JOINS = """
    ASOF LEFT JOIN (SELECT good_before, max(rank) AS rank FROM _line_gaps GROUP BY good_before) g
        ON r._record > g.good_before
    ASOF LEFT JOIN _continuations c ON r._record > c._record"""


def _create_line_map(con: duckdb.DuckDBPyConnection, path: Path, read_path: Path, header: list[str],
                     lines: FileFingerprint | None, records_read: int, malformed: int) -> int:
    """Work tables for physical line numbers: `_line_gaps` (lines that are not the first line of a parsed record,
    in DuckDB's numbering, with how many parsed records precede each), `_continuations` (parsed records with line
    breaks inside quoted fields, with the running total) and `_malformed_lines` (DuckDB's malformed lines at their
    physical line). Returns the number of line breaks inside the quoted fields of parsed records.

    The quoted line breaks are counted (by reading the file again) only when the file has more lines than records
    and blank lines, so a well-formed file costs nothing here."""
    blank = list(lines.blank_lines) if lines is not None else []
    con.execute("CREATE OR REPLACE TEMP TABLE _continuations (_record BIGINT, breaks BIGINT, breaks_through BIGINT)")
    quoted_line_breaks = 0
    explained = records_read + malformed + len(blank)
    if lines is not None and lines.physical_lines != explained and not is_parquet(path):
        breaks = " + ".join(f"coalesce(length({quote_identifier(name)}) - length(replace({quote_identifier(name)}, "
                            f"chr(10), '')), 0)" for name in header)
        con.execute(
            f"""
            INSERT INTO _continuations
            SELECT _record, breaks, sum(breaks) OVER (ORDER BY _record) FROM (
                SELECT row_number() OVER () AS _record, {breaks} AS breaks
                FROM {_csv_reader_sql(read_path, header, keep_rejects=False)})
            WHERE breaks > 0"""
        )
        quoted_line_breaks = con.execute("SELECT coalesce(sum(breaks), 0) FROM _continuations").fetchall()[0][0]
        if blank and quoted_line_breaks:
            blank = _blank_lines_in_reader_numbering(con, blank)
    con.execute("CREATE OR REPLACE TEMP TABLE _line_gaps (line BIGINT)")
    if not is_parquet(path):
        con.execute("INSERT INTO _line_gaps VALUES (1)")  # the header
        if blank:
            con.execute("INSERT INTO _line_gaps SELECT unnest($blank)", {"blank": blank})
        if malformed:
            con.execute("INSERT INTO _line_gaps SELECT line FROM _malformed")
    con.execute("""CREATE OR REPLACE TEMP TABLE _line_gaps AS
                   SELECT line, line - row_number() OVER (ORDER BY line) AS good_before,
                          row_number() OVER (ORDER BY line) AS rank
                   FROM (SELECT DISTINCT line FROM _line_gaps)""")
    if malformed:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _malformed_lines AS
            SELECT m.*, m.line + coalesce(c.breaks_through, 0) AS physical_line
            FROM _malformed m JOIN _line_gaps g USING (line)
            ASOF LEFT JOIN _continuations c ON g.good_before >= c._record
            """
        )
    return int(quoted_line_breaks)


def _blank_lines_in_reader_numbering(con: duckdb.DuckDBPyConnection, blank: list[int]) -> list[int]:
    """The blank lines' numbers as DuckDB's reader counts lines (without the line breaks inside quoted fields).

    A walk over the rare events only (blank lines, malformed lines, records with quoted line breaks), in file
    order: between two events every line is one record, one physical line and one reader line."""
    malformed = [row[0] for row in con.execute("SELECT line FROM _malformed ORDER BY line").fetchall()]
    continued = con.execute("SELECT _record, breaks FROM _continuations ORDER BY _record").fetchall()
    physical, reader, records = 2, 2, 0  # the next line to look at (after the header), records before it
    result: list[int] = []
    b = m = c = 0
    infinity = float("inf")
    while b < len(blank):
        to_blank = blank[b] - physical
        to_malformed = malformed[m] - reader if m < len(malformed) else infinity
        to_continued = continued[c][0] - records - 1 if c < len(continued) else infinity
        step = min(to_blank, to_malformed, to_continued)
        physical, reader, records = physical + step, reader + step, records + step
        if step == to_blank:
            result.append(reader)
            physical, reader, b = physical + 1, reader + 1, b + 1
        elif step == to_malformed:
            physical, reader, m = physical + 1, reader + 1, m + 1
        else:
            physical, reader, records = physical + 1 + continued[c][1], reader + 1, records + 1
            c += 1
    return result


def _reconcile(con: duckdb.DuckDBPyConnection, path: Path, lines: FileFingerprint, records_read: int,
               malformed: int, quoted_line_breaks: int) -> None:
    """Every physical data line is a record, a blank line or a line break inside a quoted field of a record;
    otherwise the reader went wrong (typically a quote that is never closed and swallowed the lines after it),
    and the load stops naming the line."""
    if malformed:
        swallowing = con.execute(
            """SELECT physical_line, csv_line, error_type FROM _malformed_lines
               WHERE contains(trim(csv_line, chr(13) || chr(10)), chr(10)) ORDER BY physical_line LIMIT 1"""
        ).fetchall()
        swallowing = swallowing[0] if swallowing else None
        if swallowing is not None:
            line, text, error_type = swallowing
            first = text.strip("\r\n").split("\n")[0]
            raise ExtractError(
                f"{path}: line {line}: the reader could not find the end of this record ({error_type}) and read "
                f"the lines after it into it, so {lines.physical_lines:,} data lines gave "
                f"{records_read + malformed:,} records. The line starts {first[:80]!r}: a quote there is "
                "probably never closed. Close or remove the quote (a field that contains a quote must be quoted "
                "with the quote doubled) and load again."
            )
    explained = records_read + malformed + len(lines.blank_lines) + quoted_line_breaks
    if lines.physical_lines != explained:
        raise ExtractError(
            f"{path}: {lines.physical_lines:,} data lines, but the reader accounts for {explained:,} "
            f"({records_read + malformed:,} records, {len(lines.blank_lines):,} blank lines, "
            f"{quoted_line_breaks:,} line breaks inside quoted fields): some lines were neither read nor rejected. "
            "Check the file's quoting and line ends (one record per line, UTF-8, comma-separated) and load again."
        )


def load_file(con: duckdb.DuckDBPyConnection, table: Table, path: Path, fingerprints: FileFingerprints,
              log: Log = lambda message: None, shape_sql: str | None = None,
              source_columns: tuple[str, ...] | None = None) -> TableLoad:
    """`load_table` with the file's fingerprint (physical lines, reconciliation); a CSV file that mixes CRLF and LF
    line ends is loaded from a copy with LF only, so its records, rejects and line numbers are those of the file."""
    if is_parquet(path):
        return load_table(con, table, path, log, shape_sql, source_columns=source_columns)
    try:
        return load_table(con, table, path, log, shape_sql, fingerprint=lambda: fingerprints[path],
                          source_columns=source_columns)
    except _MixedLineEndings:
        pass
    log(f"{table.name}: {path.name} mixes CRLF and LF line ends; reading it with LF line ends")
    folder = Path(tempfile.mkdtemp(prefix="legcramp_line_ends_"))
    try:
        copy = normalised_line_endings_copy(path, folder)
        return load_table(con, table, path, log, shape_sql, fingerprint=lambda: fingerprint_file(copy),
                          read_path=copy, source_columns=source_columns)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
            "See docs/extract_formats.md (the canonical layout)."
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


@dataclass(frozen=True)
class TableSource:
    """Where one canonical table comes from: its file and, for a non-canonical format, the SELECT that shapes the
    file's raw records into the canonical columns (see `load_table`)."""

    path: Path
    shape_sql: str | None = None
    # With shape_sql: the (lower-case) source columns the shaping reads; the file's others are its ignored_columns.
    source_columns: tuple[str, ...] | None = None


def load_tables(con: duckdb.DuckDBPyConnection, extract_dir: Path, sources: dict[str, TableSource | None],
                log: Log = lambda m: None) -> dict[str, TableLoad]:
    """Load every canonical table from its source (person first, so events can be checked against it), with the
    accounting of `load_table`; write ingest.load_counts, ingest.manifest and the staging tables' comments.

    ``sources[table]`` is None (or absent) for an optional table the extract does not have: created empty. Every
    format, the canonical layout included, loads through here (pipelines/ingest/formats/)."""
    extract_dir = Path(extract_dir)
    create_ingest_schema(con)
    con.execute("DELETE FROM ingest.rejects")
    fingerprints = FileFingerprints([source.path for source in sources.values() if source is not None])
    loads: dict[str, TableLoad] = {}
    with _row_groups_kept_as_written(con):
        for table in spec.TABLES:
            source = sources.get(table.name)
            if source is None:
                create_empty_staging_table(con, table)
                loads[table.name] = TableLoad(table.name, "", 0, 0, {r: 0 for r in spec.REJECT_REASON_CODES})
                log(f"{table.name}: no file in the extract (optional table), created empty")
                continue
            loads[table.name] = load_file(con, table, source.path, fingerprints, log, shape_sql=source.shape_sql,
                                          source_columns=source.source_columns)
        write_load_counts(con, loads)
        files = {name: (source.path if source is not None else None) for name, source in sources.items()}
        write_manifest(con, extract_dir, files, loads, fingerprints)
        comment_tables(con)
    return loads


@contextmanager
def _row_groups_kept_as_written(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Inside: checkpoints keep the staging tables' row groups as the parse wrote them; the database is
    checkpointed at the end. A later checkpoint with the vacuum on would still rewrite them (and did, in the
    phenotype stage, until session 14): a run's every writer keeps it off (pipelines/warehouse.py,
    BUILD_FILE_WRITER_SETTINGS); this keeps it off for the ingest on any connection (tests, bench/).

    Two threads writing one CREATE TABLE AS leave part-filled row groups where their batches meet; a checkpoint's
    vacuum then rewrote every table whole to merge them, nearly as costly as writing it (3.0 CPU s after a
    2.9 CPU s write of 3,000,000 drug_exposure rows, DuckDB 2.0.1, session 13) and leaving the file twice its size
    (the old blocks free). Without it, a table keeps about a third more row groups and its deleted rejects as
    deletion marks, which scans skip."""
    previous = con.execute("SELECT current_setting('max_vacuum_tasks')").fetchall()[0][0]
    con.execute("SET max_vacuum_tasks = 0")
    try:
        yield
        con.execute("CHECKPOINT")
    finally:
        con.execute(f"SET max_vacuum_tasks = {int(previous)}")


def canonical_sources(extract_dir: Path) -> dict[str, TableSource | None]:
    """The canonical layout's sources: each table's own file, read as it is (no shaping)."""
    return {name: (TableSource(path) if path is not None else None)
            for name, path in resolve_extract(Path(extract_dir)).items()}


def load_extract(con: duckdb.DuckDBPyConnection, extract_dir: Path, log: Log = lambda m: None) -> dict[str, TableLoad]:
    """Load every table of a canonical extract (person first, so events can be checked against it)."""
    return load_tables(con, extract_dir, canonical_sources(extract_dir), log)


def comment_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The staging tables' and columns' comments from the extract spec, so analysts see the extract's data
    dictionary in the database itself (every other table is described in pipelines/data_dictionary.yaml)."""
    for table in spec.TABLES:
        con.execute(f"COMMENT ON TABLE staging.{table.name} IS {quote_literal(table.description)}")
        for column in table.columns:
            con.execute(f"COMMENT ON COLUMN staging.{table.name}.{quote_identifier(column.name)} "
                        f"IS {quote_literal(column.description)}")


def create_empty_staging_table(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    columns = ", ".join(f"{quote_identifier(c.name)} {c.type}" for c in table.columns)
    con.execute(f"CREATE OR REPLACE TABLE staging.{table.name} ({columns})")
