"""Faults around publishing: processes killed (SIGKILL) between publishing steps, a stale write-ahead log beside the
published database, runs killed part-way and what they leave. Real files, real DuckDB, real processes and a real
Dagster instance; the kills are real (the publishing process kills itself at a named step, LEGCRAMP_KILL_AT)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.cohorts.study import load_studies
from pipelines.publish.assets import KILL_AT_ENV, PUBLISH_STEPS, PublishRefused, publish_build
from pipelines.warehouse import Warehouse, clean_dead_runs
from tests.support.paths import REPO_ROOT

PYTHON = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "DAGSTER_DISABLE_TELEMETRY": "1", "GX_ANALYTICS_ENABLED": "false"}


def _build(warehouse: Warehouse, run_id: str, version: str) -> None:
    """A run's build folder: a database and outputs (a report and a Data Docs page) that name their version."""
    with warehouse.connect(run_id) as con:
        con.execute("CREATE TABLE marker AS SELECT ? AS version", [version])
    outputs = warehouse.build_outputs_dir(run_id)
    (outputs / "study").mkdir(parents=True)
    (outputs / "study" / "report.md").write_text(version)
    (outputs / "data_docs").mkdir()
    (outputs / "data_docs" / "index.html").write_text(version)


def _published(warehouse: Warehouse) -> tuple[str, str, str]:
    """What a new reader sees: the database's version, the report's and the Data Docs'."""
    with duckdb.connect(str(warehouse.published_path), read_only=True) as con:
        database = con.execute("SELECT version FROM marker").fetchone()[0]
    outputs = warehouse.published_outputs_dir
    return database, (outputs / "study" / "report.md").read_text(), (outputs / "data_docs" / "index.html").read_text()


