"""Sensors: a new extract dropped in the landing folder starts the study job; a failed run logs a clear summary.

Landing folder protocol (docs/operations.md): every extract is a sub-folder of the landing folder, named after the
site or delivery (letters, digits, `.`, `_`, `-`). A drop is complete only once `_manifest.json` exists, which the
sender writes last (the synthetic generator does). The sensor ignores drops without it, so a half-copied extract
never starts a run. Each complete drop is built into its own database, `<databases folder>/<drop>.duckdb`.

The run key is `<drop>:<sha256 of _manifest.json>`: the same drop never runs twice (Dagster refuses a run key it
has seen, and the sensor's cursor remembers it too), while a re-delivery with a new manifest runs again.
"""

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import dagster as dg

from pipelines import paths
from pipelines.jobs import WRITER_TAG, study_job
from pipelines.operations.run_config import config_problems, study_run_config
from pipelines.operations.schedules import TRIGGER_TAG
from pipelines.synthetic.generator import MANIFEST

LANDING_DIR = Path(os.environ.get("LEGCRAMP_LANDING", paths.REPO_ROOT / "data" / "landing"))
DROP_DATABASES_DIR = Path(os.environ.get("LEGCRAMP_DROP_DATABASES", paths.REPO_ROOT / "build"))
DROP_TAG = "legcramp/drop"
# Dagster's tag for a RunRequest's run key (dagster._core.storage.tags.RUN_KEY_TAG, not exported publicly).
RUN_KEY_TAG = "dagster/run_key"
# Set by Dagster on a failed run that run_retries (dagster.yaml) will start again.
WILL_RETRY_TAG = "dagster/will_retry"
# A drop's name becomes a file name and a tag value: keep it to characters that are safe in both.
DROP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

logger = logging.getLogger(__name__)


def drop_run_key(drop: Path) -> str:
    """`<drop name>:<sha256 of its manifest>`: one run per delivered version of a drop."""
    digest = hashlib.sha256((drop / MANIFEST).read_bytes()).hexdigest()
    return f"{drop.name}:{digest}"


def _manifest_is_readable(drop: Path) -> bool:
    """A manifest still being written (or cut short) is not valid JSON; its drop is not complete yet."""
    try:
        json.loads((drop / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def _run_key_used(instance: dg.DagsterInstance, run_key: str) -> bool:
    """Whether any run of this instance already carries the run key (e.g. the cursor was reset)."""
    return bool(instance.get_run_records(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1))


def build_extract_drop_sensor(landing_dir: Path = LANDING_DIR, databases_dir: Path = DROP_DATABASES_DIR,
                              name: str = "extract_drop_sensor",
                              minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    landing_dir, databases_dir = Path(landing_dir), Path(databases_dir)

    @dg.sensor(
        name=name,
        job=study_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(f"Runs the study job on every complete extract drop (a sub-folder with {MANIFEST}) in "
                     f"{landing_dir}, into {databases_dir}/<drop>.duckdb."),
    )
    def extract_drop_sensor(context: dg.SensorEvaluationContext):
        if not landing_dir.is_dir():
            return dg.SkipReason(f"landing folder {landing_dir} does not exist (set LEGCRAMP_LANDING)")
        # The cursor maps drop name -> run key last requested, so a tick need not search the run history for
        # drops it has already handled; the run key itself is what guarantees one run per drop version.
        requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        run_requests, incomplete, problems = [], [], []
        for drop in sorted(p for p in landing_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            if not (drop / MANIFEST).is_file() or not _manifest_is_readable(drop):
                incomplete.append(drop.name)
                continue
            if not DROP_NAME.match(drop.name):
                problems.append(f"{drop.name!r}: rename the drop to letters, digits, '.', '_' and '-' only")
                continue
            run_key = drop_run_key(drop)
            if requested.get(drop.name) == run_key:
                continue
            requested[drop.name] = run_key
            if _run_key_used(context.instance, run_key):
                continue
            run_config = study_run_config(drop, databases_dir / f"{drop.name}.duckdb")
            config_errors = config_problems(run_config)
            if config_errors:
                problems.append(f"{drop.name}: " + "; ".join(config_errors))
                continue
            context.log.info(f"complete drop {drop.name}: requesting a run ({run_key})")
            run_requests.append(dg.RunRequest(
                run_key=run_key,
                run_config=run_config,
                tags={**WRITER_TAG, DROP_TAG: drop.name, TRIGGER_TAG: "extract_drop_sensor"},
            ))
        for problem in problems:
            context.log.warning(problem)
        cursor = json.dumps(requested, sort_keys=True)
        if run_requests:
            return dg.SensorResult(run_requests=run_requests, cursor=cursor)
        reasons = ["no new complete drop"]
        if incomplete:
            reasons.append(f"waiting for {MANIFEST} in: {', '.join(incomplete)}")
        reasons.extend(problems)
        return dg.SensorResult(skip_reason="; ".join(reasons), cursor=cursor)

    return extract_drop_sensor


def _user_error_message(event: dg.DagsterEvent) -> str:
    """The innermost error of a step failure: Dagster wraps the user's exception, whose message is what helps."""
    error = event.step_failure_data.error if event.step_failure_data else None
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip() if error else "unknown error"


def failure_summary(run: dg.DagsterRun, step_failures: Sequence[dg.DagsterEvent],
                    run_failure_message: str | None = None) -> str:
    """A few lines an operator can act on: which run, on what, which step failed and why."""
    resources = (run.run_config or {}).get("resources") or {}
    extract = ((resources.get("extract") or {}).get("config") or {}).get("folder", "(default)")
    database = ((resources.get("warehouse") or {}).get("config") or {}).get("database_path", "(default)")
    lines = [f"run {run.run_id} of {run.job_name} FAILED (extract: {extract}; database: {database})"]
    for event in step_failures:
        lines.append(f"  step {event.step_key} failed: {_user_error_message(event)}")
    if not step_failures:
        lines.append(f"  no step failed; the run failed: {run_failure_message or 'no reason recorded'}")
    lines.append("  the published database was not changed (a run publishes only when all its steps succeed)")
    if run.tags.get(WILL_RETRY_TAG) == "true":
        lines.append("  Dagster will retry this run (run_retries in dagster.yaml)")
    return "\n".join(lines)


@dg.run_failure_sensor(
    name="run_failure_summary",
    # It only writes logs, so it is on by default wherever the daemon runs.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs which step of a failed run failed and the error behind it.",
)
def run_failure_summary(context: dg.RunFailureSensorContext):
    summary = failure_summary(context.dagster_run, context.get_step_failure_events(),
                              context.failure_event.message)
    context.log.error(summary)
    logger.error(summary)


extract_drop_sensor = build_extract_drop_sensor()
sensors = [extract_drop_sensor, run_failure_summary]
