"""`legcramp-run`: run the whole study on one extract through Dagster and print a summary.

The run is a real Dagster run in the instance at $DAGSTER_HOME (the Makefile points it at .dagster_home/, which
uses the repository's dagster.yaml), so it shows in `make ui` with its logs, metadata and checks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import paths
from pipelines import tables as table_names
from pipelines.ingest.reject_share import DEFAULT_MAX_REJECT_SHARE, max_reject_share_problem

if TYPE_CHECKING:
    import dagster as dg

# The start-up path imports neither Dagster nor the code location: `legcramp-run --check`, a layout error and a study
# file error must answer in seconds, and importing the definitions (every study's assets, the statistics libraries) takes far longer
# on a loaded machine. What the run needs is imported when the run starts (docs/performance.md).
__all__ = ["NO_ESTIMATE_WARNING", "failure_message", "failure_messages", "main", "run_study", "run_warnings",
           "summary"]

_LAZY_EXPORTS = {"failure_message": "pipelines.run_failures", "failure_messages": "pipelines.run_failures"}


def __getattr__(name: str) -> Any:
    """`from pipelines.run import failure_messages` without importing Dagster at start-up (PEP 562)."""
    if name in _LAZY_EXPORTS:
        import importlib

        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_study(extract: Path, database: Path, instance: dg.DagsterInstance | None = None, site: str | None = None,
              study_overrides: dict | None = None, max_reject_share: float | None = None,
              **warehouse_options) -> dg.ExecuteInProcessResult:
    """Build one site (default: named after the extract folder) into `database`, registering the site if new."""
    from pipelines.definitions import load_definitions
    from pipelines.jobs import STUDY_JOB_NAME
    from pipelines.network.sites import register_site, site_for_extract
    from pipelines.operations.run_config import study_run_config
    from pipelines.operations.run_instance import site_run_instance

    site = site or site_for_extract(extract)
    # The same instance (default: $DAGSTER_HOME's), asking its storage once whether the site partition exists.
    instance = site_run_instance(instance)
    register_site(instance, site)
    job = load_definitions().resolve_job_def(STUDY_JOB_NAME)
    run_id = str(uuid.uuid4())  # as Dagster names runs; chosen here so the run's event log can be held open
    with event_log_held_open(instance, run_id):
        return job.execute_in_process(
            run_config=study_run_config(extract, database, study_overrides=study_overrides,
                                        max_reject_share=max_reject_share, **warehouse_options),
            instance=instance,
            partition_key=site,
            raise_on_error=False,
            run_id=run_id,
        )


@contextlib.contextmanager
def event_log_held_open(instance: dg.DagsterInstance, run_id: str) -> Iterator[None]:
    """While the run lasts, one idle SQLite connection to each event-log database it writes (Dagster's index of
    asset events and the run's own database), when the instance keeps its event log in SQLite (dagster.yaml).

    Dagster's SQLite event log opens and closes a connection for every write and every query (about 4,700 in a
    100-patient run). In WAL mode, the connection that closes last checkpoints the log into the database, syncs it
    to disk and deletes it: one checkpoint per stored event. With one more connection open, none of them is the
    last, and a commit appends to the log and syncs it (SQLite's own checkpoint every 1,000 pages still runs; the
    last close after the run checkpoints the rest). The events and their storage are Dagster's, unchanged.
    Measured on the development VM: 0.5 instead of 1.2-1.4 ms CPU and 10-12 instead of 24-33 ms wall per one-row
    commit on a new connection (docs/performance.md)."""
    from dagster._core.storage.event_log import SqliteEventLogStorage
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME

    storage = instance.event_log_storage
    if not isinstance(storage, SqliteEventLogStorage):
        yield
        return
    with storage.run_connection(run_id):
        pass  # Dagster creates the run's database (tables, WAL mode) as it would for the run's first event
    held = []
    try:
        for shard in (INDEX_SHARD_NAME, run_id):
            # Autocommit: the connection reads once (so that SQLite counts it) and holds no transaction after, so
            # it never keeps a checkpoint from finishing.
            connection = sqlite3.connect(storage.path_for_shard(shard), isolation_level=None)
            held.append(connection)
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        yield
    finally:
        for connection in held:
            connection.close()
        if instance.get_run_by_id(run_id) is None:  # refused before it started (e.g. its configuration)
            for suffix in ("", "-wal", "-shm"):
                Path(storage.path_for_shard(run_id) + suffix).unlink(missing_ok=True)


NO_ESTIMATE_WARNING = ("no study published any estimate: see each study's attrition (results.attrition), the run's "
                       "warnings (study period, unresolved phenotypes) and docs/extract_formats.md")


def summary(database: Path, study_overrides: dict | None = None) -> str:
    """What the run published, with every person count printed as the published tables print it: "<threshold"
    for 1 to threshold-1 persons, with each study's threshold as the run used it (pipelines/disclosure.py)."""
    import duckdb

    from pipelines.cohorts.settings import StudySettings
    from pipelines.cohorts.study import load_studies
    from pipelines.disclosure import count_text, site_floor

    floor = site_floor()
    settings = StudySettings(overrides=study_overrides or {})
    thresholds = {study_id: max(settings.resolve(study).threshold, floor)
                  for study_id, study in load_studies().items()}
    con = duckdb.connect(str(database), read_only=True)
    try:
        lines = [f"published database: {os.path.abspath(database)}"]
        persons = con.execute("SELECT count(*) FROM staging.person").fetchall()[0][0]
        [(records, rejected)] = con.execute(
            "SELECT sum(input_records), sum(rejected) FROM ingest.load_counts"
        ).fetchall()
        lines.append(f"patients loaded:    {count_text(persons, floor)}")
        lines.append(f"records read:       {records:,}  rejected: {rejected:,} (see ingest.rejects)")
        tables = {r[0] for r in con.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()}
        if table_names.STUDY_POPULATION in tables:
            cohorts = dict(con.execute(
                f"SELECT study_id, count(*) FROM {table_names.STUDY_POPULATION} GROUP BY 1").fetchall())
            # The outcome count as the statistics stage published it (hidden when it would give a small count away).
            outcomes_text = {}
            if table_names.OUTCOME_COUNTS in tables:
                outcomes_text = dict(con.execute(
                    f"SELECT study_id, persons_with_outcome_text FROM {table_names.OUTCOME_COUNTS}").fetchall())
            estimates = {}
            if table_names.ASSOCIATIONS in tables:
                estimates = {study: (shown, not_estimable, total) for study, shown, not_estimable, total in con.execute(
                    "SELECT study_id, count(estimate), count(not_estimable_reason), count(*) "
                    f"FROM {table_names.ASSOCIATIONS} GROUP BY 1").fetchall()}
            # Every study of the run, also one whose cohort is empty (it has no row in the table).
            studies = sorted(set(thresholds) | set(cohorts))
            for study in studies:
                threshold = thresholds.get(study, floor)
                size = cohorts.get(study, 0)
                outcomes = outcomes_text.get(study, "not published")
                shown, not_estimable, total = estimates.get(study, (0, 0, 0))
                lines.append(f"cohort {study}: {count_text(size, threshold)} persons, "
                             f"{outcomes} with incident leg cramps; {shown} of {total} "
                             f"estimates published ({not_estimable} not estimable, "
                             f"{total - shown - not_estimable} withheld by small-cell suppression)")
            if not any(estimates.get(study, (0,))[0] for study in studies):
                lines.append(f"WARNING: {NO_ESTIMATE_WARNING}")
        elif table_names.PHENOTYPE_PERSON_SUMMARY in tables:
            cramps = con.execute(
                f"SELECT count(*) FROM {table_names.PHENOTYPE_PERSON_SUMMARY} WHERE phenotype_id = 'leg_cramps'"
            ).fetchall()[0][0]
            lines.append(f"persons with leg cramps (phenotype): {count_text(cramps, floor)}; "
                         "cohort tables not built yet")
        else:
            lines.append("cohort: not built yet (phenotype and cohort stages are not in this version)")
        return "\n".join(lines)
    finally:
        con.close()