PUBLISH_IN_A_PROCESS = """
import sys
from pipelines.publish.assets import publish_build
from pipelines.warehouse import Warehouse
publish_build(Warehouse(database_path=sys.argv[1]), sys.argv[2])
"""


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_a_kill_at_any_publishing_step_shows_one_whole_version_and_the_next_run_cleans_up(tmp_path, step):
    warehouse = Warehouse(database_path=str(tmp_path / "published" / "study.duckdb"))
    _build(warehouse, "run-1", "one")
    publish_build(warehouse, "run-1")
    assert _published(warehouse) == ("one", "one", "one")

    _build(warehouse, "run-2", "two")
    killed = subprocess.run([PYTHON, "-c", PUBLISH_IN_A_PROCESS, str(warehouse.published_path), "run-2"],
                            env={**ENV, KILL_AT_ENV: step}, cwd=REPO_ROOT, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    # Before the link swap the previous version is whole; from the swap on, the new one is.
    expected = "two" if PUBLISH_STEPS.index(step) >= PUBLISH_STEPS.index("current_swapped") else "one"
    assert _published(warehouse) == (expected, expected, expected)

    # The next run removes what the killed one left (its build folder or unpublished version) and nothing else.
    clean_dead_runs(warehouse, None, "run-3")
    assert _published(warehouse) == (expected, expected, expected)
    assert not list(warehouse.runs_dir.iterdir())
    assert [v.name for v in warehouse.versions_dir.iterdir()] == ["run-2" if expected == "two" else "run-1"]


# An analyst's read-write session that writes (no checkpoint, so the changes stay in the WAL) and is killed.
KILLED_WRITER = """
import os, signal, sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("SET checkpoint_threshold = '10GB'")
con.execute("CREATE TABLE scratch AS SELECT range AS x FROM range(1000)")
con.execute("INSERT INTO marker VALUES ('analyst')")
os.kill(os.getpid(), signal.SIGKILL)
"""


def _kill_a_writer_on(database: Path) -> None:
    writer = subprocess.run([PYTHON, "-c", KILLED_WRITER, str(database)], capture_output=True, text=True)
    assert writer.returncode == -signal.SIGKILL, writer.stderr[-2000:]


def test_a_stale_wal_beside_a_plain_published_file_is_removed_and_the_new_database_opens(tmp_path):
    """The layout before versions (and any copy put in place by hand): the published path is a plain file, and a
    killed read-write session left `<database>.wal` beside it. Replaying that log against the new file made the
    database unopenable ("WAL does not match database file")."""
    warehouse = Warehouse(database_path=str(tmp_path / "published" / "study.duckdb"))
    warehouse.published_path.parent.mkdir()
    with duckdb.connect(str(warehouse.published_path)) as con:
        con.execute("CREATE TABLE marker AS SELECT 'before' AS version")
    _kill_a_writer_on(warehouse.published_path)
    wal = Path(f"{warehouse.published_path}.wal")
    assert wal.exists()

    _build(warehouse, "run-1", "one")
    publish_build(warehouse, "run-1")

    with duckdb.connect(str(warehouse.published_path), read_only=True) as con:
        assert con.execute("SELECT version FROM marker").fetchall() == [("one",)]
    assert not wal.exists()


def test_a_stale_wal_of_a_published_version_stays_with_that_version(tmp_path):
    """Through the published link, DuckDB keeps the WAL beside the version's own file: the next version never sees
    it, and the old version goes with its WAL once no process holds it."""
    warehouse = Warehouse(database_path=str(tmp_path / "published" / "study.duckdb"))
    _build(warehouse, "run-1", "one")
    publish_build(warehouse, "run-1")
    _kill_a_writer_on(warehouse.published_path)
    assert (warehouse.version_dir("run-1") / "study.duckdb.wal").exists()

    _build(warehouse, "run-2", "two")
    publish_build(warehouse, "run-2")

    assert _published(warehouse) == ("two", "two", "two")
    assert [v.name for v in warehouse.versions_dir.iterdir()] == ["run-2"]


LIVE_WRITER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("SET checkpoint_threshold = '10GB'")
con.execute("INSERT INTO marker VALUES ('analyst')")
print("ready", flush=True)
sys.stdin.readline()
"""


def test_publishing_refuses_while_a_read_write_session_holds_a_plain_published_file(tmp_path):
    warehouse = Warehouse(database_path=str(tmp_path / "published" / "study.duckdb"))
    warehouse.published_path.parent.mkdir()
    with duckdb.connect(str(warehouse.published_path)) as con:
        con.execute("CREATE TABLE marker AS SELECT 'before' AS version")
    _build(warehouse, "run-1", "one")
    writer = subprocess.Popen([PYTHON, "-c", LIVE_WRITER, str(warehouse.published_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        with pytest.raises(PublishRefused, match="open read-write in another process"):
            publish_build(warehouse, "run-1")
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    assert warehouse.build_path("run-1").exists(), "a refused publish leaves the build for the next attempt"


# --- a whole study run killed while publishing, through Dagster --------------------------------------------------
@pytest.fixture(scope="module")
def small_extract(generated_extract):
    return generated_extract(300, 1).path


def _data_docs_run_ids(outputs: Path) -> set[str]:
    """The run ids whose validation results a Data Docs site holds (GX stores them as <layer>/<suite>/<run id>/...;
    every suite name here has two parts, e.g. staging.person)."""
    return {run.name for run in (outputs / "data_docs" / "_validation_results").glob("*/*/*") if run.is_dir()}


@pytest.mark.slow
def test_a_study_run_killed_while_publishing_leaves_one_whole_version_and_the_next_run_cleans_up(
        tmp_path, small_extract):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    env = {**ENV, "DAGSTER_HOME": str(home)}
    warehouse = Warehouse(database_path=str(tmp_path / "published" / "study.duckdb"))
    command = [PYTHON, "-m", "pipelines.run", "--extract", str(small_extract), "--db", str(warehouse.published_path)]

    def run(**extra_env) -> subprocess.CompletedProcess:
        return subprocess.run(command, env={**env, **extra_env}, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=600)

    assert run().returncode == 0
    first = warehouse.current_version().name

    killed = run(**{KILL_AT_ENV: "version_moved"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [dead] = [r for r in instance.get_runs() if r.run_id != first]
        assert dead.status == dg.DagsterRunStatus.STARTED, "without a daemon the killed run still shows as started"
    # Its Data Docs were written and its version moved, but the link was not swapped: readers see the first run's
    # database with the first run's outputs.
    assert warehouse.version_dir(dead.run_id).exists()
    assert warehouse.current_version().name == first
    assert _data_docs_run_ids(warehouse.published_outputs_dir) == {first}
    with duckdb.connect(str(warehouse.published_path), read_only=True) as con:
        assert con.execute("SELECT DISTINCT run_id FROM dq.check_results").fetchall() == [(first,)]

    last = run()
    assert last.returncode == 0, last.stderr[-3000:]
    third = warehouse.current_version().name
    assert third not in (first, dead.run_id)
    # Every run has its own Data Docs: the published site holds this run's results only, not the killed run's.
    assert _data_docs_run_ids(warehouse.published_outputs_dir) == {third}
    assert sorted(p.name for p in warehouse.published_outputs_dir.iterdir()) == \
        ["data_docs", *sorted(load_studies())]
    # What the killed run left is gone, and the instance no longer shows it as running.
    assert not list(warehouse.runs_dir.iterdir())
    assert [v.name for v in warehouse.versions_dir.iterdir()] == [third]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        # A run that died is what dagster.yaml retries (the daemon's own decision).
        from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry
        assert should_retry(instance.get_run_by_id(dead.run_id), instance)
        # Every path the run's metadata names (reports, Data Docs of each check, the database) exists now.
        paths = _metadata_paths(instance, third)
    assert any(p.endswith("report.md") for p in paths) and any(p.endswith("index.html") for p in paths)
    assert [p for p in paths if not Path(p).exists()] == []
    assert all(".runs" not in p for p in paths)

    # The README's way of querying the published database works on the published link.
    [snippet] = re.findall(r'^\.venv/bin/python -c "(.*)"$', (REPO_ROOT / "README.md").read_text(), re.M)
    snippet = snippet.replace('\\"', '"').replace("build/leg_cramps.duckdb", str(warehouse.published_path))
    shown = subprocess.run([PYTHON, "-c", snippet], capture_output=True, text=True, check=True).stdout
    assert "person" in shown and "input_records" in shown


def _metadata_paths(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    paths = set()
    for event_type in (dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        for entry in instance.all_logs(run_id, of_type=event_type):
            data = entry.dagster_event.event_specific_data
            metadata = data.materialization.metadata if event_type == dg.DagsterEventType.ASSET_MATERIALIZATION \
                else data.metadata
            paths |= {value.path for value in metadata.values() if isinstance(value, dg.PathMetadataValue)}
    return paths
