"""Run configuration of the study job, and checks that turn a bad configuration into a clear message.

The study job reads two resources that an operator overrides per run (from the Launchpad, a schedule or the
extract-drop sensor):

    resources.extract.config.folder              the extract folder to load
    resources.warehouse.config.database_path     the published DuckDB file the run replaces

and, optionally, `resources.studies.config.overrides` (study parameters, pipelines/cohorts/settings.py).

Dagster checks the shape of the run config (unknown keys, types). `config_problems` adds what the shape cannot say:
that the extract folder exists, that the database path can be written, that DuckDB accepts the settings and that
the study overrides make valid studies.
Schedules and the sensor skip a tick with these messages instead of launching a run that would fail minutes later,
and a run launched anyway (Launchpad, `legcramp-run`) fails while its resources are set up, before its first step
(`Warehouse.setup_for_execution` calls `run_problems`; `StudySettings.setup_for_execution` checks the overrides).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, NoReturn

import duckdb

from pipelines.cohorts.settings import StudySettings, override_problems
from pipelines.cohorts.study import load_studies
from pipelines.run import run_config as _cli_run_config

# The study a run is for (schedules set it); an unknown id is a typo in a Launchpad tag or a stale schedule.
STUDY_TAG = "legcramp/study"
# Warehouse settings DuckDB itself must accept (checked by opening an in-memory database with them).
DUCKDB_SETTINGS = ("memory_limit", "threads")


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


def study_run_config(extract_folder: Path, database_path: Path) -> dict:
    """The run config of one study-job run: the same shape `legcramp-run` uses."""
    return _cli_run_config(Path(extract_folder), Path(database_path))


def _resource_config(run_config: Mapping[str, Any], resource: str) -> Mapping[str, Any]:
    resources = run_config.get("resources") or {}
    return (resources.get(resource) or {}).get("config") or {}


def _unwritable_folder(path: Path, field: str) -> str | None:
    """Why `path` (a file or folder the run will create) cannot be created, or None if it can."""
    existing = path.resolve().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{field}: {existing} is a file, so {path} cannot be created"
    if not os.access(existing, os.W_OK):
        return f"{field}: folder {existing} is not writable"
    return None


def _duckdb_setting_problems(config: Mapping[str, Any], prefix: str) -> list[str]:
    problems = []
    for name in DUCKDB_SETTINGS:
        value = config.get(name)
        if value is None:
            continue
        try:
            duckdb.connect(":memory:", config={name: str(value)}).close()
        except duckdb.Error as error:
            reason = str(error).strip().splitlines()[0]
            problems.append(f"{prefix}.{name}: DuckDB does not accept {value!r} ({reason})")
    return problems


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

    warehouse = _resource_config(run_config, warehouse_key)
    prefix = f"resources.{warehouse_key}.config"
    database = warehouse.get("database_path")
    if database is not None:
        path = Path(database)
        if not str(database).strip():
            problems.append(f"{prefix}.database_path is empty; give the published .duckdb file")
        elif path.is_dir():
            problems.append(f"{prefix}.database_path: {path} is a folder; "
                            "give a file path such as build/leg_cramps.duckdb")
        else:
            # The run creates missing folders; the nearest existing one must be writable.
            problem = _unwritable_folder(path, f"{prefix}.database_path")
            if problem:
                problems.append(problem)
        if folder is not None and str(folder).strip() and str(database).strip() and \
                Path(folder).resolve() in path.resolve().parents:
            problems.append(f"{prefix}.database_path must not be inside the extract folder "
                            f"({folder}): extracts are read-only inputs")
    temp_directory = warehouse.get("temp_directory")
    if temp_directory is not None:
        if Path(temp_directory).is_file():
            problems.append(f"{prefix}.temp_directory: {temp_directory} is a file, not a folder")
        else:
            problem = _unwritable_folder(Path(temp_directory) / "spill", f"{prefix}.temp_directory")
            if problem:
                problems.append(problem)
    problems += _duckdb_setting_problems(warehouse, prefix)
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