def run_warnings(result: dg.ExecuteInProcessResult) -> list[str]:
    """The warnings the run's assets recorded in their metadata, each once, in the order of the run: a clinical
    table the extract does not ship (metadata `warning` of its staging asset, naming the phenotypes it takes
    away), a study whose period no observation overlaps (metadata `warnings` of its cohort asset, naming both
    ranges). The summary prints them, so a run that finds nothing says why without opening the Dagster log."""
    found: list[str] = []
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if "warning" in metadata:
            found.append(str(metadata["warning"].value))
        if "warnings" in metadata:  # a Markdown list, one "- " line per warning
            found += [line[2:] for line in str(metadata["warnings"].value).splitlines() if line.startswith("- ")]
    return list(dict.fromkeys(found))


def check(extract: Path) -> int:
    """`legcramp-run --check`: the extract's layout, columns and vocabulary checked before anything heavy starts."""
    from pipelines.ingest.formats import check_extract
    from pipelines.ingest.loader import ExtractError

    def phenotype_vocabularies():  # what an absent table takes away; imported and read only then
        from pipelines.phenotypes.loader import phenotype_library

        return phenotype_library().code_vocabularies()

    try:
        findings = check_extract(extract, phenotype_vocabularies)
    except ExtractError as error:
        print(f"extract check failed: {error}", file=sys.stderr)
        return 1
    print("\n".join(findings))
    return 0


def layout_problem(extract: Path) -> str | None:
    """The message of a layout or column problem that would stop the run at its first step, else None.

    The ingest's own format detection (file names, required files and columns: headers only), run before Dagster
    is imported, so a run refuses a broken extract in seconds. The vocabulary findings of `--check` are left to the
    run's ingest, which reports them as warnings: they stop nothing, and on a full OMOP vocabulary they read
    millions of rows the ingest reads anyway."""
    from pipelines.ingest.formats import detect_format
    from pipelines.ingest.loader import ExtractError

    try:
        detect_format(Path(extract))
    except ExtractError as error:
        return f"extract check failed: {error}"
    return None


