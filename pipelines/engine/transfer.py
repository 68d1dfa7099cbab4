"""Tables handed between DuckDB and Spark, for stages that run on Spark while ingest and publishing stay on DuckDB.

    export_stage_inputs(con, folder)              DuckDB: every staging.* and vocabulary.* table as
                                                  <schema>.<table>.parquet (what the phenotype and cohort stages read)
    register_stage_inputs(spark, folder)          Spark: those files as tables of the same names (external Parquet)
    hand_stage_inputs(spark, con, folder, owner)  Spark: the stage inputs, reusing the tables a Spark ingest of the
                                                  same run wrote (`mark_loaded_for`) and exporting only the others
    copy_tables_to_duckdb(spark, con, tables, folder[, parameters])
                                                  DuckDB: each named Spark table's rows replace the DuckDB table's,
                                                  or only the rows a condition per table selects (one study's)
                                                  (written by Spark as Parquet, read by DuckDB through Arrow)

Parquet is the hand-over because both engines write and read it natively and it keeps every column's type; no
row passes through Python. DuckDB keeps its own table definitions (column types, keys, comments): a table the
DuckDB stage would create is created by the caller with the stage's own DDL first, and the copy fills it by column
name, adding the columns Spark's table has and DuckDB's lacks (the per-study phenotype columns of
cohort.study_population).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from pipelines.engine.duckdb_engine import DuckDBEngine
from pipelines.engine.spark_engine import SparkEngine
from pipelines.sql_quoting import (qualified_name, qualified_spark_name, quote_identifier, quote_literal,
                                   quote_spark_identifier, quote_spark_literal)

# The schemas the phenotype and cohort stages read and the ingest writes.
STAGE_INPUT_SCHEMAS = ("staging", "vocabulary")
# The table property naming whose tables a Spark table holds (`mark_loaded_for`): the session is the process's, and
# every run in the process writes the same table names, so a table's name alone does not say which run wrote it.
LOADED_FOR = "legcramp.loaded_for"


@dataclass(frozen=True)
class StageInputs:
    """How the stage inputs reached Spark: tables Spark already held for the run, and tables exported from DuckDB."""

    reused: tuple[str, ...]
    exported: tuple[str, ...]


def stage_input_tables(con: Any) -> list[str]:
    """Every table ("schema.table") of the stage-input schemas of a DuckDB connection."""
    return [f"{schema}.{table}" for schema, table in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE list_contains($schemas, schema_name) "
        "ORDER BY ALL", {"schemas": list(STAGE_INPUT_SCHEMAS)}).fetchall()]


def export_stage_inputs(con: Any, folder: Path, leave_out: Iterable[str] = ()) -> list[Path]:
    """Write every table of the stage-input schemas of a DuckDB connection as Parquet, but those named in
    `leave_out`; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    left_out = set(leave_out)
    for schema, table in (name.split(".", 1) for name in stage_input_tables(con) if name not in left_out):
        path = folder / f"{schema}.{table}.parquet"
        con.execute(f"COPY {qualified_name(schema, table)} TO {quote_literal(path)} (FORMAT parquet)")
        files.append(path)
    return files


def register_stage_inputs(spark: Any, folder: Path) -> list[str]:
    """Make every <schema>.<table>.parquet of `folder` a Spark table <schema>.<table>; returns the table names."""
    names = []
    for path in sorted(folder.glob("*.parquet")):
        schema, table = path.stem.split(".", 1)
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {quote_spark_identifier(schema)}")
        spark.sql(f"DROP TABLE IF EXISTS {quote_spark_identifier(schema)}.{quote_spark_identifier(table)}")
        spark.catalog.createTable(f"{schema}.{table}", path=str(path.resolve()), source="parquet")
        names.append(f"{schema}.{table}")
    return names


