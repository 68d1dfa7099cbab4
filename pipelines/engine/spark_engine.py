"""The Spark engine: the SQL files of sql/ translated by the project dialect and run on a SparkSession.

What Spark's plain (Parquet) tables do not take is mapped here, in one place:

- CREATE TEMP MACRO: kept as a definition and expanded into later statements (dialect.py expand_macros).
- CREATE TEMP TABLE name AS SELECT ...: a temporary view over the result, materialised once with
  `localCheckpoint` (eager). A plain Spark temporary view is a stored query that every read recomputes, which costs
  the whole lineage again and, for a statement that is not deterministic, can even give other rows; a checkpointed
  view reads the stored rows, like DuckDB's temp table, and lives as long as the session. Managed Parquet tables
  would survive a lost executor but leave files to clean up after every run; work tables are small and per-run.
  A CREATE TEMP VIEW stays a temporary view: recomputed on every read, as on DuckDB.
- PRIMARY KEY and NOT NULL in CREATE TABLE are dropped: Spark's Parquet tables enforce neither (the data-quality
  suites check keys and required columns after the run).
- ALTER TABLE ... ADD COLUMN IF NOT EXISTS: the column is added (ADD COLUMNS) only when the table lacks it;
  ALTER COLUMN ... DROP NOT NULL is a no-op (every Parquet column is nullable).
- DELETE FROM t WHERE c: plain tables cannot delete rows; the rows to keep are materialised and written over the
  table (INSERT OVERWRITE). A table format with row updates (Delta Lake, Iceberg) would run the DELETE itself.
- INSERT INTO t BY NAME SELECT / INSERT INTO t (columns) SELECT: the SELECT's columns are matched to the table's by
  name, missing ones NULL, then appended.
- (DESCRIBE SELECT ...) as a relation (the column-type check of the data-quality suites): the SELECT's schema on
  the session as a VALUES relation (column_name, column_type) with DuckDB's type names.
- Transactions: Spark has none over plain tables; a failed stage leaves what it wrote so far (a rerun rebuilds it).

Results: `query` returns the pandas frame DuckDB would return for the same rows (`duckdb_frame`): the statistics
compute on these frames, and a date column that arrives as Python `date` objects on one engine and `datetime64` on
the other changes what pandas does with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Any, Mapping, Sequence

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp, parse_one

from pipelines.engine.base import Engine
from pipelines.engine.dialect import (
    Macros,
    ProjectSpark,
    bind_parameters,
    define_macro,
    expand_macros,
    is_macro_definition,
    literal_sql,
    parse_statements,
)
from pipelines.sql_quoting import qualified_name, qualified_spark_name, quote_spark_identifier

# DuckDB type names used in the project's Python (ADD COLUMN) and their Spark types.
SPARK_TYPES = {"BOOLEAN": "BOOLEAN", "DATE": "DATE", "INTEGER": "INT", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE",
               "VARCHAR": "STRING"}
# Spark's type names (simpleString) as DuckDB's DESCRIBE names them, for DESCRIBE as a relation (below); a DuckDB
# TIMESTAMP is a timestamp without time zone, read back by Spark as timestamp_ntz.
DUCKDB_TYPE_NAMES = {"string": "VARCHAR", "tinyint": "TINYINT", "smallint": "SMALLINT", "int": "INTEGER",
                     "bigint": "BIGINT", "float": "FLOAT", "double": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE",
                     "timestamp_ntz": "TIMESTAMP", "timestamp": "TIMESTAMP WITH TIME ZONE"}


def duckdb_type_name(spark_type: str) -> str:
    """DuckDB's name of a Spark type (its simpleString); Spark's own name, upper-cased, for one DuckDB lacks."""
    spark_type = spark_type.lower()
    return DUCKDB_TYPE_NAMES.get(spark_type, spark_type.upper().replace(",", ", ")
                                 if spark_type.startswith("decimal") else spark_type.upper())


def _table_name(table: exp.Table) -> str:
    return ".".join(part.name for part in table.parts)




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

# What the Spark engine does with one statement (`spark_steps`): the kinds of step.
SQL = "sql"  # spark.sql(sql)
TEMP_VIEW = "temp view"  # sql (a SELECT) materialised once as the temporary view `table`
DROP = "drop"  # drop the temporary view or table `table`
ADD_COLUMN = "add column"  # add `column` of `column_type` to `table` unless it has it
DELETE = "delete"  # keep the rows of `table` where `sql` (a condition) is not true
INSERT = "insert"  # append the rows of `sql` (a SELECT) to `table`, by `columns` (positional) or by name
NOTHING = "nothing"  # a statement without effect on Spark (DROP NOT NULL)


@dataclass(frozen=True)
class SparkStep:
    kind: str
    sql: str = ""
    table: str = ""
    column: str = ""
    column_type: str = ""
    columns: tuple[str, ...] | None = None


def spark_steps(statement: exp.Expression) -> list[SparkStep]:
    """What the Spark engine runs for one parsed DuckDB statement (parameters already bound); no session needed,
    so the portability check (tests/core/test_sql_portability.py) reads the same Spark SQL the engine runs."""
    if isinstance(statement, exp.Create) and statement.args.get("kind") == "TABLE":
        if _is_temporary(statement):
            return [SparkStep(TEMP_VIEW, statement.expression.sql(dialect=ProjectSpark), _table_name(statement.this))]
        return [SparkStep(SQL, _without_constraints(statement).sql(dialect=ProjectSpark))]
    if isinstance(statement, exp.Alter):
        table = _table_name(statement.this)
        steps = []
        for action in statement.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef):
                steps.append(SparkStep(ADD_COLUMN, table=table, column=action.name,
                                       column_type=action.args["kind"].sql(dialect=ProjectSpark)))
            elif isinstance(action, exp.AlterColumn) and action.args.get("drop") and action.args.get("allow_null"):
                steps.append(SparkStep(NOTHING))  # DROP NOT NULL: Parquet columns are all nullable
            else:
                steps.append(SparkStep(SQL, statement.sql(dialect=ProjectSpark)))
        return steps
    if isinstance(statement, exp.Delete):
        where = statement.args.get("where")
        return [SparkStep(DELETE, where.this.sql(dialect=ProjectSpark) if where else "TRUE",
                          _table_name(statement.this))]
    if isinstance(statement, exp.Drop) and statement.args.get("kind") == "TABLE":
        return [SparkStep(DROP, table=_table_name(table)) for table in statement.args.get("tables") or []]
    if isinstance(statement, exp.Insert) and isinstance(statement.expression, exp.Query):
        target, columns = statement.this, None
        if isinstance(target, exp.Schema):
            columns = tuple(c.name for c in target.expressions)
            target = target.this
        return [SparkStep(INSERT, statement.expression.sql(dialect=ProjectSpark), _table_name(target),
                          columns=columns)]
    return [SparkStep(SQL, statement.sql(dialect=ProjectSpark))]


# Spark's floating-point types (typeName), whose NaN Arrow sorts otherwise than Spark (driver_sort_keys).
FLOATING_POINT_TYPES = ("float", "double")


def driver_sort_keys(statement: exp.Expression) -> list[tuple[str, str, str]] | None:
    """The final ORDER BY of a SELECT whose rows all come back to this process, as pyarrow sort keys (output column,
    order, null placement), when the driver can sort the collected rows itself: Spark's global sort costs two jobs
    of its own (one samples the keys to plan ranges, one shuffles the rows into them), for rows that end up in one
    place anyway. Only when every key is an output column (a column of the SELECT list, or the name of one), so
    the collected rows hold it; None otherwise (a key computed or not selected, a LIMIT or OFFSET after the sort, a
    set operation, `*`). Null placement is the statement's, as parsed in DuckDB's dialect (NULLS LAST unless
    written). Arrow's sort is stable and compares text by its UTF-8 bytes, as Spark does; it places NaN with the
    NULLs, where Spark and DuckDB sort it above every number, so the caller keeps Spark's sort for floating-point
    keys (FLOATING_POINT_TYPES)."""
    order = statement.args.get("order")
    if not isinstance(statement, exp.Select) or order is None or any(
            statement.args.get(clause) for clause in ("limit", "offset", "fetch")):
        return None
    selects = statement.expressions
    names = [select.alias_or_name for select in selects]
    if any(isinstance(select.unalias(), exp.Star) for select in selects) or len(set(names)) != len(names):
        return None
    keys = []
    for ordered in order.expressions:
        key = ordered.this
        if not isinstance(key, exp.Column):
            return None
        matches = [name for select, name in zip(selects, names) if select.unalias() == key and name == key.name]
        if not matches and not key.table and names.count(key.name) == 1:
            matches = [key.name]  # the name of an output column (an alias)
        if not matches:
            return None
        keys.append((matches[0], "descending" if ordered.args.get("desc") else "ascending",
                     "at_start" if ordered.args.get("nulls_first") else "at_end"))
    return keys


class SparkEngine(Engine):
    name = "spark"

    def __init__(self, spark: Any):
        self.spark = spark
        self.macros: Macros = {}  # DuckDB temporary macros defined so far, expanded into later statements

    # --- statements ----------------------------------------------------------------------------------------------
    def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        for statement in parse_statements(sql):
            if is_macro_definition(statement):
                define_macro(statement, self.macros)
                continue
            self._run(bind_parameters(expand_macros(statement, self.macros), parameters or {}))

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """One INSERT of all rows: the statement's VALUES row is repeated with each row's values bound."""
        if not rows:
            return
        [statement] = parse_statements(sql)
        statement = expand_macros(statement, self.macros)
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
        for step in spark_steps(statement):
            self._apply(step)

    def _apply(self, step: SparkStep) -> None:
        if step.kind == SQL:
            self.spark.sql(step.sql)
        elif step.kind == TEMP_VIEW:
            self._create_temp_view(step.table, step.sql)
        elif step.kind == DROP:
            self._drop_table(step.table)
        elif step.kind == ADD_COLUMN:
            if step.column not in self.columns(step.table):
                self.spark.sql(f"ALTER TABLE {qualified_spark_name(step.table)} ADD COLUMNS "
                               f"({quote_spark_identifier(step.column)} {step.column_type})")
        elif step.kind == DELETE:
            self._delete(step.table, step.sql)
        elif step.kind == INSERT:
            frame = self.spark.sql(step.sql)
            if step.columns is not None:
                frame = frame.toDF(*step.columns)  # positional: the i-th SELECT column into the i-th named one
            self._append(step.table, frame)

    def _create_temp_view(self, name: str, select_sql: str) -> None:
        _keep_as_temp_view(self.spark.sql(select_sql), name)

    def _drop_table(self, name: str) -> None:
        schema, _, table = name.rpartition(".")
        if schema in ("", "temp"):
            if self.spark.catalog.dropTempView(table) or schema == "temp":
                return
        self.spark.sql(f"DROP TABLE IF EXISTS {qualified_spark_name(name)}")

    def _append(self, table: str, frame: Any) -> None:
        """Append `frame` to `table`, columns matched by name, the table's others NULL."""
        from pyspark.sql import functions as F

        schema = self.spark.table(qualified_spark_name(table)).schema
        present = set(frame.columns)
        unknown = present - {field.name for field in schema.fields}
        if unknown:
            raise ValueError(f"{table} has no column(s) {', '.join(sorted(unknown))}")
        aligned = frame.select([
            (F.col(f"`{field.name}`") if field.name in present else F.lit(None)).cast(field.dataType).alias(field.name)
            for field in schema.fields])
        aligned.write.insertInto(qualified_spark_name(table))

    def _delete(self, table: str, condition: str, known_to_match: bool = False) -> None:
        """Rewrite `table` without the rows where `condition` (Spark SQL) is true; unless the caller knows some
        match, first ask whether any does (no rewrite of the table for nothing)."""
        rows = self.spark.table(qualified_spark_name(table))
        if not known_to_match and rows.where(f"coalesce(({condition}), false)").isEmpty():
            return
        kept = rows.where(f"NOT coalesce(({condition}), false)").localCheckpoint(eager=True)
        kept.write.insertInto(qualified_spark_name(table), overwrite=True)

    # --- results ---------------------------------------------------------------------------------------------------
    def dataframe(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """The Spark DataFrame of one SELECT (DuckDB SQL with $name parameters), not yet computed."""
        return self.spark.sql(self._select(sql, parameters).sql(dialect=ProjectSpark))

    def _select(self, sql: str, parameters: Mapping[str, Any] | None) -> exp.Expression:
        """One SELECT of DuckDB SQL, macros expanded, parameters bound and DESCRIBE relations resolved."""
        [statement] = parse_statements(sql)
        return self._described_relations(bind_parameters(expand_macros(statement, self.macros), parameters or {}))

    def _described_relations(self, statement: exp.Expression) -> exp.Expression:
        """`(DESCRIBE SELECT ...)` used as a relation (DuckDB: one row per column of the SELECT; the data-quality
        check of column types reads it) as the relation (column_name, column_type) of the SELECT's schema on this
        session, with DuckDB's type names: Spark's DESCRIBE is a statement, not a relation."""
        def replace(node: exp.Expression) -> exp.Expression:
            if not (isinstance(node, exp.Describe) and isinstance(node.parent, exp.Subquery)):
                return node
            fields = self.spark.sql(node.this.sql(dialect=ProjectSpark)).schema.fields
            rows = ", ".join(
                f"({literal_sql(field.name)}, {literal_sql(duckdb_type_name(field.dataType.simpleString()))})"
                for field in fields)
            return parse_one(f"SELECT column_name, column_type FROM (VALUES {rows}) AS described(column_name, "
                             f"column_type)", read=ProjectSpark)

        return statement.transform(replace)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        statement = self._select(sql, parameters)
        sort_keys = driver_sort_keys(statement)
        if sort_keys:
            unsorted_statement = statement.copy()
            unsorted_statement.set("order", None)
            unsorted = self.spark.sql(unsorted_statement.sql(dialect=ProjectSpark))
            if not any(unsorted.schema[name].dataType.typeName() in FLOATING_POINT_TYPES for name, _, _ in sort_keys):
                rows = unsorted.toArrow()
                return duckdb_frame(rows.take(pc.sort_indices(rows, sort_keys=sort_keys)))
        return duckdb_frame(self.spark.sql(statement.sql(dialect=ProjectSpark)).toArrow())

    def records(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return [row.asDict() for row in self.dataframe(sql, parameters).collect()]

    # --- tables ----------------------------------------------------------------------------------------------------
    def table_names(self) -> set[str]:
        # SHOW TABLES reads names only; catalog.listTables fetches every table's metadata.
        names = set()
        for (database,) in self.spark.sql("SHOW DATABASES").collect():
            for row in self.spark.sql(f"SHOW TABLES IN {qualified_spark_name(database)}").collect():
                if not row["isTemporary"]:
                    names.add(f"{database}.{row['tableName']}")
        return names

    def columns(self, table: str) -> list[str]:
        return self.spark.table(qualified_spark_name(table)).columns

    def create_temp_table(self, name: str, select_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        _keep_as_temp_view(self.dataframe(select_sql, parameters), name)

    def create_temp_table_in_parts(self, name: str, select_sql: str, parameters: Mapping[str, Any],
                                   parts: Sequence[Mapping[str, Any]]) -> None:
        # One plan over the union: Spark partitions the work itself, and a temporary view cannot be appended to.
        frames = [self.dataframe(select_sql, {**parameters, **part}) for part in parts]
        _keep_as_temp_view(reduce(lambda rows, more: rows.unionByName(more), frames), name)

    def drop_temp_table(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)

    def insert_select(self, table: str, select_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._append(table, self.dataframe(select_sql, parameters))

    def insert_records(self, table: str, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        from pyspark.sql import types as T

        schema = self.spark.table(qualified_spark_name(table)).schema
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

    def _condition(self, condition_sql: str, parameters: Mapping[str, Any] | None) -> str:
        """A DuckDB condition with $name parameters as Spark SQL."""
        [statement] = parse_statements(f"SELECT 1 WHERE {condition_sql}")
        return bind_parameters(expand_macros(statement, self.macros), parameters or {}).args["where"].this.sql(
            dialect=ProjectSpark)

    def delete_rows(self, table: str, condition_sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._delete(table, self._condition(condition_sql, parameters))

    def delete_rows_where(self, conditions: Mapping[str, str], parameters: Mapping[str, Any] | None = None) -> None:
        """One query finds the tables that hold rows to delete (one Spark job, where asking each table costs a job
        of its own: a study's rebuild deletes from eight tables, usually none of which holds its rows); those are
        rewritten in the mapping's order, each condition evaluated as the table is rewritten. A table is skipped
        when its condition matched no row before the first rewrite, so a condition that reads another table of the
        mapping must not match more rows once that table lost some (an IN over it only matches fewer; a NOT IN
        would not do)."""
        tables = list(conditions)
        holding = self.records(
            "SELECT DISTINCT table_position FROM ("
            + " UNION ALL ".join(f"SELECT {position} AS table_position FROM {qualified_name(*table.split('.', 1))} "
                                 f"WHERE {conditions[table]}" for position, table in enumerate(tables))
            + ")", parameters)
        positions = {row["table_position"] for row in holding}
        for position, table in enumerate(tables):
            if position in positions:
                self._delete(table, self._condition(conditions[table], parameters), known_to_match=True)

    def add_column_if_absent(self, table: str, column: str, column_type: str) -> None:
        self.add_columns_if_absent(table, {column: column_type})

    def add_columns_if_absent(self, table: str, columns: Mapping[str, str]) -> None:
        present = set(self.columns(table))
        missing = [f"{quote_spark_identifier(name)} {SPARK_TYPES[column_type.upper()]}"
                   for name, column_type in columns.items() if name not in present]
        if missing:
            self.spark.sql(f"ALTER TABLE {qualified_spark_name(table)} ADD COLUMNS ({', '.join(missing)})")


def _keep_as_temp_view(frame: Any, name: str) -> None:
    """A temporary table on Spark: the frame computed once (a local checkpoint) and named, so later reads see the stored
    rows, never a recomputation (a plain temporary view would rerun its query on every read)."""
    frame.localCheckpoint(eager=True).createOrReplaceTempView(name)


def duckdb_frame(rows: pa.Table) -> pd.DataFrame:
    """The pandas frame DuckDB's `.df()` gives for `rows` (a Spark result as Arrow), converted by DuckDB itself so
    the dtypes are DuckDB's by construction: dates and timestamps as datetime64[us] (Spark's toPandas gives Python
    `date` objects), integers with NULLs as pandas' nullable integers (toPandas: float64), booleans as bool or
    pandas' nullable boolean (toPandas: object). Spark's timestamps are instants in the session time zone (UTC in
    this project, as DuckDB's TIMESTAMP); they arrive without a zone, as DuckDB's TIMESTAMP does."""
    columns = []
    for field, column in zip(rows.schema, rows.columns):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            column = column.cast(pa.timestamp(field.type.unit))
        columns.append(column)
    rows = pa.Table.from_arrays(columns, names=rows.column_names)
    with duckdb.connect() as con:
        return con.from_arrow(rows).df()