def definitions_problem() -> str | None:
    """The message of a study file (or phenotype definition) the run could not use, else None.

    The study files and the phenotype library they name are read here as the code location reads them
    (`load_studies`, cached per process), before Dagster is imported: a typo in a study file then stops
    `legcramp-run` in a second or two with the file, the field and what is wrong, instead of a traceback once the
    definitions load."""
    from pipelines.cohorts.study import StudyDefinitionError, load_studies
    from pipelines.phenotypes.errors import PhenotypeDefinitionError

    try:
        load_studies()
    except (StudyDefinitionError, PhenotypeDefinitionError) as error:
        return f"study definitions check failed: {error}"
    return None


def _json_object(text: str) -> dict:
    """--override-json's value: a JSON object (argparse prints the message after the option's name)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error.msg}, character {error.pos + 1}): {text}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, study id -> study fields, not {text}")
    return value


def _reject_share(text: str) -> float | str:
    """--max-reject-share's value: a share from 0 to 1 (pipelines/ingest/reject_share.py's rule)."""
    try:
        value: float | str = float(text)
    except ValueError:
        value = text
    problem = max_reject_share_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extract", type=Path, default=paths.DEFAULT_EXTRACT,
                        help="extract folder (default %(default)s, the sample `make run` generates)")
    parser.add_argument("--db", type=Path, default=paths.DEFAULT_DATABASE,
                        help="published DuckDB file (default %(default)s)")
    parser.add_argument("--memory-limit", help="DuckDB memory limit, e.g. 6GB")
    parser.add_argument("--temp-directory", help="where DuckDB spills to disk")
    parser.add_argument("--site", help="site (Dagster partition) the run builds; default: the extract folder's name")
    parser.add_argument("--override-json", type=_json_object, metavar="JSON",
                        help='study parameters for this run, e.g. \'{"leg_cramps": {"prior_observation_days": 730}}\' '
                             "(docs/operations.md)")
    parser.add_argument("--max-reject-share", type=_reject_share, metavar="SHARE",
                        help="largest share of a table's records the ingest may reject before the run stops "
                             f"unpublished, from 0 to 1 (default {DEFAULT_MAX_REJECT_SHARE}; 1 = never stop for "
                             "rejects; docs/extract_formats.md)")
    parser.add_argument("--engine", choices=("duckdb", "spark"),
                        help="engine of the ingest and the phenotype, cohort and statistics stages (default "
                             "duckdb; spark needs Java 17 and pyspark: docs/scaling.md); on spark, Parquet files and "
                             "non-canonical layouts are ingested on DuckDB (logged), and publishing stays on DuckDB")
    parser.add_argument("--fail-on-empty", action="store_true",
                        help="exit 2 when the run published but no study produced any estimate")
    parser.add_argument("--check", action="store_true",
                        help="only check the extract's layout, columns and vocabulary (seconds, no run); exit 1 on "
                             "a problem that would stop the run")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.extract)

    problem = layout_problem(args.extract) or definitions_problem()
    if problem is not None:
        # The same error the run would raise minutes later, once Dagster and every study had loaded.
        print(problem, file=sys.stderr)
        print("no run was started; the published database was not changed.", file=sys.stderr)
        return 1

    from pipelines.network.sites import SiteNameError
    from pipelines.operations.stop_signals import StopSignalWatcher
    from pipelines.run_failures import failure_messages
    from pipelines.warehouse import Warehouse

    # Ctrl-C or SIGTERM stops the whole run: the warehouse's query in flight is interrupted and no other step
    # starts, also when the signal landed in a query (pipelines/operations/stop_signals.py).
    stop = StopSignalWatcher()
    try:
        with stop:
            result = run_study(args.extract, args.db, site=args.site, memory_limit=args.memory_limit,
                               temp_directory=args.temp_directory, study_overrides=args.override_json,
                               max_reject_share=args.max_reject_share, engine=args.engine)
    except SiteNameError as error:
        parser.error(f"{error}; name the site with --site")
    except KeyboardInterrupt:  # outside the run's steps (Dagster's handler has Ctrl-C while they execute)
        print("stopped by SIGINT outside the run's steps (loading the code location, or setting the run up); the "
              "published database changes only in a run's last step, published_database.", file=sys.stderr)
        return 128 + signal.SIGINT
    if stop.received and not result.success:  # (a run that had finished publishing when the signal came succeeded)
        warehouse = Warehouse(database_path=str(args.db))
        published = ("it had published its database before it stopped" if warehouse.current_version() ==
                     warehouse.version_dir(result.run_id) else "the published database was not changed")
        print(f"run {result.run_id} {stop.stopped_by()}: its other steps were not run; {published}.",
              file=sys.stderr)
        return 128 + stop.first_signal()
    if not result.success:
        for message in failure_messages(result):
            print(message, file=sys.stderr)
        print(f"run {result.run_id} failed; the published database was not changed.", file=sys.stderr)
        return 1
    text = summary(args.db, study_overrides=args.override_json)
    print(text)
    for warning in run_warnings(result):
        print(f"WARNING: {warning}")
    return 2 if args.fail_on_empty and NO_ESTIMATE_WARNING in text else 0


if __name__ == "__main__":
    sys.exit(main())
