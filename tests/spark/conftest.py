"""One local Spark session for the whole `spark` test group (docs/scaling.md, "Testing on Spark").

A local SparkSession takes 40-50 s to start and about 3.7 GB, so the group shares one, started on first use and
stopped when the session of tests ends. It is the session a run starts (pipelines/engine/session.py: two cores,
downloads nothing) with its files under pytest's temporary folder. Without Java or pyspark the group is skipped on
a developer's machine and fails under CI=true, where a skipped group would pass CI without running.
"""

from __future__ import annotations

import os

import pytest

from pipelines.engine.session import local_spark_session, spark_requirement_missing


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The shared local SparkSession (master local[2])."""
    missing = spark_requirement_missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the spark test group cannot run: {missing}", pytrace=False)
        pytest.skip(f"spark test group skipped: {missing}")
    session = local_spark_session(tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()


@pytest.fixture
def engines(spark):
    """The same SQL's two engines: a fresh in-memory DuckDB and the shared Spark session, through the engine layer
    (pipelines/engine)."""
    import duckdb

    from pipelines.engine import as_engine

    con = duckdb.connect()
    yield {"duckdb": as_engine(con), "spark": as_engine(spark)}
    con.close()
