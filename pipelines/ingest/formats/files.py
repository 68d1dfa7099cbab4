"""Finding an extract's files whatever the case of their names, and reading their headers."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.extract_spec import FILE_SUFFIXES
from pipelines.ingest.containment import inside_folder
from pipelines.sql_quoting import quote_literal
from pipelines.ingest.loader import ExtractError, csv_delimiter, is_parquet, read_csv_header, reader_path_sql

# What a data file of a non-canonical extract may be called: the canonical suffixes, and the .tsv / .txt names
# tab- and pipe-separated exports get (the separator itself is sniffed from the header, see loader.sniff_delimiter).
DATA_FILE_SUFFIXES: tuple[str, ...] = FILE_SUFFIXES + (".tsv", ".tsv.gz", ".txt", ".txt.gz")


def table_files(folder: Path) -> dict[str, Path]:
    """Every data file of the folder by lower-case table name (``CONDITION_OCCURRENCE.csv.gz`` -> condition_occurrence).

    A table present in several files (``person.csv`` and ``PERSON.parquet``) is an error naming them.
    """
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        lower = path.name.lower()
        for suffix in DATA_FILE_SUFFIXES:
            if lower.endswith(suffix):
                found.setdefault(lower[: -len(suffix)], []).append(path)
                break
    several = {name: paths for name, paths in found.items() if len(paths) > 1}
    if several:
        listed = "; ".join(", ".join(p.name for p in paths) for paths in several.values())
        raise ExtractError(f"{folder}: a table is present in several files ({listed}); keep one of each.")
    return {name: inside_folder(folder, paths[0].name, "table file") for name, paths in found.items()}


def header_of(path: Path) -> list[str]:
    """Column names of a CSV (plain or gzip) or Parquet file, as written."""
    if is_parquet(path):
        with duckdb.connect() as con:
            rows = con.execute(f"SELECT name FROM parquet_schema({reader_path_sql(path)}) "
                               "WHERE num_children IS NULL").fetchall()
        return [row[0] for row in rows]
    return read_csv_header(path)


def lower_header(path: Path) -> set[str]:
    return {name.lower() for name in header_of(path)}


def reader_sql(path: Path) -> str:
    """A relation reading the whole file with every CSV field as text (for vocabulary and helper tables).

    Lines that do not parse are skipped here: these reads feed lookups, not staging tables, so they have no rows
    of their own to account for.
    """
    if is_parquet(path):
        return f"read_parquet({reader_path_sql(path)})"
    return (f"read_csv({reader_path_sql(path)}, header = true, all_varchar = true, "
            f"delim = {quote_literal(csv_delimiter(path))}, quote = '\"', "
            "escape = '\"', ignore_errors = true)")
