"""Where a Spark session comes from: a local one (master local[2]) by default, or the Spark Connect server that
SPARK_REMOTE names (checked before a run starts: `spark_requirement_missing`, through Warehouse's config check).

A local SparkSession takes 5 s (quiet machine) to over a minute (loaded) to start and holds about 3 GB at work
(docs/scaling.md, *Benchmark*), so a process starts one and every stage of every run in that process shares it
(`SparkSession.builder.getOrCreate`). Its warehouse (the files of the managed tables the
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


def spark_remote() -> str | None:
    """The Spark Connect server this process is pointed at (SPARK_REMOTE, the variable pyspark itself reads), or
    None for a local session."""
    return os.environ.get("SPARK_REMOTE") or None


def spark_remote_problem(url: str) -> str | None:
    """Why pyspark's Spark Connect client refuses `url` (`sc://host[:port][/;param=value...]`), or None. The client's
    own URL parser judges it (scheme, host, port), and its dependencies (pyspark's `connect` extra: grpcio,
    grpcio-status, googleapis-common-protos) must import; nothing connects, so a server that is down or a wrong
    token shows only when the run's first stage starts its session."""
    try:
        from pyspark.sql.connect.client import DefaultChannelBuilder
    except ImportError as error:
        return f"pyspark's Spark Connect client cannot be imported ({error}): install pyspark with its connect extra"
    try:
        DefaultChannelBuilder(url)
    except Exception as error:  # noqa: BLE001 - the client's refusal, whatever its class, is the problem reported
        return f"SPARK_REMOTE={url!r} is not a Spark Connect URL: {str(error).splitlines()[0]}"
    return None


def spark_requirement_missing() -> str | None:
    """What this machine lacks to start its Spark session, or None: with SPARK_REMOTE, a URL the Spark Connect
    client takes (no Java needed: the server runs Spark); otherwise Java and pyspark for a local session."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (it is pinned in requirements.lock: pip install '.[spark]')"
    remote = spark_remote()
    if remote is not None:
        return spark_remote_problem(remote)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (install openjdk-17-jre-headless, as .ci/run does)"
    return None


def local_spark_session(folder: str | os.PathLike | None = None, settings: dict[str, str] | None = None) -> Any:
    """The process's local SparkSession (started on first use) with LOCAL_SPARK_SETTINGS; its warehouse and
    scratch files under `folder` (default: a temporary folder removed when the process ends). With SPARK_REMOTE
    set, a Spark Connect session to that server instead (pyspark reads the variable itself)."""
    from pyspark.sql import SparkSession

    remote = spark_remote()
    if remote is not None:
        return SparkSession.builder.remote(remote).getOrCreate()
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
