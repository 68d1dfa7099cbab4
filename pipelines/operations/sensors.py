"""Sensors: a new extract dropped in the landing folder starts a run of its site; a failed run logs a summary.

Landing folder protocol (docs/operations.md). A drop is one extract folder; it is complete only once
`_manifest.json` exists, which the sender writes last (the synthetic generator does), so a half-copied extract never
starts a run. Two layouts, told apart by what a folder directly under the landing folder holds:

    landing/<site>/<drop>/_manifest.json   a network site delivering drops over time: partition <site>
    landing/<drop>/_manifest.json          a single extract (a folder with files of its own): partition <drop>

Each site is a partition of the study assets (pipelines/network/sites.py): the sensor registers a new site's
partition in the same tick that requests its first run, and every run of a site publishes to
`<site databases folder>/<site>.duckdb`. The run key is `<drop>:<sha256 of _manifest.json>` (drop = `<site>/<drop>`
or `<drop>`): the same drop never runs twice (Dagster refuses a run key it has seen, and the sensor's cursor and
the run history say so too), while a re-delivery with a new manifest runs again.

A drop never makes a run read outside it: one whose folder is a link out of the landing folder, that holds a link
leading out, or whose extract_mapping.yaml names a file outside it is refused with the reason (paths_leading_out).
"""

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import dagster as dg

from pipelines import paths
from pipelines.extract_spec import MANIFEST_FILE as MANIFEST
from pipelines.jobs import study_job
from pipelines.ingest.containment import is_inside, links_leading_out
from pipelines.ingest.formats.detection import SITE_MAPPING_FILE
from pipelines.ingest.formats.site_mapping import files_leading_out
from pipelines.network.sites import (
    SITE_DATABASES_DIR,
    SITE_NAME_RULE,
    SITE_PARTITIONS,
    is_site_name,
    site_database,
)
from pipelines.operations.run_config import config_problems, study_run_config
from pipelines.operations.schedules import TRIGGER_TAG
from pipelines.run_failures import failure_message
from pipelines.warehouse import WRITER_TAG

LANDING_DIR = Path(os.environ.get("LEGCRAMP_LANDING", paths.REPO_ROOT / "data" / "landing"))
DROP_TAG = "legcramp/drop"
SITE_TAG = "legcramp/site"
# Dagster's tag for a RunRequest's run key (dagster._core.storage.tags.RUN_KEY_TAG, not exported publicly).
RUN_KEY_TAG = "dagster/run_key"
# Dagster's tag of a partitioned run's partition key (here: the site).
PARTITION_TAG = "dagster/partition"
# Set by Dagster on a failed run that run_retries (dagster.yaml) will start again.
WILL_RETRY_TAG = "dagster/will_retry"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drop:
    """One delivered extract folder and the site it belongs to."""

    site: str
    folder: Path
    name: str  # `<site>/<drop>` or, for a single extract directly in the landing folder, `<drop>` (= site)


def _visible(folder: Path) -> list[Path]:
    # Names starting with "." or "_" are scratch or metadata (e.g. `.incoming/`, the generator's `_truth/`).
    return sorted(p for p in folder.iterdir() if not p.name.startswith((".", "_")))


def find_drops(landing_dir: Path) -> list[Drop]:
    """Every drop folder in the landing folder, complete or not, in name order."""
    drops = []
    for top in _visible(landing_dir):
        if not top.is_dir():
            continue
        children = _visible(top)
        if (top / MANIFEST).exists() or not any(child.is_dir() for child in children):
            drops.append(Drop(top.name, top, top.name))  # a single extract (possibly still being copied)
        else:
            drops += [Drop(top.name, child, f"{top.name}/{child.name}") for child in children if child.is_dir()]
    return drops


def paths_leading_out(landing_dir: Path, drop: Drop) -> list[str]:
    """Why the drop would make a run read outside it, one line per reason; empty when it would not.

    The drop folder must lie inside the landing folder once symbolic links are followed; inside the drop, no
    symbolic link may lead out of it and an extract_mapping.yaml may name only the drop's own files (the ingest
    refuses both too, pipelines/ingest/containment.py, but a drop that would fail for it never starts a run).
    """
    if not is_inside(landing_dir, drop.folder):
        return [f"{drop.name} is a symbolic link (or inside one) leading outside the landing folder {landing_dir}"]
    problems = [f"{link} is a symbolic link leading outside the drop" for link in links_leading_out(drop.folder)]
    if (drop.folder / SITE_MAPPING_FILE).is_file() and not problems:
        problems += files_leading_out(drop.folder)
    return problems


def drop_run_key(drop: Drop) -> str:
    """`<drop>:<sha256 of its manifest>`: one run per delivered version of a drop."""
    digest = hashlib.sha256((drop.folder / MANIFEST).read_bytes()).hexdigest()
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


