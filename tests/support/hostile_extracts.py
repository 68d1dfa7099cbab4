"""Hostile extracts: one named corruption applied to a copy of a good extract folder.

Each function takes an extract folder (canonical layout, CSV: for example one written by `legcramp-generate` or
`pipelines.synthetic.generate_extract`), changes one table's file in place the way a broken export or an
adversarial user would, and returns what a test needs to know (the file, the physical line). Lines are physical
lines of the file, 1-based, the header being line 1, as `ingest.rejects.line` reports them.

    folder = copy_extract(good_extract, tmp_path / "extract")
    unterminated_quote(folder, "person", line=11)
    with pytest.raises(ExtractError, match="person.csv: line 11"):
        load_extract(duckdb.connect(), folder)

Fault test files (tests/*/test_faults_*.py) add the corruptions they need here, so the suite of bad inputs has one
generator.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb

from pipelines.ingest.loader import reader_path_sql
from pipelines.sql_quoting import quote_identifier, quote_literal


def copy_extract(source: Path, target: Path) -> Path:
    """A copy of the extract's data files (not its _truth), to corrupt."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("_truth", "_manifest.json"))
    return target


def table_path(folder: Path, table: str) -> Path:
    return folder / f"{table}.csv"


def read_lines(path: Path) -> list[bytes]:
    """The file's physical lines with their line ends (bytes: corruptions may not be UTF-8)."""
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def header(folder: Path, table: str) -> list[str]:
    return read_lines(table_path(folder, table))[0].decode().rstrip("\r\n").split(",")


def fields(folder: Path, table: str, line: int) -> dict[str, str]:
    """The fields of a physical line (unquoted CSV, as the generator writes its clean rows)."""
    lines = read_lines(table_path(folder, table))
    return dict(zip(header(folder, table), lines[line - 1].decode().rstrip("\r\n").split(",")))


# ------------------------------------------------------------------------------------------------ corruptions
def unterminated_quote(folder: Path, table: str, line: int, column: str | None = None) -> Path:
    """Opens a quote at the start of a field of `line` (default: its last field) that is never closed:
    ``...,White`` becomes ``...,"White``."""
    path = table_path(folder, table)
    lines = read_lines(path)
    names = header(folder, table)
    index = names.index(column) if column else len(names) - 1
    body = lines[line - 1].rstrip(b"\r\n")
    parts = body.split(b",")
    parts[index] = b'"' + parts[index]
    lines[line - 1] = b",".join(parts) + lines[line - 1][len(body):]
    write_lines(path, lines)
    return path


def set_field(folder: Path, table: str, line: int, column: str, value: str) -> Path:
    """Writes `value` (as is, unquoted) into `column` of physical `line`."""
    path = table_path(folder, table)
    lines = read_lines(path)
    names = header(folder, table)
    body = lines[line - 1].rstrip(b"\r\n")
    parts = body.split(b",")
    parts[names.index(column)] = value.encode()
    lines[line - 1] = b",".join(parts) + lines[line - 1][len(body):]
    write_lines(path, lines)
    return path


def blank_lines(folder: Path, table: str, after: list[int]) -> Path:
    """Inserts an empty line after each physical line of `after` (numbers of the original file)."""
    path = table_path(folder, table)
    lines = read_lines(path)
    for line in sorted(after, reverse=True):
        lines.insert(line, b"\n")
    write_lines(path, lines)
    return path


def quoted_line_break(folder: Path, table: str, line: int, column: str) -> Path:
    """Puts a line break inside a quoted field of `line`: ``x`` becomes ``"x<newline>continued"`` (valid CSV: one
    record on two physical lines)."""
    value = fields(folder, table, line)[column]
    return set_field(folder, table, line, column, f'"{value}\ncontinued"')


def byte_order_mark(folder: Path, table: str) -> Path:
    """A UTF-8 byte-order mark before the header, as Excel and some Windows exports write."""
    path = table_path(folder, table)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    return path


def mixed_line_endings(folder: Path, table: str, from_line: int) -> Path:
    """CRLF line ends from `from_line` on, LF before: two exports concatenated."""
    path = table_path(folder, table)
    lines = read_lines(path)
    lines[from_line - 1:] = [line.rstrip(b"\r\n") + b"\r\n" for line in lines[from_line - 1:]]
    write_lines(path, lines)
    return path


def latin1_byte(folder: Path, table: str, line: int) -> Path:
    """Appends an é written in Latin-1 (byte 0xE9, not UTF-8) to the last field of `line` (1 = the header)."""
    path = table_path(folder, table)
    lines = read_lines(path)
    body = lines[line - 1].rstrip(b"\r\n")
    lines[line - 1] = body + b"\xe9" + lines[line - 1][len(body):]
    write_lines(path, lines)
    return path


def duplicate_column(folder: Path, table: str, column: str) -> Path:
    """Appends a second copy of `column` (header and values) at the end of every line."""
    path = table_path(folder, table)
    lines = read_lines(path)
    index = header(folder, table).index(column)
    out = []
    for line in lines:
        body = line.rstrip(b"\r\n")
        parts = body.split(b",")
        out.append(body + b"," + (parts[index] if index < len(parts) else b"") + line[len(body):])
    write_lines(path, out)
    return path


def plain_text_named_gzip(folder: Path, table: str) -> Path:
    """Renames ``<table>.csv`` to ``<table>.csv.gz`` without compressing it."""
    path = table_path(folder, table)
    target = path.with_name(path.name + ".gz")
    path.rename(target)
    return target


def gzip_table(folder: Path, table: str) -> Path:
    """Compresses ``<table>.csv`` to ``<table>.csv.gz`` (the plain file is removed)."""
    path = table_path(folder, table)
    target = path.with_name(path.name + ".gz")
    with gzip.open(target, "wb") as out:
        out.write(path.read_bytes())
    path.unlink()
    return target


def parquet_with_type(folder: Path, table: str, column: str, sql_expression: str) -> Path:
    """Replaces ``<table>.csv`` by ``<table>.parquet`` whose `column` is `sql_expression` (over the text field,
    named by the column), every other column text: for example a date written as an INTEGER 20190101."""
    path = table_path(folder, table)
    target = path.with_suffix(".parquet")
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * REPLACE ({sql_expression} AS {quote_identifier(column)}) "
            f"FROM read_csv({reader_path_sql(path)}, header = true, all_varchar = true, ignore_errors = true)) "
            f"TO {quote_literal(str(target))} (FORMAT parquet)"
        )
    path.unlink()
    return target


def keep_first_lines(folder: Path, table: str, lines: int) -> Path:
    """Cuts the file after its first `lines` physical lines (header included): a truncated export."""
    path = table_path(folder, table)
    write_lines(path, read_lines(path)[:lines])
    return path
