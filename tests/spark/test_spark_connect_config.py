"""Spark Connect as a run's engine (SPARK_REMOTE, docs/scaling.md): the URL is judged before the run starts by
pyspark's own Spark Connect client (its URL parser and dependencies), and a remote session needs no local Java.
No server is started here: a Spark Connect server is a second Spark JVM (about 3.7 GB), beside the group's one
session; what a real server would add (the connection, the SQL over gRPC) is untested (docs/scaling.md)."""

from __future__ import annotations

import pytest

from pipelines.engine.session import spark_requirement_missing, spark_remote_problem
from pipelines.operations.run_config import config_problems, study_run_config

pytest.importorskip("pyspark.sql.connect.client", reason="pyspark's connect extra is not installed")


@pytest.mark.parametrize("url", ["sc://localhost:15002", "sc://spark.example.org", "sc://h:443/;token=t;use_ssl=true"])
def test_spark_connect_urls_the_client_takes_are_accepted(url):
    assert spark_remote_problem(url) is None


@pytest.mark.parametrize(("url", "reason"), [("http://spark:15002", "must start with 'sc://'"),
                                             ("sc://", "Hostname is missing"),
                                             ("sc://spark:port", "Port could not be cast")])
def test_a_url_the_client_refuses_fails_the_run_before_it_starts(url, reason, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_REMOTE", url)
    (tmp_path / "extract").mkdir()
    config = study_run_config(tmp_path / "extract", tmp_path / "out" / "leg_cramps.duckdb", engine="spark")
    [problem] = config_problems(config)
    assert problem.startswith("resources.warehouse.config.engine: spark cannot start here: SPARK_REMOTE=")
    assert reason in problem


def test_a_remote_session_needs_no_local_java(monkeypatch):
    monkeypatch.setenv("SPARK_REMOTE", "sc://localhost:15002")
    monkeypatch.setenv("PATH", "/nonexistent")  # no java on the PATH
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert spark_requirement_missing() is None
    monkeypatch.delenv("SPARK_REMOTE")
    assert "no Java runtime" in spark_requirement_missing()
