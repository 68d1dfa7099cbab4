"""Where a Spark session comes from: a local one (master local[2]) by default, or a Spark Connect server.

A local SparkSession takes 40-50 s to start and about 3.7 GB, so a process starts one and every stage of every run
in that process shares it (`SparkSession.builder.getOrCreate`). Its warehouse (the files of the managed tables the
stages write) is a temporary folder of the process, removed when the process ends; the tables the stages write
are also copied into the run's DuckDB database, which is what is published (pipelines/engine/transfer.py).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

ENGINES = ("duckdb", "spark")
DUCKDB, SPARK = ENGINES

# A local session on two cores: no web UI or progress bars, few shuffle partitions for small tables, dates and timestamps in UTC (as
# DuckDB), an in-memory catalogue, and no downloads (no spark.jars.packages: Maven is out of reach on CI machines).
LOCAL_SPARK_MASTER = "local[2]"
LOCAL_SPARK_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",  # stage progress bars would fill the run's log
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "2g",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def spark_requirement_missing() -> str | None:
    """What this machine lacks to start a local Spark session (Java, pyspark), or None."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (install openjdk-17-jre-headless, as .ci/run does)"
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (it is pinned in requirements.lock: pip install '.[spark]')"
    return None


def local_spark_session(folder: str | os.PathLike | None = None, settings: dict[str, str] | None = None) -> Any:
    """The process's local SparkSession (started on first use) with LOCAL_SPARK_SETTINGS; its warehouse and
    scratch files under `folder` (default: a temporary folder removed when the process ends). With SPARK_REMOTE
    set, a Spark Connect session to that server instead (pyspark reads the variable itself)."""
    from pyspark.sql import SparkSession

    if os.environ.get("SPARK_REMOTE"):
        return SparkSession.builder.getOrCreate()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if folder is None:
        folder = tempfile.mkdtemp(prefix="legcramp-spark-")
        atexit.register(shutil.rmtree, folder, True)
    builder = SparkSession.builder.master(LOCAL_SPARK_MASTER).appName("leg-cramp-pipeline")
    for key, value in {**LOCAL_SPARK_SETTINGS, "spark.sql.warehouse.dir": os.path.join(folder, "warehouse"),
                       "spark.local.dir": os.path.join(folder, "local"), **(settings or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
