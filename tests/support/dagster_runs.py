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
