"""The Spark group's shared session (tests/spark/conftest.py): without Java it is skipped on a developer's machine
and fails under CI=true, where a skipped group would let CI pass without comparing anything. Run in a child pytest
whose PATH holds no `java`, so no Spark session starts here. And the group is whole where `make test-spark` looks
for it: every test marked spark is under tests/spark. And its queries run interpreted except where a test asks for
Spark's compiled evaluation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.paths import REPO_ROOT

A_SPARK_TEST = "tests/spark/test_fingerprint.py::test_canonical_text_of_every_kind_is_identical_on_both_engines"


def run_without_java(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in ("JAVA_HOME", "CI")}
    environment["PATH"] = str(tmp_path)  # an empty folder: no java on the PATH
    if ci is not None:
        environment["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", A_SPARK_TEST],
                          cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci, outcome, exit_code", [(None, "1 skipped", 0), ("true", "1 error", 1)])
def test_without_java_the_group_skips_but_fails_under_ci(tmp_path, ci, outcome, exit_code):
    result = run_without_java(tmp_path, ci)
    assert outcome in result.stdout, result.stdout + result.stderr
    assert result.returncode == exit_code
    assert "no Java runtime" in result.stdout


def test_every_test_marked_spark_is_under_tests_spark():
    """`make test-spark` collects tests/spark only: a test marked spark anywhere else would run nowhere."""
    tests = REPO_ROOT / "tests"
    elsewhere = [str(path.relative_to(REPO_ROOT)) for path in sorted(tests.rglob("*.py"))
                 if path.relative_to(tests).parts[0] != "spark" and "mark.spark" in path.read_text()]
    assert elsewhere == []


@pytest.mark.spark
def test_the_groups_session_is_the_one_a_runs_stages_find(spark):
    """Started while pytest collected the group (in a thread of its own: tests/spark/conftest.py) or on first use,
    the group's session is this thread's active session, the one a Spark run's stages take as the process's
    (`local_spark_session()`, pipelines/engine/session.py)."""
    from pyspark.sql import SparkSession

    from pipelines.engine.session import local_spark_session

    assert SparkSession.getActiveSession() is spark
    assert local_spark_session() is spark


def _classes_compiled_for(spark, sql: str) -> int:
    """How many classes Spark compiles (Janino) to run `sql`, from Spark's own code-generation metric."""
    compilations = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    before = compilations.getCount()
    spark.sql(sql).collect()
    return compilations.getCount() - before


@pytest.mark.spark
def test_the_group_evaluates_interpreted_and_compiled_evaluation_compiles(spark, request):
    """The group's queries run interpreted (conftest.py INTERPRETED_EVALUATION: the settings are Spark's own and
    would be ignored, not refused, if a release renamed them), and `compiled_evaluation` gives back the compiled
    evaluation a run uses. After a first query (a session's first compiles a few classes whatever the setting),
    a query with new constants compiles nothing interpreted and new classes compiled (whole-stage code holds the
    constants)."""
    query = ("SELECT k, sum(v * {n}) AS total, max(CAST(v AS DOUBLE) / {n}) AS largest "
             "FROM (SELECT id % 7 AS k, id AS v FROM range(100)) GROUP BY k ORDER BY k")
    _classes_compiled_for(spark, query.format(n=17001))
    interpreted = _classes_compiled_for(spark, query.format(n=17011))
    request.getfixturevalue("compiled_evaluation")
    compiled = _classes_compiled_for(spark, query.format(n=17021))
    assert (interpreted, compiled > 0) == (0, True), (interpreted, compiled)
