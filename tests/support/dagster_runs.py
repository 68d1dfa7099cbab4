"""Helpers for asserting on finished Dagster runs."""

from __future__ import annotations


def run_failure_summary_of(instance, run_id: str, caplog) -> str:
    """What the run-failure sensor logs for the failed run `run_id` (the sensor evaluated on its RUN_FAILURE)."""
    import logging

    import dagster as dg

    from pipelines.operations.sensors import run_failure_summary

    [failure] = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    context = dg.build_run_status_sensor_context(
        sensor_name=run_failure_summary.name, dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=instance, dagster_run=instance.get_run_by_id(run_id),
    ).for_run_failure()
    with caplog.at_level(logging.ERROR, logger="pipelines.operations.sensors"):
        run_failure_summary(context)
    [summary] = [r.getMessage() for r in caplog.records if r.name == "pipelines.operations.sensors"]
    return summary


def signal_once_the_query_runs(con, signum: int, then_interrupt_after: float | None = None) -> None:
    """Send this process `signum` (as Ctrl-C or a kill does) once `con`'s next query is running, from a thread:
    DuckDB reports a query's progress only with its progress bar on (not printed here), so the signal lands in the
    query, not in the Python code before it, however loaded the machine is. `then_interrupt_after`: seconds after
    the signal at which the query is interrupted (DuckDB's interrupt()) if it still runs."""
    import os
    import threading
    import time

    import duckdb

    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")

    def send() -> None:
        deadline = time.time() + 120
        while con.query_progress() < 0 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signum)
        if then_interrupt_after is not None:
            time.sleep(then_interrupt_after)
            try:
                con.interrupt()
            except duckdb.Error:  # closed: the query had ended
                pass

    threading.Thread(target=send, daemon=True).start()
