"""A run on Spark ingests on DuckDB what the Spark ingest cannot read yet (Parquet files of types whose DuckDB
results Spark does not reproduce; the OMOP, Synthea and site-mapping layouts, shaped by DuckDB SQL), loudly and by
name: a warning in the run's log and
`ingest_engine: duckdb (<reason>)` in every ingest materialisation's metadata, never silently
(pipelines/ingest/formats/__init__.py load_extract_any_format chooses; spark_loader.spark_ingest_refusal says why).

The first tests need no Java: the Spark session is never started for such an extract. The last one runs the ingest
asset in Dagster with `engine: spark`, which needs Java and pyspark to pass the warehouse's configuration check.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.formats import SparkIngest, detect_format, load_extract_any_format, registry
from pipelines.ingest.spark_loader import spark_ingest_refusal
from tests.support.hand_omop import synthea27nj_copy

FALLBACK = "ingest on DuckDB, not on the run's engine Spark: "


def _never_started():
    raise AssertionError("the Spark session was started for an extract the Spark ingest cannot read")


def _refusal(folder: Path) -> str | None:
    detected = detect_format(folder)
    return spark_ingest_refusal(detected.label, registry.format_named(detected.name).sources(detected))


def _with_decimal_values(extract: Path, folder: Path) -> Path:
    """A copy of a Parquet extract whose measurement values are DECIMAL, a type the Spark ingest leaves to DuckDB
    (spark_loader.parquet_refusal)."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(extract, folder)
    path = folder / "measurement.parquet"
    data = pq.read_table(path)
    index = data.schema.get_field_index("value_as_number")
    pq.write_table(data.set_column(index, "value_as_number", data["value_as_number"].cast(pa.decimal128(18, 3))),
                   path)
    return folder


def test_a_parquet_file_of_a_type_spark_does_not_read_is_ingested_on_duckdb_saying_which(generated_extract,
                                                                                          tmp_path):
    extract = _with_decimal_values(generated_extract(50, 1, fmt="parquet").path, tmp_path / "extract")
    warned: list[str] = []
    result = load_extract_any_format(duckdb.connect(), extract, spark=SparkIngest(_never_started, tmp_path),
                                     warn=warned.append)
    assert result.engine == "duckdb"
    assert result.engine_fallback.startswith("measurement.parquet: column value_as_number is decimal128(18, 3); ")
    assert result.ingest_engine == f"duckdb ({result.engine_fallback})"
    assert warned == [FALLBACK + result.engine_fallback]
    # the same load as without Spark
    plain = load_extract_any_format(duckdb.connect(), extract)
    assert (plain.engine, plain.engine_fallback, plain.ingest_engine) == ("duckdb", None, "duckdb")
    assert result.loads == plain.loads and sum(load.rejected for load in plain.loads.values()) > 0


@pytest.mark.shared_data
def test_the_omop_layout_is_refused_by_name(tmp_path):
    omop = synthea27nj_copy(tmp_path / "omop")
    assert _refusal(omop).startswith("the omop_cdm_v5.4 layout is shaped into canonical tables by DuckDB SQL")


def test_a_canonical_extract_is_not_refused(generated_extract, tmp_path):
    assert _refusal(generated_extract(50, 1).path) is None
    assert _refusal(generated_extract(50, 1, fmt="csv.gz").path) is None
    assert _refusal(generated_extract(50, 1, fmt="parquet").path) is None


@pytest.mark.spark
def test_the_run_says_in_its_log_and_metadata_that_it_ingested_on_duckdb(spark, generated_extract, tmp_path):
    import dagster as dg

    from pipelines.asset_keys import staging_key
    from pipelines.ingest.assets import staging_tables
    from pipelines.ingest.resources import ExtractSource
    from pipelines.warehouse import Warehouse

    extract = _with_decimal_values(generated_extract(50, 1, fmt="parquet").path, tmp_path / "extract")
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [staging_tables], instance=instance,
            resources={"extract": ExtractSource(folder=str(extract)),
                       "warehouse": Warehouse(database_path=str(tmp_path / "published.duckdb"), engine="spark")})
        assert result.success
        log = [(entry.level, entry.user_message) for entry in instance.all_logs(result.run_id)]
    [(level, warning)] = [(level, m) for level, m in log if m.startswith(FALLBACK)]
    assert level == logging.WARNING and "measurement.parquet" in warning
    assert not any(m.endswith("(on Spark)") for _, m in log)
    metadata = {event.asset_key: event.materialization.metadata for event in result.get_asset_materialization_events()}
    assert metadata[staging_key("person")]["ingest_engine"].value == "duckdb (" + warning.removeprefix(FALLBACK) + ")"
    assert {m["engine"].value for m in metadata.values()} == {"duckdb"}
    assert all(m["ingest_engine"] == metadata[staging_key("person")]["ingest_engine"] for m in metadata.values())
