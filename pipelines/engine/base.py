"""The one interface through which the phenotype and cohort stages run the SQL files of sql/ on an engine.

An `Engine` takes DuckDB SQL text (the dialect of sql/) with $name parameters and runs it on its engine:
`DuckDBEngine` as it is, `SparkEngine` translated by the project dialect (pipelines/engine/dialect.py). Results come
back as records or pandas frames; callers use them only for per-person or aggregated data.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import pandas as pd

from pipelines.sql import read_sql

_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_LINE_COMMENT = re.compile(r"--[^\n]*")


def parameters_used(sql: str, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The subset of `parameters` the SQL names as $name (DuckDB refuses unused ones); a name without a value is
    an error."""
    names = set(_PARAMETER.findall(_LINE_COMMENT.sub("", sql)))
    parameters = parameters or {}
    missing = names - parameters.keys()
    if missing:
        raise KeyError(f"SQL parameters without a value: {', '.join(sorted(missing))}")
    return {name: parameters[name] for name in names}


class Engine(ABC):
    """Runs the project's DuckDB-dialect SQL. Table names are schema-qualified (`phenotype.events`); temporary
    tables are unqualified and live as long as the engine's session."""

    name: str

    # --- statements ----------------------------------------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run every statement of `sql` (DDL, INSERT, DELETE, CREATE TEMP TABLE ... AS ...) with `parameters`."""

    @abstractmethod
    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement (an INSERT ... VALUES of $names) once per row of parameters."""

    def execute_file(self, relative_path: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run sql/<relative_path>."""
        self.execute(read_sql(relative_path), parameters)

    # --- results ---------------------------------------------------------------------------------------------------
    @abstractmethod
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """The result of one SELECT as a pandas frame (per-person or aggregated data only)."""

    @abstractmethod
    def records(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The result of one SELECT as a list of {column: value} (NULL as None, dates as datetime.date); for small
        results (definitions, aggregates)."""

    # --- tables ----------------------------------------------------------------------------------------------------
    @abstractmethod
    def table_names(self) -> set[str]:
        """Every permanent table as "schema.table"."""

    @abstractmethod
    def columns(self, table: str) -> list[str]:
        """The column names of a table, in order."""

    @abstractmethod
    def create_temp_table(self, name: str, select_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Materialise a SELECT once as a temporary table `name` (replacing one of that name): later reads see the
        stored rows, never a recomputation."""

    @abstractmethod
    def create_temp_table_in_parts(self, name: str, select_sql: str, parameters: Mapping[str, Any],
                                   parts: Sequence[Mapping[str, Any]]) -> None:
        """Like create_temp_table, holding the rows of the SELECT run once per part (`parameters` updated with the
        part's), where the engine gains from running the parts one by one (DuckDB sorts and spills one part at a
        time). The parts must not overlap: the rows are their union, duplicates kept. At least one part."""

    @abstractmethod
    def drop_temp_table(self, name: str) -> None:
        """Drop the temporary table `name` if it exists."""

    @abstractmethod
    def insert_select(self, table: str, select_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """INSERT the rows of a SELECT into `table` by column name; the table's other columns get NULL."""

    @abstractmethod
    def insert_records(self, table: str, records: Sequence[Mapping[str, Any]]) -> None:
        """INSERT Python records into `table` by column name (a few rows of definitions, never per-person data)."""

    @abstractmethod
    def delete_rows(self, table: str, condition_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """DELETE FROM `table` WHERE `condition_sql`."""

    def delete_rows_where(self, conditions: Mapping[str, str], parameters: Mapping[str, Any] | None = None) -> None:
        """DELETE FROM each table WHERE its condition ({table: condition_sql}), in the mapping's order (a condition
        may read a table deleted from before it)."""
        for table, condition_sql in conditions.items():
            self.delete_rows(table, condition_sql, parameters)

    @abstractmethod
    def add_column_if_absent(self, table: str, column: str, column_type: str) -> None:
        """Add a column (DuckDB type name) unless the table has it."""

    def add_columns_if_absent(self, table: str, columns: Mapping[str, str]) -> None:
        """Add each {column: DuckDB type name} the table lacks."""
        for column, column_type in columns.items():
            self.add_column_if_absent(table, column, column_type)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A unit of work: all of it or nothing where the engine has transactions (DuckDB)."""
        yield

