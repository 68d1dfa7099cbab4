"""Ctrl-C (SIGINT) or SIGTERM stops a whole study run (pipelines/operations/stop_signals.py), also when it lands
in a DuckDB query, which takes it as an error of that step only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import dagster as dg
import duckdb
import pytest

from pipelines.operations.stop_signals import StopSignalWatcher
from pipelines.warehouse import Warehouse, interrupt_open_connections
from tests.support.dagster_runs import signal_once_the_query_runs
from tests.support.paths import REPO_ROOT



# Minutes of work, in one query (the cross product of 10^5 x 10^5 rows).
LONG_QUERY = "SELECT sum(a.range * b.range) FROM range(100000) a, range(100000) b"


def _job_whose_query_takes_the_signal(warehouse: Warehouse, interrupt_after: float | None = None):
    """`querying` runs a long query on a warehouse connection and sends itself SIGINT (as Ctrl-C does) while the
    query runs; `interrupt_after`: seconds after the signal at which the query is interrupted anyway (DuckDB's
    interrupt()), so that a run without the watcher does not run for minutes."""
    @dg.asset
    def querying() -> None:
        with warehouse.connect("run") as con:
            signal_once_the_query_runs(con, signal.SIGINT, then_interrupt_after=interrupt_after)
            con.execute(LONG_QUERY).fetchall()

    @dg.asset
    def then_independent() -> None:  # runs after `querying` (in-process steps run one at a time, by key)
        pass

    return [querying, then_independent]


def _step_events(result: dg.ExecuteInProcessResult, event_type: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == event_type]


def test_without_the_watcher_a_signal_during_a_duckdb_query_fails_that_step_only(tmp_path):
    """What the watcher is for (if Dagster or DuckDB change this, it may no longer be needed): the query goes on
    after the signal (here until interrupt() 3 s later), its step fails, and the run goes on with the next step."""
    warehouse = Warehouse(database_path=str(tmp_path / "published.duckdb"))
    with dg.instance_for_test() as instance:
        result = dg.materialize(_job_whose_query_takes_the_signal(warehouse, interrupt_after=3), instance=instance,
                                raise_on_error=False)
    [failed] = _step_events(result, dg.DagsterEventType.STEP_FAILURE)
    assert failed.step_key == "querying"
    assert [e.step_key for e in _step_events(result, dg.DagsterEventType.STEP_SUCCESS)] == ["then_independent"]


def test_with_the_watcher_the_query_is_interrupted_and_no_step_succeeds_after_the_signal(tmp_path):
    warehouse = Warehouse(database_path=str(tmp_path / "published.duckdb"))
    with StopSignalWatcher() as stop, dg.instance_for_test() as instance:
        # No interrupt_after: without the watcher's interrupt this query would run for minutes (next test).
        result = dg.materialize(_job_whose_query_takes_the_signal(warehouse), instance=instance,
                                raise_on_error=False)
        run = instance.get_run_by_id(result.run_id)
    # The query's step fails (as interrupted, or with DuckDB's error and the next step interrupted as it starts:
    # both were seen) and no step succeeds.
    failures = _step_events(result, dg.DagsterEventType.STEP_FAILURE)
    assert failures[0].step_key == "querying"
    assert all(e.event_specific_data.error_source.value == "INTERRUPT" for e in failures[1:])
    assert not _step_events(result, dg.DagsterEventType.STEP_SUCCESS)
    assert not result.success and run.status == dg.DagsterRunStatus.FAILURE
    assert stop.stopped_by() == "stopped by SIGINT" and stop.first_signal() == signal.SIGINT


def test_the_warehouse_interrupts_the_query_of_its_open_connections(tmp_path):
    """What the watcher calls to end the query a step is in: DuckDB's interrupt() of every open Warehouse.connect
    connection (a closed one is forgotten)."""
    warehouse = Warehouse(database_path=str(tmp_path / "published.duckdb"))
    with warehouse.connect("closed"):
        pass
    raised = []

    def query() -> None:
        with warehouse.connect("run") as con:
            con.execute("SET enable_progress_bar = true")
            con.execute("SET enable_progress_bar_print = false")
            running.append(con)
            try:
                con.execute(LONG_QUERY).fetchall()
            except duckdb.InterruptException as error:
                raised.append(error)

    running: list = []
    thread = threading.Thread(target=query)
    thread.start()
    deadline = time.time() + 120
    while (not running or running[0].query_progress() < 0) and time.time() < deadline:  # until the query runs
        time.sleep(0.05)
    interrupt_open_connections()
    thread.join()
    assert len(raised) == 1


class Stopped(BaseException):
    pass


def _stop(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


def test_outside_a_run_the_handler_has_the_signal_and_afterwards_nothing_stops_a_later_run():
    @dg.asset
    def only() -> None:
        pass

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(Stopped, match="^SIGTERM$"), StopSignalWatcher(handler=_stop) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    assert stop.stopped_by() == "stopped by SIGTERM"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    with dg.instance_for_test() as instance:  # Dagster's interrupt flag is down again
        assert dg.materialize([only], instance=instance).success


@pytest.mark.slow
def test_ctrl_c_during_legcramp_run_stops_the_run_unpublished(generated_extract, tmp_path):
    """`legcramp-run` in its own process group, as a terminal runs it; SIGINT to the group (what Ctrl-C sends)
    once the ingest has loaded the extract: the run ends failed with every later step stopped, nothing is
    published, and the command says so with exit code 130 (128 + SIGINT)."""
    extract = generated_extract(300, 1).path
    database = tmp_path / "published" / "leg_cramps.duckdb"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    environment = {**os.environ, "DAGSTER_HOME": str(home), "GX_ANALYTICS_ENABLED": "false",
                   "DAGSTER_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.run", "--extract", str(extract), "--db", str(database)],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    output = []
    signalled_at = None
    for line in process.stdout:
        output.append(line)
        if signalled_at is None and " records in, " in line:  # the ingest's last log line
            os.killpg(process.pid, signal.SIGINT)
            signalled_at = time.time()
    process.wait(timeout=600)
    text = "".join(output)
    assert signalled_at is not None, text
    assert process.returncode == 128 + signal.SIGINT, text
    [stopped] = [line for line in output if " stopped by SIGINT: " in line]
    assert stopped.rstrip().endswith("its other steps were not run; the published database was not changed.")
    run_id = stopped.split()[1]

    assert not database.exists() and not database.is_symlink()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        events = [record for record in instance.all_logs(run_id) if record.dagster_event is not None]
    started_after = {r.step_key for r in events if r.timestamp > signalled_at
                     and r.dagster_event.event_type == dg.DagsterEventType.STEP_START}
    succeeded = {r.step_key for r in events if r.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS}
    assert not started_after & succeeded, "a step that started after Ctrl-C ran to its end"
    assert "published_database" not in started_after
