"""Helpers for building small staging databases by hand (tests, examples, debugging a definition).

    con = duckdb.connect()
    create_staging_tables(con)
    insert_rows(con, "condition_occurrence", [{"condition_occurrence_id": "c1", "person_id": "p1", ...}])
    run_phenotypes(con)

The tables have exactly the columns and types of pipelines/extract_spec.py, as the ingest creates them.
"""

from __future__ import annotations

from typing import Any, Iterable

import duckdb

from pipelines.extract_spec import TABLES, TABLES_BY_NAME


def create_staging_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every canonical table, empty, in schema ``staging``."""
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    for table in TABLES:
        columns = ", ".join(f"{column.name} {column.type}" for column in table.columns)
        con.execute(f"CREATE OR REPLACE TABLE staging.{table.name} ({columns})")


def insert_rows(con: duckdb.DuckDBPyConnection, table_name: str, rows: Iterable[dict[str, Any]]) -> None:
    """Insert rows given as dicts into ``staging.<table_name>``; columns left out are NULL."""
    table = TABLES_BY_NAME[table_name]
    rows = list(rows)
    for row in rows:
        unknown = set(row) - set(table.column_names)
        if unknown:
            raise KeyError(f"{table_name} has no column(s) {sorted(unknown)}")
    if not rows:
        return
    placeholders = ", ".join(f"${column}" for column in table.column_names)
    con.executemany(f"INSERT INTO staging.{table_name} VALUES ({placeholders})",
                    [{column: row.get(column) for column in table.column_names} for row in rows])
