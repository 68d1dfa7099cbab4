"""The Spark group's one pair of study runs (tests/spark/conftest.py `study_runs`): the study job run once on each
engine, in a real Dagster instance of its own, on a generated extract with planted defects.

The two runs share nothing but the extract, so they run at the same time (`run_study_in_own_instance`): the
DuckDB run in a process of its own (tests/spark/own_process.py), while this process starts the group's Spark
session and runs the Spark run on it. Each run is then read back from its instance's event log (`read_study_run`),
the same way for both: the result Dagster returns in-process is built from the same events
(ExecuteInProcessResult), so the tests ask both runs the same questions whichever process ran them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from tests.support.paths import REPO_ROOT

# The extract of the study runs: generated with planted defects, small enough for the group's time budget.
STUDY_RUN_PATIENTS, STUDY_RUN_SEED = 300, 1
# The fixture's name: the tests that use it run first (conftest.py), and it claims the catalogue under this name.
STUDY_RUNS_FIXTURE = "study_runs"


class StudyRun(NamedTuple):
    result: Any  # dagster.ExecuteInProcessResult, built from the run's stored events
    database: Path  # the published database
    log: list[str]  # the run's log messages


def _instance_home(folder: Path) -> Path:
    return folder / "dagster_home"


def run_study_in_own_instance(extract: Path, folder: Path, engine: str) -> str:
    """The study job on `extract` with the warehouse's `engine`, publishing `folder`/leg_cramps.duckdb, in a Dagster
    instance under `folder` configured by the repository's dagster.yaml; returns the run id. With `engine: spark` it
    runs on the process's Spark session."""
    import dagster as dg

    from pipelines.run import run_study

    home = _instance_home(folder)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return run_study(extract, folder / "leg_cramps.duckdb", instance=instance, engine=engine).run_id


def read_study_run(folder: Path, run_id: str) -> StudyRun:
    """The run `run_id` of the instance under `folder` as a StudyRun; asserts that it succeeded."""
    import dagster as dg

    from pipelines.definitions import load_definitions
    from pipelines.jobs import STUDY_JOB_NAME
    from pipelines.run import failure_messages

    with dg.DagsterInstance.from_config(str(_instance_home(folder))) as instance:
        entries = instance.all_logs(run_id)
        result = dg.ExecuteInProcessResult(
            event_list=[entry.dagster_event for entry in entries if entry.is_dagster_event],
            dagster_run=instance.get_run_by_id(run_id),
            output_capture=None,
            job_def=load_definitions().resolve_job_def(STUDY_JOB_NAME),
        )
    assert result.success, failure_messages(result)
    return StudyRun(result, folder / "leg_cramps.duckdb", [entry.user_message for entry in entries])
