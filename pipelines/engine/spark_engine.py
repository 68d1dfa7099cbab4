"""The Spark engine: the SQL files of sql/ translated by the project dialect and run on a SparkSession.

What Spark's plain (Parquet) tables do not take is mapped here, in one place:

- CREATE TEMP TABLE name AS SELECT ...: a temporary view over the result, materialised once with
  `localCheckpoint` (eager). A plain Spark temporary view is a stored query that every read recomputes, which costs
  the whole lineage again and, for a statement that is not deterministic, can even give other rows; a checkpointed
  view reads the stored rows, like DuckDB's temp table, and lives as long as the session. Managed Parquet tables
  would survive a lost executor but leave files to clean up after every run; work tables are small and per-run.
- PRIMARY KEY and NOT NULL in CREATE TABLE are dropped: Spark's Parquet tables enforce neither (the data-quality
  suites check keys and required columns after the run).
- ALTER TABLE ... ADD COLUMN IF NOT EXISTS: the column is added (ADD COLUMNS) only when the table lacks it;
  ALTER COLUMN ... DROP NOT NULL is a no-op (every Parquet column is nullable).
- DELETE FROM t WHERE c: plain tables cannot delete rows; the rows to keep are materialised and written over the
  table (INSERT OVERWRITE). A table format with row updates (Delta Lake, Iceberg) would run the DELETE itself.
- INSERT INTO t BY NAME SELECT / INSERT INTO t (columns) SELECT: the SELECT's columns are matched to the table's by
  name, missing ones NULL, then appended.
- Transactions: Spark has none over plain tables; a failed stage leaves what it wrote so far (a rerun rebuilds it).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd
from sqlglot import exp

from pipelines.engine.base import Engine
from pipelines.engine.dialect import ProjectSpark, bind_parameters, parse_statements, to_spark_sql

# DuckDB type names used in the project's Python (ADD COLUMN) and their Spark types.
SPARK_TYPES = {"BOOLEAN": "BOOLEAN", "DATE": "DATE", "INTEGER": "INT", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE",
               "VARCHAR": "STRING"}


def _table_name(table: exp.Table) -> str:
    return ".".join(part.name for part in table.parts)


def _backquoted(table: str) -> str:
    return ".".join(f"`{part.replace('`', '``')}`" for part in table.split("."))


def _without_constraints(create: exp.Create) -> exp.Create:
    """CREATE TABLE with its PRIMARY KEY, NOT NULL and UNIQUE constraints removed."""
    create = create.copy()
    schema = create.this
    if isinstance(schema, exp.Schema):
        for column in schema.expressions:
            if isinstance(column, exp.ColumnDef):
                column.set("constraints", [])
        schema.set("expressions", [c for c in schema.expressions if isinstance(c, exp.ColumnDef)])
    return create


def _is_temporary(create: exp.Create) -> bool:
    properties = create.args.get("properties")
    return bool(properties and any(isinstance(p, exp.TemporaryProperty) for p in properties.expressions))


class SparkEngine(Engine):
    name = "spark"

    def __init__(self, spark: Any):
        self.spark = spark

    # --- statements ----------------------------------------------------------------------------------------------
    def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        for statement in parse_statements(sql):
            self._run(bind_parameters(statement, parameters or {}))

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """One INSERT of all rows: the statement's VALUES row is repeated with each row's values bound."""
        if not rows:
            return
        [statement] = parse_statements(sql)
        values = statement.find(exp.Values)
        if not isinstance(statement, exp.Insert) or values is None or len(values.expressions) != 1:
            for row in rows:
                self.execute(sql, row)
            return
        template = values.expressions[0]
        combined = statement.copy()
        combined.find(exp.Values).set("expressions", [bind_parameters(template, row) for row in rows])
        self._run(combined)

    def _run(self, statement: exp.Expression) -> None:
        if isinstance(statement, exp.Create) and statement.args.get("kind") == "TABLE":
            if _is_temporary(statement):
                self._create_temp_view(_table_name(statement.this), statement.expression)
                return
            statement = _without_constraints(statement)
        elif isinstance(statement, exp.Alter):
            self._alter(statement)
            return
        elif isinstance(statement, exp.Delete):
            where = statement.args.get("where")
            self._delete(_table_name(statement.this), where.this.sql(dialect=ProjectSpark) if where else "FALSE")
            return
        elif isinstance(statement, exp.Drop) and statement.args.get("kind") == "TABLE":
            for table in statement.args.get("tables") or [statement.this]:
                self._drop_table(table)
            return
        elif isinstance(statement, exp.Insert) and isinstance(statement.expression, (exp.Query,)) \
                and not isinstance(statement.expression, exp.Values):
            self._insert_query(statement)
            return
        self.spark.sql(statement.sql(dialect=ProjectSpark))

    def _create_temp_view(self, name: str, select: exp.Expression) -> None:
        frame = self.spark.sql(select.sql(dialect=ProjectSpark)).localCheckpoint(eager=True)
        frame.createOrReplaceTempView(name)

    def _drop_table(self, table: exp.Table) -> None:
        name = _table_name(table)
        schema = table.db
        if schema in ("", "temp"):
            if self.spark.catalog.dropTempView(table.name):
                return
            if schema == "temp":
                return
        self.spark.sql(f"DROP TABLE IF EXISTS {_backquoted(name)}")

    def _alter(self, statement: exp.Alter) -> None:
        table = _table_name(statement.this)
        for action in statement.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef):
                if action.name not in self.columns(table):
                    spark_type = action.args["kind"].sql(dialect=ProjectSpark)
                    self.spark.sql(f"ALTER TABLE {_backquoted(table)} ADD COLUMNS (`{action.name}` {spark_type})")
            elif isinstance(action, exp.AlterColumn) and action.args.get("drop") and action.args.get("allow_null"):
                continue  # DROP NOT NULL: Parquet columns are all nullable
            else:
                raise NotImplementedError(f"ALTER TABLE action not mapped to Spark: {action.sql(dialect='duckdb')}")

    def _insert_query(self, statement: exp.Insert) -> None:
        target = statement.this
        columns = None
        if isinstance(target, exp.Schema):
            columns = [c.name for c in target.expressions]
            target = target.this
        select = statement.expression
        if columns is not None:
            # Positional: the i-th SELECT column goes into the i-th named column.
            frame = self.spark.sql(select.sql(dialect=ProjectSpark))
            frame = frame.toDF(*columns)
        else:
            frame = self.spark.sql(select.sql(dialect=ProjectSpark))
        self._append(_table_name(target), frame)

    def _append(self, table: str, frame: Any) -> None:
        """Append `frame` to `table`, columns matched by name, the table's others NULL."""
        from pyspark.sql import functions as F

        schema = self.spark.table(_backquoted(table)).schema
        present = set(frame.columns)
        unknown = present - {field.name for field in schema.fields}
        if unknown:
            raise ValueError(f"{table} has no column(s) {', '.join(sorted(unknown))}")
        aligned = frame.select([
            (F.col(f"`{field.name}`") if field.name in present else F.lit(None)).cast(field.dataType).alias(field.name)
            for field in schema.fields])
        aligned.write.insertInto(_backquoted(table))

    def _delete(self, table: str, condition: str) -> None:
        kept = (self.spark.table(_backquoted(table))
                .where(f"NOT coalesce(({condition}), false)")
                .localCheckpoint(eager=True))
        kept.write.insertInto(_backquoted(table), overwrite=True)

    # --- results ---------------------------------------------------------------------------------------------------
    def _frame(self, sql: str, parameters: Mapping[str, Any] | None) -> Any:
        [statement] = parse_statements(sql)
        return self.spark.sql(to_spark_sql(statement, parameters))

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self._frame(sql, parameters).toPandas()

    def records(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return [row.asDict() for row in self._frame(sql, parameters).collect()]

    # --- tables ----------------------------------------------------------------------------------------------------
    def table_names(self) -> set[str]:
        names = set()
        for database in self.spark.catalog.listDatabases():
            for table in self.spark.catalog.listTables(database.name):
                if not table.isTemporary:
                    names.add(f"{database.name}.{table.name}")
        return names

    def columns(self, table: str) -> list[str]:
        return self.spark.table(_backquoted(table)).columns

    def create_temp_table(self, name: str, select_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._frame(select_sql, parameters).localCheckpoint(eager=True).createOrReplaceTempView(name)

    def drop_temp_table(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)

    def insert_select(self, table: str, select_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._append(table, self._frame(select_sql, parameters))

    def insert_records(self, table: str, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        from pyspark.sql import types as T

        schema = self.spark.table(_backquoted(table)).schema
        names = list(dict.fromkeys(name for record in records for name in record))
        fields = {field.name: field for field in schema.fields}
        unknown = set(names) - fields.keys()
        if unknown:
            raise ValueError(f"{table} has no column(s) {', '.join(sorted(unknown))}")

        def converted(value: Any, data_type: Any) -> Any:
            if value is None:
                return None
            if isinstance(data_type, T.DoubleType):
                return float(value)
            if isinstance(data_type, (T.IntegerType, T.LongType)):
                return int(value)
            return value

        rows = [tuple(converted(record.get(name), fields[name].dataType) for name in names) for record in records]
        frame = self.spark.createDataFrame(rows, T.StructType([fields[name] for name in names]))
        self._append(table, frame)

    def delete_rows(self, table: str, condition_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        [statement] = parse_statements(f"SELECT 1 WHERE {condition_sql}")
        condition = bind_parameters(statement, parameters or {}).args["where"].this
        self._delete(table, condition.sql(dialect=ProjectSpark))

    def add_column_if_absent(self, table: str, column: str, column_type: str) -> None:
        if column not in self.columns(table):
            self.spark.sql(f"ALTER TABLE {_backquoted(table)} ADD COLUMNS "
                           f"(`{column.replace('`', '``')}` {SPARK_TYPES[column_type.upper()]})")
