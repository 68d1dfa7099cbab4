"""One local Spark session for the whole `spark` test group (docs/scaling.md, "Testing on Spark"), and the group's
one pair of study runs.

A local SparkSession takes from 5 s (quiet machine) to over a minute (loaded) to start and about 3 GB, so the group
shares one, stopped when the session of tests ends. When the group runs alone (`pytest -m spark`, as
`make test-spark` and CI run it) the session starts while pytest collects the group's modules (`pytest_configure`),
otherwise on first use. It is the session a run starts (pipelines/engine/session.py: two cores, downloads nothing)
with its files under pytest's temporary folder, and settings of its own (TEST_SESSION_SETTINGS). Without Java or
pyspark the group is skipped on a developer's machine and fails under CI=true, where a skipped group would pass CI
without running.

The study job runs once on each engine for the whole group (`study_runs`): the Spark run is the group's most costly
step, and the modules that compare what it built (tests/spark/test_dagster_spark.py: the published databases;
tests/spark/test_same_study_on_spark.py: Spark's own tables and the statistics read from them) share it. They run
first (`pytest_collection_modifyitems`), while the session's catalogue still holds the Spark run's tables; the
other modules empty the catalogue before they write to it (tests/spark/spark_catalog.py). The DuckDB run goes on in
a process of its own while this one runs the Spark run (tests/spark/study_runs.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from pipelines.engine.session import local_spark_session, spark_remote, spark_requirement_missing
from tests.spark.own_process import started_in_own_process
from tests.spark.spark_catalog import claim_catalog, empty_catalog
from tests.spark.study_runs import (STUDY_RUN_PATIENTS, STUDY_RUN_SEED, STUDY_RUNS_FIXTURE, StudyRun,
                                    read_study_run, run_study_in_own_instance)

# The JVM of the test session compiles with its first just-in-time tier only (C1) and collects garbage in one
# thread. The group runs some thousands of small queries once each: with both tiers the JVM spent more CPU compiling
# Spark's code for its optimising tier (C2) than running queries (session 12, under load: the compiler threads
# held 77 of 140 CPU seconds of the JVM in the study runs), and G1's concurrent threads cost more than they save on
# a 2 GB heap. Phenotype stage of 300 patients, JVM CPU seconds: 54.7 as a run starts it, 35.2 with C1 only, 29.8
# with C1 and the serial collector. A run on real data keeps the JVM's defaults (pipelines/engine/session.py).
# The JVM also skips the bytecode verification of classes not from the JDK (Spark's jars and the classes Spark
# generates for each query; verification only refuses malformed bytecode, so results cannot change), Spark keeps up
# to 1,000 generated classes for reuse instead of 100, and describes each query's plan to its listeners in the
# simple form instead of the formatted one (no UI reads it). Session 16, one study's cohort build on Spark
# (low_magnesium_tested, 300 patients, the same 112 jobs and rows), JVM CPU seconds: the start 6.4 -> 4.9,
# registering 19 Parquet tables 6.1 -> 4.9, the build 28.2 -> 24.8 (Spark's generated classes 344 -> 324).
# Spark evaluates the group's queries interpreted instead of compiling Java classes for each (INTERPRETED_EVALUATION):
# on 300 patients compiling costs more than the rows. The study-runs fixture, session 17, quiet, the same 958-967
# jobs and the same fingerprints: 170 s and 164 JVM CPU seconds compiled, 156 s and 142 interpreted (turning
# adaptive query execution off as well gave 547 jobs but 156 JVM CPU seconds, so it stays on). Spark's own test
# suites run every expression both ways. Compiled, as a run evaluates (`compiled_evaluation`): the values where engines silently
# differ (test_engine_traps.py), the canonical text of every kind of value (test_fingerprint.py), and the tests whose
# work is on many rows (the hostile extract's ingest, the benchmark's task CPU), where compiled code is faster.
INTERPRETED_EVALUATION = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
COMPILED_EVALUATION = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}
TEST_SESSION_SETTINGS = {
    "spark.driver.extraJavaOptions":
        "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:+UnlockDiagnosticVMOptions -XX:-BytecodeVerificationRemote",
    "spark.sql.codegen.cache.maxEntries": "1000",
    "spark.sql.ui.explainMode": "simple",
    **INTERPRETED_EVALUATION,
}


def require_spark() -> None:
    """Skip (fail under CI=true) when this machine cannot start the group's Spark session."""
    missing = spark_requirement_missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the spark test group cannot run: {missing}", pytrace=False)
        pytest.skip(f"spark test group skipped: {missing}")


# The session started while pytest collects the group (`pytest_configure`), when it was.
EARLY_SESSION = pytest.StashKey[Future]()