def mark_loaded_for(spark: Any, tables: Iterable[str], owner: str) -> None:
    """Mark each Spark table ("schema.table") as written for `owner` (a run's Spark ingest folder: unique per run)."""
    for table in tables:
        spark.sql(f"ALTER TABLE {qualified_spark_name(table)} "
                  f"SET TBLPROPERTIES ({quote_spark_literal(LOADED_FOR)} = {quote_spark_literal(owner)})")


def tables_loaded_for(spark: Any, tables: Iterable[str], owner: str) -> list[str]:
    """The tables of `tables` that Spark's catalogue holds marked for `owner` (catalogue reads only, no job)."""
    owned = []
    for table in tables:
        if not spark.catalog.tableExists(table):
            continue
        shown = spark.sql(f"SHOW TBLPROPERTIES {qualified_spark_name(table)}").collect()
        properties = {row[0]: row[1] for row in shown}
        if properties.get(LOADED_FOR) == owner:
            owned.append(table)
    return owned


def hand_stage_inputs(spark: Any, con: Any, folder: Path, owner: str) -> StageInputs:
    """Make every stage input of DuckDB `con` (`stage_input_tables`) a Spark table: the tables Spark already holds
    for `owner` (a Spark ingest of the same run wrote them, and copied them into `con`: the same rows) are used as
    they are; the others are exported from DuckDB into `folder` and registered (`export_stage_inputs`,
    `register_stage_inputs`)."""
    wanted = stage_input_tables(con)
    reused = tables_loaded_for(spark, wanted, owner)
    exported = export_stage_inputs(con, folder, leave_out=reused)
    if exported:
        register_stage_inputs(spark, folder)
    return StageInputs(tuple(reused), tuple(path.stem for path in exported))


def copy_tables_to_duckdb(spark: Any, con: Any, tables: Iterable[str] | Mapping[str, str], folder: Path,
                          parameters: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Replace rows of each table ("schema.table") of DuckDB `con` with the rows of the Spark table of the same
    name, in one DuckDB transaction; a table DuckDB lacks is created with the Parquet file's types. `tables` names
    whole tables, or maps each table to a condition (DuckDB SQL with `parameters`, as the stages' SQL is written):
    then only the rows where it holds are replaced, on both sides (e.g. one study's rows). DuckDB's rows are deleted
    for every table first, in the mapping's order, then Spark's inserted: a condition may read another of the
    tables. Returns the rows copied per table."""
    import pyarrow.dataset as ds

    conditions = dict(tables) if isinstance(tables, Mapping) else dict.fromkeys(tables, "TRUE")
    spark_engine, duck = SparkEngine(spark), DuckDBEngine(con)
    written = {}
    for table, condition in conditions.items():
        path = folder / table
        rows = spark_engine.dataframe(f"SELECT * FROM {qualified_name(*table.split('.', 1))} WHERE {condition}",
                                      parameters)
        rows.write.mode("overwrite").parquet(str(path))
        written[table] = path
    present = duck.table_names()
    copied = {}
    with duck.transaction():
        for table, condition in conditions.items():
            if table in present:
                duck.delete_rows(table, condition, parameters)
        for table, path in written.items():
            schema, name = table.split(".", 1)
            # Spark names its files part-*.parquet beside _SUCCESS and checksums, which Arrow's dataset skips.
            rows = ds.dataset(str(path), format="parquet")
            if not rows.schema.names:  # no file written: no rows
                copied[table] = 0
                continue
            con.register("spark_rows", rows)
            try:
                if table not in present:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
                    con.execute(f"CREATE TABLE {qualified_name(schema, name)} AS SELECT * FROM spark_rows")
                else:
                    columns = set(duck.columns(table))
                    for column, column_type, *_ in con.execute("DESCRIBE SELECT * FROM spark_rows").fetchall():
                        if column not in columns:
                            duck.add_column_if_absent(table, column, column_type)
                    con.execute(f"INSERT INTO {qualified_name(schema, name)} BY NAME SELECT * FROM spark_rows")
                [(copied[table],)] = con.execute("SELECT count(*) FROM spark_rows").fetchall()
            finally:
                con.unregister("spark_rows")
    return copied
