"""One schedule per study (studies/<id>.yaml) that launches the study job; all start STOPPED.

When and on what each schedule runs comes from studies/_schedules.yaml (see the comments in that file): a `defaults`
block and optional per-study overrides of cron, timezone, extract_folder, database_path and site (the partition the
run builds; default: the extract folder's name, as for `legcramp-run`). A problem in that file
stops the code location from loading with the file and key named, like a broken study file does.

Every tick checks its run config (pipelines/operations/run_config.py) and skips with the problem spelled out rather
than launching a run that cannot work (e.g. the extract folder is missing).
"""

import os
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from pipelines import paths
from pipelines.cohorts.study import load_studies
from pipelines.jobs import STUDY_JOB_NAME, study_job
from pipelines.network.sites import SiteNameError, check_site_name, register_site, site_for_extract
from pipelines.operations.run_config import STUDY_TAG, config_problems, study_run_config
from pipelines.warehouse import WRITER_TAG

SCHEDULES_FILE = paths.STUDIES_DIR / "_schedules.yaml"
DEFAULT_CRON = "0 3 * * 1"  # Mondays 03:00: extracts usually arrive over the weekend
DEFAULT_TIMEZONE = "UTC"
SETTING_KEYS = ("cron", "timezone", "extract_folder", "database_path", "site")
TRIGGER_TAG = "legcramp/trigger"


class ScheduleSettingsError(ValueError):
    """studies/_schedules.yaml cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class StudySchedule:
    """When and on what one study's schedule runs the study job."""

    study_id: str
    cron: str
    timezone: str
    extract_folder: Path
    database_path: Path
    site: str | None = None  # None: named after the extract folder (pipelines.network.sites.site_for_extract)

    @property
    def schedule_name(self) -> str:
        return f"{self.study_id}_schedule"


def _repository_path(value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ScheduleSettingsError(f"{where}: expected a path, got {value!r}")
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else paths.REPO_ROOT / path


def _is_valid_cron(cron: Any) -> bool:
    # Dagster's own check (the public way to reach it is defining a schedule), so we accept exactly what it does.
    try:
        dg.ScheduleDefinition(name="cron_check", cron_schedule=str(cron), job_name="cron_check")
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


def _check_block(block: Any, where: str) -> dict[str, Any]:
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ScheduleSettingsError(f"{where}: expected a mapping of {', '.join(SETTING_KEYS)}")
    unknown = set(block) - set(SETTING_KEYS)
    if unknown:
        raise ScheduleSettingsError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                    f"known: {', '.join(SETTING_KEYS)}")
    settings = dict(block)
    if "cron" in settings and not _is_valid_cron(settings["cron"]):
        raise ScheduleSettingsError(f"{where}.cron: {settings['cron']!r} is not a valid cron string "
                                    "(five fields, e.g. \"0 3 * * 1\")")
    if "timezone" in settings:
        try:
            zoneinfo.ZoneInfo(str(settings["timezone"]))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ScheduleSettingsError(f"{where}.timezone: {settings['timezone']!r} is not an IANA time zone "
                                        "(e.g. UTC, Europe/Amsterdam)") from None
    for key in ("extract_folder", "database_path"):
        if key in settings:
            settings[key] = _repository_path(settings[key], f"{where}.{key}")
    if "site" in settings:
        try:
            check_site_name(str(settings["site"]))
        except SiteNameError as error:
            raise ScheduleSettingsError(f"{where}.site: {error}") from None
    return settings


def load_schedule_settings(study_ids: list[str], path: Path = SCHEDULES_FILE) -> dict[str, StudySchedule]:
    """Every study's schedule settings, by study id; an absent file means the built-in defaults for all."""
    path = Path(path)
    data: Any = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ScheduleSettingsError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict) or set(data) - {"defaults", "studies"}:
        raise ScheduleSettingsError(f"{path}: expected top-level keys `defaults` and `studies` only")
    defaults = {"cron": DEFAULT_CRON, "timezone": DEFAULT_TIMEZONE, "extract_folder": paths.DEFAULT_EXTRACT,
                "database_path": paths.DEFAULT_DATABASE,
                **_check_block(data.get("defaults"), f"{path}: defaults")}
    per_study = data.get("studies") or {}
    if not isinstance(per_study, dict):
        raise ScheduleSettingsError(f"{path}: studies: expected a mapping of study id to settings")
    unknown = set(per_study) - set(study_ids)
    if unknown:
        raise ScheduleSettingsError(f"{path}: studies: unknown study id(s) {', '.join(sorted(map(str, unknown)))}; "
                                    f"studies: {', '.join(study_ids)}")
    return {
        study_id: StudySchedule(study_id=study_id, **{
            **defaults, **_check_block(per_study.get(study_id), f"{path}: studies.{study_id}")})
        for study_id in study_ids
    }


def build_study_schedule(settings: StudySchedule) -> dg.ScheduleDefinition:
    """The schedule that runs the study job for one study with its extract and database."""

    @dg.schedule(
        name=settings.schedule_name,
        job=study_job,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(f"Runs {STUDY_JOB_NAME} for study {settings.study_id} on {settings.extract_folder} into "
                     f"{settings.database_path}. Settings: studies/_schedules.yaml."),
        tags={STUDY_TAG: settings.study_id},
    )
    def study_schedule(context: dg.ScheduleEvaluationContext):
        run_config = study_run_config(settings.extract_folder, settings.database_path)
        problems = config_problems(run_config)
        try:
            site = settings.site or site_for_extract(settings.extract_folder)
        except SiteNameError as error:
            problems.append(f"{error} (set `site` in {SCHEDULES_FILE.name})")
        if problems:
            return dg.SkipReason(f"{settings.schedule_name}: not launching: " + "; ".join(problems))
        # Schedules cannot return a partitions request (sensors can), so a new site is registered here.
        register_site(context.instance, site)
        return dg.RunRequest(
            partition_key=site,
            run_config=run_config,
            tags={**WRITER_TAG, STUDY_TAG: settings.study_id, TRIGGER_TAG: "schedule"},
        )

    return study_schedule


def build_study_schedules(study_ids: list[str] | None = None,
                          settings_file: Path = SCHEDULES_FILE) -> list[dg.ScheduleDefinition]:
    study_ids = study_ids if study_ids is not None else list(load_studies())
    settings = load_schedule_settings(study_ids, settings_file)
    return [build_study_schedule(settings[study_id]) for study_id in study_ids]


study_schedules = build_study_schedules()
