"""The stage inputs of a run on Spark reach Spark once (pipelines/engine/transfer.py hand_stage_inputs): after the
run's Spark ingest, the phenotype stage reads Spark's own staging tables and exports from DuckDB only what Spark
lacks (vocabulary.concept_code_map, which DuckDB writes after the load); tables another run's ingest wrote in the
same session, under the same names, are not taken for this run's."""

from __future__ import annotations

import duckdb
import pytest

from pipelines import extract_spec as spec
from pipelines.engine import as_engine
from pipelines.engine.fingerprint import table_fingerprint
from pipelines.engine.transfer import hand_stage_inputs
from pipelines.ingest.formats import SparkIngest, load_extract_any_format
from tests.spark.spark_catalog import empty_catalog
from tests.support.planted_rejects import write_fixture

pytestmark = pytest.mark.spark

STAGING = tuple(f"staging.{table.name}" for table in spec.TABLES)
ONLY_ON_DUCKDB = ("vocabulary.concept_code_map",)


def test_the_phenotype_stage_reads_the_runs_spark_staging_and_exports_only_what_spark_lacks(spark, tmp_path):
    with empty_catalog(spark):
        ingest_folder = tmp_path / "run.spark" / "ingest"
        con = duckdb.connect()
        result = load_extract_any_format(con, write_fixture(tmp_path / "extract"),
                                         spark=SparkIngest(lambda: spark, ingest_folder))
        assert result.engine == "spark"
        handed = hand_stage_inputs(spark, con, tmp_path / "run.spark" / "stage_inputs", owner=str(ingest_folder))
        assert (sorted(handed.reused), handed.exported) == (sorted(STAGING), ONLY_ON_DUCKDB)
        assert [path.name for path in (tmp_path / "run.spark" / "stage_inputs").iterdir()] == [
            "vocabulary.concept_code_map.parquet"]
        # What the stages read on Spark is what the analysts query in DuckDB.
        for table in STAGING + ONLY_ON_DUCKDB:
            expected = table_fingerprint(as_engine(con), table)
            assert table_fingerprint(as_engine(spark), table).differences(expected) == [], table

        # Another run (its own ingest folder) in the same session: the tables are not its, so all are exported.
        other = hand_stage_inputs(spark, con, tmp_path / "other.spark" / "stage_inputs",
                                  owner=str(tmp_path / "other.spark" / "ingest"))
        assert other.reused == ()
        assert sorted(other.exported) == sorted(STAGING + ONLY_ON_DUCKDB)
        # ... and the registered copies are not marked as the first run's either.
        again = hand_stage_inputs(spark, con, tmp_path / "again.spark" / "stage_inputs", owner=str(ingest_folder))
        assert again.reused == ()