def build_extract_drop_sensor(landing_dir: Path = LANDING_DIR, databases_dir: Path = SITE_DATABASES_DIR,
                              name: str = "extract_drop_sensor",
                              minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    landing_dir, databases_dir = Path(landing_dir), Path(databases_dir)

    @dg.sensor(
        name=name,
        job=study_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(f"Runs the study job for the site of every complete extract drop (a folder with {MANIFEST}) "
                     f"in {landing_dir}, into {databases_dir}/<site>.duckdb; registers new sites as partitions."),
    )
    def extract_drop_sensor(context: dg.SensorEvaluationContext):
        if not landing_dir.is_dir():
            return dg.SkipReason(f"landing folder {landing_dir} does not exist (set LEGCRAMP_LANDING)")
        # The cursor maps drop name -> run key last requested, so a tick need not search the run history for
        # drops it has already handled; the run key itself is what guarantees one run per drop version.
        requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        run_requests, new_sites, incomplete, problems = [], [], [], []
        for drop in find_drops(landing_dir):
            bad_names = [part for part in drop.name.split("/") if not is_site_name(part)]
            if bad_names:
                problems.append(f"{drop.name!r}: rename {', '.join(map(repr, bad_names))} to {SITE_NAME_RULE}")
                continue
            leading_out = paths_leading_out(landing_dir, drop)
            if leading_out:
                problems.append(f"{drop.name}: refused, it names files outside its folder: {'; '.join(leading_out)}")
                continue
            if not (drop.folder / MANIFEST).is_file() or not _manifest_is_readable(drop.folder):
                incomplete.append(drop.name)
                continue
            run_key = drop_run_key(drop)
            if requested.get(drop.name) == run_key:
                continue
            requested[drop.name] = run_key
            if _run_key_used(context.instance, run_key):
                continue
            run_config = study_run_config(drop.folder, site_database(drop.site, databases_dir))
            config_errors = config_problems(run_config)
            if config_errors:
                problems.append(f"{drop.name}: " + "; ".join(config_errors))
                continue
            if drop.site not in new_sites and not context.instance.has_dynamic_partition(
                    SITE_PARTITIONS.name, drop.site):
                new_sites.append(drop.site)
            context.log.info(f"complete drop {drop.name}: requesting a run of site {drop.site} ({run_key})")
            run_requests.append(dg.RunRequest(
                run_key=run_key,
                partition_key=drop.site,
                run_config=run_config,
                tags={**WRITER_TAG, DROP_TAG: drop.name, SITE_TAG: drop.site, TRIGGER_TAG: "extract_drop_sensor"},
            ))
        for problem in problems:
            context.log.warning(problem)
        cursor = json.dumps(requested, sort_keys=True)
        if run_requests:
            # Dagster adds the new partitions before it launches this tick's runs.
            partitions_requests = [SITE_PARTITIONS.build_add_request(new_sites)] if new_sites else []
            return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=partitions_requests,
                                   cursor=cursor)
        reasons = ["no new complete drop"]
        if incomplete:
            reasons.append(f"waiting for {MANIFEST} in: {', '.join(incomplete)}")
        reasons.extend(problems)
        return dg.SensorResult(skip_reason="; ".join(reasons), cursor=cursor)

    return extract_drop_sensor


def failure_summary(run: dg.DagsterRun, failures: Sequence[dg.DagsterEvent],
                    run_failure_message: str | None = None) -> str:
    """A few lines an operator can act on: which run, on what, which step (or the run's setup) failed and why."""
    resources = (run.run_config or {}).get("resources") or {}
    extract = ((resources.get("extract") or {}).get("config") or {}).get("folder", "(default)")
    database = ((resources.get("warehouse") or {}).get("config") or {}).get("database_path", "(default)")
    site = f" site {run.tags[PARTITION_TAG]}" if PARTITION_TAG in run.tags else ""
    lines = [f"run {run.run_id} of {run.job_name}{site} FAILED (extract: {extract}; database: {database})"]
    messages = [message for message in map(failure_message, failures) if message]
    lines += [f"  {message}" for message in messages]
    if not messages:
        lines.append(f"  no step failed; the run failed: {run_failure_message or 'no reason recorded'}")
    lines.append("  the published database was not changed (a run publishes only when all its steps succeed)")
    if run.tags.get(WILL_RETRY_TAG) == "true":
        lines.append("  Dagster will retry this run (run_retries in dagster.yaml)")
    return "\n".join(lines)


@dg.run_failure_sensor(
    name="run_failure_summary",
    # It only writes logs, so it is on by default wherever the daemon runs.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs which step of a failed run (or its setup) failed and the error behind it.",
)
def run_failure_summary(context: dg.RunFailureSensorContext):
    failures = list(context.get_step_failure_events())
    if not failures:  # a run whose configuration check failed while its resources were set up (no step ran)
        failures = [record.event_log_entry.dagster_event for record in context.instance.get_records_for_run(
            context.dagster_run.run_id, of_type=dg.DagsterEventType.RESOURCE_INIT_FAILURE).records]
    summary = failure_summary(context.dagster_run, failures, context.failure_event.message)
    context.log.error(summary)
    logger.error(summary)


extract_drop_sensor = build_extract_drop_sensor()
sensors = [extract_drop_sensor, run_failure_summary]
