"""The Spark group's one pair of study runs (tests/spark/conftest.py `study_runs`): the study job run once on each
engine, in a real Dagster instance, on a generated extract with planted defects."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from tests.support.paths import REPO_ROOT

# The extract of the study runs: generated with planted defects, small enough for the group's time budget.
STUDY_RUN_PATIENTS, STUDY_RUN_SEED = 300, 1
# The fixture's name: the tests that use it run first (conftest.py), and it claims the catalogue under this name.
STUDY_RUNS_FIXTURE = "study_runs"


class StudyRun(NamedTuple):
    result: Any  # dagster.ExecuteInProcessResult
    database: Path  # the published database
    log: list[str]  # the run's log messages


def run_study_on_both_engines(extract: Path, folder: Path) -> dict[str, StudyRun]:
    """{"duckdb": StudyRun, "spark": StudyRun}: the study job on `extract`, first on DuckDB, then with the
    warehouse's `engine: spark` (on the process's Spark session), in a Dagster instance under `folder` configured by
    the repository's dagster.yaml."""
    import dagster as dg

    from pipelines.run import failure_messages, run_study

    home = folder / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    runs = {}
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        for engine in ("duckdb", "spark"):
            database = folder / engine / "leg_cramps.duckdb"
            result = run_study(extract, database, instance=instance, engine=engine)
            assert result.success, failure_messages(result)
            log = [entry.user_message for entry in instance.all_logs(result.run_id)]
            runs[engine] = StudyRun(result, database, log)
    return runs
