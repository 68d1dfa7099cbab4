"""The DuckDB engine: the SQL files run as they are written, on one DuckDB connection."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from pipelines.engine.base import Engine, parameters_used
from pipelines.sql_quoting import qualified_name, quote_identifier


def _table_reference(table: str) -> str:
    return qualified_name(*table.split("."))


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        used = parameters_used(sql, parameters)
        if used:
            self.con.execute(sql, used)
        else:
            self.con.execute(sql)

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self.con.executemany(sql, [dict(row) for row in rows])

    def _cursor(self, sql: str, parameters: Mapping[str, Any] | None) -> duckdb.DuckDBPyConnection:
        used = parameters_used(sql, parameters)
        return self.con.execute(sql, used) if used else self.con.execute(sql)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self._cursor(sql, parameters).df()

    def records(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        cursor = self._cursor(sql, parameters)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def table_names(self) -> set[str]:
        return {f"{schema}.{table}" for schema, table in
                self.con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}

    def columns(self, table: str) -> list[str]:
        return [d[0] for d in self.con.execute(f"SELECT * FROM {_table_reference(table)} LIMIT 0").description]

    def create_temp_table(self, name: str, select_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self.execute(f"CREATE OR REPLACE TEMP TABLE {quote_identifier(name)} AS {select_sql}", parameters)

    def create_temp_table_in_parts(self, name: str, select_sql: str, parameters: Mapping[str, Any],
                                   parts: Sequence[Mapping[str, Any]]) -> None:
        first, *rest = parts
        self.create_temp_table(name, select_sql, {**parameters, **first})
        for part in rest:
            self.execute(f"INSERT INTO temp.{quote_identifier(name)} {select_sql}", {**parameters, **part})

    def drop_temp_table(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS temp.{quote_identifier(name)}")

    def insert_select(self, table: str, select_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self.execute(f"INSERT INTO {_table_reference(table)} BY NAME {select_sql}", parameters)

    def insert_records(self, table: str, records: Sequence[Mapping[str, Any]]) -> None:
        # Through Arrow: executemany is slow row by row.
        if not records:
            return
        self.con.register("rows_to_insert", pa.Table.from_pylist([dict(r) for r in records]))
        try:
            self.con.execute(f"INSERT INTO {_table_reference(table)} BY NAME SELECT * FROM rows_to_insert")
        finally:
            self.con.unregister("rows_to_insert")

    def delete_rows(self, table: str, condition_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self.execute(f"DELETE FROM {_table_reference(table)} WHERE {condition_sql}", parameters)

    def add_column_if_absent(self, table: str, column: str, column_type: str) -> None:
        self.con.execute(f"ALTER TABLE {_table_reference(table)} ADD COLUMN IF NOT EXISTS "
                         f"{quote_identifier(column)} {column_type}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.begin()
        try:
            yield
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
