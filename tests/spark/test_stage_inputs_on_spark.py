"""The stage inputs of a run on Spark reach Spark once (pipelines/engine/transfer.py hand_stage_inputs): the tables
a Spark ingest of the same run wrote (marked with the run's ingest folder) are read where they are, and only what
Spark lacks is exported from DuckDB; tables of the same names that another run wrote in the same session, or that
were registered from exported files, are not taken for this run's.

That a run's Spark ingest marks its staging tables, and that its phenotype stage then exports only
vocabulary.concept_code_map with the published tables unchanged, is checked on the real job in
tests/spark/test_dagster_spark.py."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.engine.transfer import hand_stage_inputs, mark_loaded_for
from tests.spark.spark_catalog import empty_catalog

pytestmark = pytest.mark.spark

ROWS = "VALUES ('p1', 1950), ('p2', 1960)"


def test_only_the_runs_own_spark_tables_are_reused_and_the_rest_exported(spark, tmp_path):
    con = duckdb.connect()
    for schema in ("staging", "vocabulary"):
        con.execute(f"CREATE SCHEMA {schema}")
    con.execute(f"CREATE TABLE staging.person AS SELECT * FROM ({ROWS}) t(person_id, year_of_birth)")
    con.execute(f"CREATE TABLE staging.death AS SELECT * FROM ({ROWS}) t(person_id, year_of_birth)")
    con.execute("CREATE TABLE vocabulary.concept_code_map (vocabulary VARCHAR, code VARCHAR)")
    with empty_catalog(spark):
        spark.sql("CREATE DATABASE IF NOT EXISTS staging")
        for table in ("person", "death"):
            spark.sql(f"CREATE TABLE staging.{table} USING parquet "
                      f"AS SELECT * FROM {ROWS} AS t(person_id, year_of_birth)")
        mark_loaded_for(spark, ["staging.person"], str(tmp_path / "run_a" / "ingest"))  # death: no mark

        handed = hand_stage_inputs(spark, con, tmp_path / "run_a" / "stage_inputs", str(tmp_path / "run_a" / "ingest"))
        assert handed.reused == ("staging.person",)
        assert handed.exported == ("staging.death", "vocabulary.concept_code_map")
        assert sorted(path.name for path in (tmp_path / "run_a" / "stage_inputs").iterdir()) == [
            "staging.death.parquet", "vocabulary.concept_code_map.parquet"]
        assert spark.catalog.tableExists("vocabulary.concept_code_map")

        # Another run in the same session: run A's table is not its own.
        other = hand_stage_inputs(spark, con, tmp_path / "run_b" / "stage_inputs", str(tmp_path / "run_b" / "ingest"))
        assert other.reused == ()
        assert other.exported == ("staging.death", "staging.person", "vocabulary.concept_code_map")
        # ... and the table registered from run B's exported file is no longer run A's.
        again = hand_stage_inputs(spark, con, tmp_path / "run_c" / "stage_inputs", str(tmp_path / "run_a" / "ingest"))
        assert again.reused == ()
        assert {tuple(row) for row in spark.table("staging.person").collect()} == {("p1", 1950), ("p2", 1960)}