def starts_session_while_collecting(config: pytest.Config) -> bool:
    """Whether this pytest process runs the Spark group alone, in one process, on a machine that can start its
    session: `pytest -m spark ...` (`make test-spark`, CI), neither collecting only nor spreading tests over
    pytest-xdist workers (each worker would start a session of its own), nor connected to a Spark Connect server."""
    return (config.getoption("markexpr", "").strip() == "spark" and not config.getoption("collectonly", False)
            and not config.getoption("numprocesses", None) and not hasattr(config, "workerinput")
            and spark_remote() is None and spark_requirement_missing() is None)


@pytest.hookimpl(trylast=True)  # after pytest's own configuration, which makes its temporary-folder factory
def pytest_configure(config: pytest.Config) -> None:
    """Start the group's session in a thread while pytest collects the group's modules: the JVM's start (the
    Spark JVM's own CPU) and the collection's imports (this process's) then take one core each instead of following
    one another; the `spark` fixture waits for it."""
    if starts_session_while_collecting(config):
        folder = config._tmp_path_factory.mktemp("spark")  # what the tmp_path_factory fixture returns
        starting = ThreadPoolExecutor(1, thread_name_prefix="spark-session")
        config.stash[EARLY_SESSION] = starting.submit(local_spark_session, folder, TEST_SESSION_SETTINGS)
        starting.shutdown(wait=False)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop a session started while collecting that no test asked for (stopping one the fixture stopped does
    nothing)."""
    early = config.stash.get(EARLY_SESSION, None)
    if early is not None and early.exception() is None:
        early.result().stop()


@pytest.fixture(scope="session")
def spark(request, tmp_path_factory):
    """The shared local SparkSession (master local[2]), started while pytest collected the group when it runs alone
    (`pytest_configure`), otherwise now."""
    require_spark()
    early = request.config.stash.get(EARLY_SESSION, None)
    if early is not None:
        from pyspark.sql import SparkSession

        session = early.result()
        # The active session is a setting of each thread: make the session started in another thread this thread's
        # too, so that `local_spark_session()` (every stage of a Spark run) finds it as when it started here.
        SparkSession._get_j_spark_session_class(session._jvm).setActiveSession(session._jsparkSession)
    else:
        session = local_spark_session(tmp_path_factory.mktemp("spark"), TEST_SESSION_SETTINGS)
    yield session
    session.stop()


@pytest.fixture
def compiled_evaluation(spark):
    """The shared session evaluating as a run's does (Spark's defaults: whole-stage code generation, compiled
    expressions) for one test, then interpreted again (both are settings of the session's SQL configuration)."""
    for key, value in COMPILED_EVALUATION.items():
        spark.conf.set(key, value)
    yield spark
    for key, value in INTERPRETED_EVALUATION.items():
        spark.conf.set(key, value)


@pytest.fixture
def engines(spark):
    """The same SQL's two engines: a fresh in-memory DuckDB and the shared Spark session, through the engine layer
    (pipelines/engine)."""
    import duckdb

    from pipelines.engine import as_engine

    con = duckdb.connect()
    yield {"duckdb": as_engine(con), "spark": as_engine(spark)}
    con.close()


@pytest.fixture(scope="session")
def study_runs(request, generated_extract, tmp_path_factory) -> Iterator[dict[str, StudyRun]]:
    """{"duckdb": StudyRun, "spark": StudyRun}: the study job run once on each engine (tests/spark/study_runs.py) on
    the generated extract with planted defects, the DuckDB run in a process of its own while the Spark session
    starts (`spark`, asked for only then) and the Spark run goes on here. The session's catalogue then holds the
    Spark run's tables, claimed for this fixture (`spark_catalog.claim_catalog`) until another module empties it."""
    require_spark()
    extract = generated_extract(STUDY_RUN_PATIENTS, STUDY_RUN_SEED).path
    folder = tmp_path_factory.mktemp("study_runs")
    with ExitStack() as catalog:
        with started_in_own_process(run_study_in_own_instance, extract, folder / "duckdb", "duckdb") as duckdb_run:
            spark = request.getfixturevalue("spark")
            catalog.enter_context(empty_catalog(spark))
            spark_run_id = run_study_in_own_instance(extract, folder / "spark", "spark")
            duckdb_run_id = duckdb_run.result()
        runs = {"duckdb": read_study_run(folder / "duckdb", duckdb_run_id),
                "spark": read_study_run(folder / "spark", spark_run_id)}
        claim_catalog(spark, STUDY_RUNS_FIXTURE)
        yield runs


def pytest_collection_modifyitems(items):
    """The tests of the study runs first, in their usual order: they read the Spark run's tables from the session's
    catalogue, which the other modules empty."""
    items.sort(key=lambda item: STUDY_RUNS_FIXTURE not in getattr(item, "fixturenames", ()))
