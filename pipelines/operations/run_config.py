"""Run configuration of the study job, and checks that turn a bad configuration into a clear message.

The study job reads two resources that an operator overrides per run (from the Launchpad, a schedule or the
extract-drop sensor):

    resources.extract.config.folder              the extract folder to load
    resources.warehouse.config.database_path     the published DuckDB file the run replaces

Dagster checks the shape of the run config (unknown keys, types). `config_problems` adds what the shape cannot say:
that the extract folder exists and that the database path can be written. Schedules and the sensor skip a tick with
these messages instead of launching a run that would fail minutes later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from pipelines.run import run_config as _cli_run_config


class RunConfigError(ValueError):
    """A study-job run config that cannot work; the message lists every problem."""


def study_run_config(extract_folder: Path, database_path: Path) -> dict:
    """The run config of one study-job run: the same shape `legcramp-run` uses."""
    return _cli_run_config(Path(extract_folder), Path(database_path))


def _resource_config(run_config: Mapping[str, Any], resource: str) -> Mapping[str, Any]:
    resources = run_config.get("resources") or {}
    return (resources.get(resource) or {}).get("config") or {}


def config_problems(run_config: Mapping[str, Any]) -> list[str]:
    """Everything wrong with the extract folder and database path of a run config (empty list = fine).

    A key that is absent is not a problem: the resource's default applies.
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

    database = _resource_config(run_config, "warehouse").get("database_path")
    if database is not None:
        path = Path(database)
        if not str(database).strip():
            problems.append("resources.warehouse.config.database_path is empty; give the published .duckdb file")
        elif path.is_dir():
            problems.append(f"resources.warehouse.config.database_path: {path} is a folder; "
                            "give a file path such as build/leg_cramps.duckdb")
        else:
            # The run creates missing folders; the nearest existing one must be writable.
            existing = path.resolve().parent
            while not existing.exists():
                existing = existing.parent
            if not existing.is_dir():
                problems.append(f"resources.warehouse.config.database_path: {existing} is a file, "
                                f"so {path} cannot be created")
            elif not os.access(existing, os.W_OK):
                problems.append(f"resources.warehouse.config.database_path: folder {existing} is not writable")
        if folder is not None and str(folder).strip() and str(database).strip() and \
                Path(folder).resolve() in path.resolve().parents:
            problems.append("resources.warehouse.config.database_path must not be inside the extract folder "
                            f"({folder}): extracts are read-only inputs")
    return problems


def check_study_run_config(run_config: Mapping[str, Any]) -> None:
    """Raise RunConfigError listing every problem of `config_problems`."""
    problems = config_problems(run_config)
    if problems:
        raise RunConfigError("invalid run config for the study job:\n  - " + "\n  - ".join(problems))
