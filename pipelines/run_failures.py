"""How a run of the code location fails, and what it tells the user: shared by every resource that checks its
configuration while it is set up (the warehouse, the study settings), by the command line and by the run-failure
sensor."""

from __future__ import annotations

from typing import NoReturn

import dagster as dg

# Dagster's run tag that caps automatic retries of one run.
MAX_RETRIES_TAG = "dagster/max_retries"


class RunConfigError(ValueError):
    """A study-job run config that cannot work; the message lists every problem."""


def fail_run_setup(context, problems: list[str]) -> NoReturn:
    """Fail a run while its resources are set up (`context`: Dagster's InitResourceContext), listing every problem.

    A retry would fail the same way, so the run is tagged to be retried 0 times (dagster.yaml retries runs that
    died) and its failure is reported once.
    """
    run = context.dagster_run
    if run is not None and context.instance is not None:
        context.instance.add_run_tags(run.run_id, {MAX_RETRIES_TAG: "0"})
    run_id = run.run_id if run is not None else "(no run)"
    raise RunConfigError(f"invalid run configuration of run {run_id}:\n  - " + "\n  - ".join(problems))


def failure_message(event: dg.DagsterEvent) -> str | None:
    """`<where> failed: <the user's error>` for a step or resource-setup failure event, else None.

    Dagster wraps the user's exception; the innermost cause is what the user needs.
    """
    if event.is_step_failure:
        where, error = f"step {event.step_key}", event.step_failure_data.error
    elif event.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE:
        where, error = "run setup (resources, before the first step)", event.engine_event_data.error
    else:
        return None
    while error is not None and error.cause is not None:
        error = error.cause
    return f"{where} failed: {error.message.strip() if error else 'unknown error'}"


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per failed step (or failed run setup), with the user's error."""
    return [message for message in map(failure_message, result.all_events) if message]
