"""Schedules: one per study, stopped by default, each tick a valid run of the study job; settings and run-config
problems are reported clearly."""

from __future__ import annotations


import dagster as dg
import pytest

from pipelines.cohorts.study import load_studies
from pipelines.definitions import defs
from pipelines.jobs import STUDY_JOB_NAME
from pipelines.operations.run_config import (RunConfigError, check_study_run_config, config_problems,
                                             study_run_config)
from pipelines.operations.schedules import (ScheduleSettingsError, build_study_schedules,
                                            load_schedule_settings)


def _context(instance):
    # With the code location's repository, as the daemon evaluates it, so the partitioned request is resolved.
    return dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def())


def test_each_study_has_one_stopped_schedule_that_requests_a_valid_study_run(dagster_instance):
    study_ids = list(load_studies())
    schedules = {schedule.name: schedule for schedule in defs.schedules}
    assert sorted(schedules) == sorted(f"{study_id}_schedule" for study_id in study_ids)
    job = defs.resolve_job_def(STUDY_JOB_NAME)

    for study_id in study_ids:
        schedule = schedules[f"{study_id}_schedule"]
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
        assert schedule.job_name == STUDY_JOB_NAME
        result = schedule.evaluate_tick(_context(dagster_instance))
        if result.skip_message:  # only when the default extract (data/sample) has not been generated here
            assert "extract folder" in result.skip_message and "does not exist" in result.skip_message
            continue
        [request] = result.run_requests
        dg.validate_run_config(job, request.run_config)
        assert request.tags["legcramp/study"] == study_id
        assert request.tags["legcramp/duckdb-writer"] == "true"


def test_schedule_settings_override_per_study_and_the_tick_uses_them(tmp_path, dagster_instance):
    extract = tmp_path / "site_a"
    extract.mkdir()
    settings_file = tmp_path / "_schedules.yaml"
    settings_file.write_text(f"""
defaults:
  cron: "30 1 * * *"
  timezone: Europe/Amsterdam
studies:
  leg_cramps:
    cron: "0 6 1 * *"
    extract_folder: {extract}
    database_path: {tmp_path / "db" / "site_a.duckdb"}
""")
    schedules = {s.name: s for s in build_study_schedules(["leg_cramps", "thiazide_vs_ccb"], settings_file)}
    assert schedules["leg_cramps_schedule"].cron_schedule == "0 6 1 * *"
    assert schedules["thiazide_vs_ccb_schedule"].cron_schedule == "30 1 * * *"
    assert schedules["leg_cramps_schedule"].execution_timezone == "Europe/Amsterdam"

    result = schedules["leg_cramps_schedule"].evaluate_tick(_context(dagster_instance))
    [request] = result.run_requests
    dg.validate_run_config(defs.resolve_job_def(STUDY_JOB_NAME), request.run_config)
    resources = request.run_config["resources"]
    assert resources["extract"]["config"]["folder"] == str(extract.resolve())
    assert resources["warehouse"]["config"]["database_path"] == str((tmp_path / "db" / "site_a.duckdb").resolve())
    # The run builds the site named after its extract folder; the schedule registered that partition.
    assert request.partition_key == "site_a" and request.tags["dagster/partition"] == "site_a"
    assert dagster_instance.get_dynamic_partitions("site") == ["site_a"]


def test_a_tick_whose_extract_is_missing_skips_with_the_reason(tmp_path, dagster_instance):
    settings_file = tmp_path / "_schedules.yaml"
    settings_file.write_text(f"defaults: {{extract_folder: {tmp_path / 'not_there'}}}\n")
    [schedule] = build_study_schedules(["leg_cramps"], settings_file)
    result = schedule.evaluate_tick(_context(dagster_instance))
    assert not result.run_requests
    assert f"extract folder {tmp_path / 'not_there'} does not exist" in result.skip_message


@pytest.mark.parametrize("text, message", [
    ("defaults: {cron: 'every monday'}", "defaults.cron: 'every monday' is not a valid cron string"),
    ("defaults: {timezone: Mars/Olympus}", "defaults.timezone: 'Mars/Olympus' is not an IANA time zone"),
    ("defaults: {crn: '0 3 * * 1'}", "defaults: unknown key(s) crn"),
    ("defaults: {site: 'site a'}", "defaults.site: site name 'site a' cannot name a site"),
    ("studies: {leg_cramp: {cron: '0 3 * * 1'}}", "studies: unknown study id(s) leg_cramp"),
    ("schedules: {}", "expected top-level keys `defaults` and `studies` only"),
])
def test_bad_schedule_settings_name_the_file_and_key(tmp_path, text, message):
    settings_file = tmp_path / "_schedules.yaml"
    settings_file.write_text(text + "\n")
    with pytest.raises(ScheduleSettingsError) as error:
        load_schedule_settings(["leg_cramps"], settings_file)
    assert str(settings_file) in str(error.value) and message in str(error.value)


def test_run_config_problems_are_spelled_out(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    extract = tmp_path / "extract"
    extract.mkdir()
    assert config_problems(study_run_config(extract, tmp_path / "out" / "new" / "study.duckdb")) == []
    # A Launchpad config that sets neither key keeps the resources' defaults: nothing to complain about.
    assert config_problems({"resources": {}}) == []

    with pytest.raises(RunConfigError) as error:
        check_study_run_config(study_run_config(tmp_path / "missing", tmp_path))
    text = str(error.value)
    assert f"resources.extract.config.folder: extract folder {tmp_path / 'missing'} does not exist" in text
    assert f"resources.warehouse.config.database_path: {tmp_path} is a folder" in text

    problems = config_problems(study_run_config(a_file, a_file / "study.duckdb"))
    assert any("is a file, not an extract folder" in p for p in problems)
    assert any("is a file, so" in p for p in problems)
    inside = config_problems(study_run_config(tmp_path, tmp_path / "study.duckdb"))
    assert any("must not be inside the extract folder" in p for p in inside)


def test_dagster_rejects_a_misspelt_override_key():
    job = defs.resolve_job_def(STUDY_JOB_NAME)
    with pytest.raises(dg.DagsterInvalidConfigError) as error:
        dg.validate_run_config(job, {"resources": {"extract": {"config": {"fodler": "x"}}}})
    assert "fodler" in str(error.value)
