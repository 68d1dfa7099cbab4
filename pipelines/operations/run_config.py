"""Run configuration of the study job, and checks that turn a bad configuration into a clear message.

The study job reads two resources that an operator overrides per run (from the Launchpad, a schedule or the
extract-drop sensor):

    resources.extract.config.folder              the extract folder to load
    resources.warehouse.config.database_path     the published DuckDB file the run replaces
    resources.warehouse.config.engine            duckdb (default) or spark: where the phenotype, cohort and
                                                 statistics stages run (docs/scaling.md)

and, optionally, `resources.studies.config.overrides` (study parameters, pipelines/cohorts/settings.py).

Dagster checks the shape of the run config (unknown keys, types). `config_problems` adds what the shape cannot say:
that the extract folder exists, that the reject-share threshold is a share from 0 to 1, that the database path can
be written, that DuckDB accepts the settings and that
the study overrides make valid studies.
Schedules and the sensor skip a tick with these messages instead of launching a run that would fail minutes later,
and a run launched anyway (Launchpad, `legcramp-run`) fails while its resources are set up, before its first step
(`StudyWarehouse.setup_for_execution` calls `run_problems`; `StudySettings.setup_for_execution` checks the overrides).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from pipelines.cohorts.settings import StudySettings, override_problems
from pipelines.cohorts.study import load_studies
from pipelines.ingest.reject_share import MAX_REJECT_SHARE_SETTING, max_reject_share_problem
from pipelines.run_failures import MAX_RETRIES_TAG, RunConfigError, fail_run_setup
from pipelines.warehouse import Warehouse, warehouse_config_problems

__all__ = ["MAX_RETRIES_TAG", "STUDY_TAG", "RunConfigError", "StudyWarehouse", "check_study_run_config",
           "config_problems", "fail_run_setup", "run_problems", "study_run_config"]

# The study a run is for (schedules set it); an unknown id is a typo in a Launchpad tag or a stale schedule.
STUDY_TAG = "legcramp/study"


def study_run_config(extract_folder: Path, database_path: Path, memory_limit: str | None = None,
                     temp_directory: str | None = None, study_overrides: dict | None = None,
                     max_reject_share: float | None = None, engine: str | None = None) -> dict:
    """The run config of one study-job run (`legcramp-run`, schedules and the extract-drop sensor use it).

    `study_overrides`: study id -> study fields this run overrides (see pipelines/cohorts/settings.py);
    `max_reject_share`: the ingest's reject-share threshold (pipelines/ingest/reject_share.py), default 1%;
    `engine`: the engine of the phenotype, cohort and statistics stages (Warehouse.engine), default DuckDB."""
    # Absolute but not resolved: the published path is a link to the current version, and the run replaces the link.
    warehouse = {"database_path": os.path.abspath(database_path)}
    if memory_limit:
        warehouse["memory_limit"] = memory_limit
    if temp_directory:
        warehouse["temp_directory"] = temp_directory
    if engine:
        warehouse["engine"] = engine
    extract_config: dict = {"folder": str(Path(extract_folder).resolve())}
    if max_reject_share is not None:
        extract_config["max_reject_share"] = max_reject_share
    resources = {
        "extract": {"config": extract_config},
        "warehouse": {"config": warehouse},
    }
    if study_overrides:
        resources[StudySettings.resource_key] = {"config": {"overrides": study_overrides}}
    return {"loggers": {"console": {"config": {"log_level": "INFO"}}}, "resources": resources}


def _resource_config(run_config: Mapping[str, Any], resource: str) -> Mapping[str, Any]:
    resources = run_config.get("resources") or {}
    return (resources.get(resource) or {}).get("config") or {}


def config_problems(run_config: Mapping[str, Any], warehouse_key: str = "warehouse") -> list[str]:
    """Everything wrong with the extract folder, database settings and study overrides of a run config (empty
    list = fine).

    A key that is absent is not a problem: the resource's default applies. `warehouse_key` is the resource key of
    the database being written ("warehouse" for the study job).
    """
    problems: list[str] = []

    folder = _resource_config(run_config, "extract").get("folder")
    if folder is not None:
        path = Path(folder)
        if not str(folder).strip():
            problems.append("resources.extract.config.folder is empty; give the extract folder to load")
        elif not path.exists():
            problems.append(f"resources.extract.config.folder: extract folder {path} does not exist")
        elif not path.is_dir():
            problems.append(f"resources.extract.config.folder: {path} is a file, not an extract folder")

    share = _resource_config(run_config, "extract").get("max_reject_share")
    if share is not None and (problem := max_reject_share_problem(share)):
        problems.append(f"{MAX_REJECT_SHARE_SETTING} {problem}")

    problems += warehouse_config_problems(_resource_config(run_config, warehouse_key),
                                          f"resources.{warehouse_key}.config", extract_folder=folder)
    problems += override_problems(_resource_config(run_config, StudySettings.resource_key).get("overrides") or {})
    return problems


def run_problems(run_config: Mapping[str, Any], tags: Mapping[str, str], warehouse_key: str = "warehouse",
                 warehouse_config: Mapping[str, Any] | None = None) -> list[str]:
    """`config_problems` of a run about to start, with the warehouse settings it will really use (defaults
    included, `warehouse_config`), plus its study tag."""
    resources = dict(run_config.get("resources") or {})
    if warehouse_config is not None:
        resources[warehouse_key] = {"config": {k: v for k, v in warehouse_config.items() if v is not None}}
    problems = config_problems({**run_config, "resources": resources}, warehouse_key)
    study = tags.get(STUDY_TAG)
    if study is not None:
        studies = list(load_studies())
        if study not in studies:
            problems.append(f"tag {STUDY_TAG}: unknown study {study!r}; studies: {', '.join(studies)}")
    return problems


def check_study_run_config(run_config: Mapping[str, Any]) -> None:
    """Raise RunConfigError listing every problem of `config_problems`."""
    problems = config_problems(run_config)
    if problems:
        raise RunConfigError("invalid run config for the study job:\n  - " + "\n  - ".join(problems))


class StudyWarehouse(Warehouse):
    """The study job's warehouse: while it is set up it checks the whole run configuration (extract folder,
    database, study overrides, study tag), so a run that cannot work fails before its first step, listing every
    problem. The plain Warehouse checks only its own settings."""

    def run_problems(self, run_config: Mapping[str, Any], tags: Mapping[str, str]) -> list[str]:
        return run_problems(run_config, tags, self.resource_key, self.settings())
