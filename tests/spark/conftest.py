"""One local Spark session for the whole `spark` test group (docs/scaling.md, "Testing on Spark").

A local SparkSession takes 40-50 s to start and about 3.7 GB, so the group shares one, started on first use and
stopped when the session of tests ends. It runs on two cores with the settings below and downloads nothing
(no spark.jars.packages: Maven is out of reach on CI machines). Without Java or pyspark the group is skipped on a
developer's machine and fails under CI=true, where a skipped group would pass CI without running.
"""

from __future__ import annotations

import os
import shutil

import pytest

# The local session of the tests: two cores, no web UI, few shuffle partitions for small tables, dates and
# timestamps in UTC (as DuckDB), and an in-memory catalogue with its warehouse under pytest's temporary folder.
LOCAL_SPARK_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "2g",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def _missing_requirement() -> str | None:
    """What the group lacks to start a local Spark session, or None."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (install openjdk-17-jre-headless, as .ci/run does)"
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (it is pinned in requirements.lock: make install)"
    return None


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The shared local SparkSession (master local[2])."""
    missing = _missing_requirement()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the spark test group cannot run: {missing}", pytrace=False)
        pytest.skip(f"spark test group skipped: {missing}")
    from pyspark.sql import SparkSession

    folder = tmp_path_factory.mktemp("spark")
    builder = SparkSession.builder.master("local[2]").appName("leg-cramp-spark-tests")
    for key, value in {**LOCAL_SPARK_SETTINGS, "spark.sql.warehouse.dir": str(folder / "warehouse"),
                       "spark.local.dir": str(folder / "local")}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
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
