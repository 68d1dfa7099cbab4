"""The extract-drop sensor (complete drops only, one run per drop version) and the run-failure summary sensor."""

from __future__ import annotations

import hashlib
import json
import logging

import dagster as dg

from pipelines.definitions import defs
from pipelines.jobs import STUDY_JOB_NAME
from pipelines.operations.sensors import RUN_KEY_TAG, build_extract_drop_sensor, run_failure_summary
from pipelines.run import run_study
from pipelines.synthetic import generate_extract
from tests.test_ingest import write_fixture


def _evaluate(sensor, instance, cursor=None):
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_only_a_complete_drop_starts_one_run_and_never_twice(tmp_path, dagster_instance):
    landing, databases = tmp_path / "landing", tmp_path / "build"
    landing.mkdir()
    sensor = build_extract_drop_sensor(landing, databases)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED

    # A drop being copied: table files but no manifest yet -> nothing starts.
    drop = landing / "site_a"
    generate_extract(drop, patients=200, seed=3, progress=False)
    manifest = (drop / "_manifest.json").read_bytes()
    (drop / "_manifest.json").unlink()
    result = _evaluate(sensor, dagster_instance)
    assert not result.run_requests
    assert "waiting for _manifest.json in: site_a" in result.skip_message

    # The manifest is being written (not yet valid JSON) -> still nothing.
    (drop / "_manifest.json").write_bytes(manifest[: len(manifest) // 2])
    result = _evaluate(sensor, dagster_instance, cursor=result.cursor)
    assert not result.run_requests and "waiting for _manifest.json in: site_a" in result.skip_message

    # The manifest is complete (written last) -> exactly one run request for the drop.
    (drop / "_manifest.json").write_bytes(manifest)
    result = _evaluate(sensor, dagster_instance, cursor=result.cursor)
    [request] = result.run_requests
    assert request.run_key == "site_a:" + hashlib.sha256(manifest).hexdigest()
    job = defs.resolve_job_def(STUDY_JOB_NAME)
    dg.validate_run_config(job, request.run_config)
    resources = request.run_config["resources"]
    assert resources["extract"]["config"]["folder"] == str(drop.resolve())
    assert resources["warehouse"]["config"]["database_path"] == str((databases / "site_a.duckdb").resolve())
    assert request.tags["legcramp/duckdb-writer"] == "true" and request.tags["legcramp/drop"] == "site_a"
    assert json.loads(result.cursor) == {"site_a": request.run_key}

    # The next tick with the cursor: nothing new.
    again = _evaluate(sensor, dagster_instance, cursor=result.cursor)
    assert not again.run_requests and "no new complete drop" in again.skip_message

    # Without the cursor (reset, or the sensor renamed) the instance's run history still stops a second run:
    # record the run the daemon would have launched for the request, with its run key tag.
    dagster_instance.create_run_for_job(job_def=job, run_config=request.run_config,
                                        tags={**request.tags, RUN_KEY_TAG: request.run_key})
    assert not _evaluate(sensor, dagster_instance).run_requests

    # A re-delivery of the site (new manifest) and a second site each run once.
    generate_extract(landing / "site_b", patients=200, seed=4, progress=False)
    (drop / "_manifest.json").write_bytes(manifest.replace(b'"seed": 3', b'"seed": 33'))
    result = _evaluate(sensor, dagster_instance, cursor=again.cursor)
    assert sorted(r.tags["legcramp/drop"] for r in result.run_requests) == ["site_a", "site_b"]


def test_landing_folder_problems_skip_with_a_reason(tmp_path, dagster_instance):
    sensor = build_extract_drop_sensor(tmp_path / "nowhere", tmp_path / "build")
    assert "landing folder" in _evaluate(sensor, dagster_instance).skip_message

    landing = tmp_path / "landing"
    (landing / "site a").mkdir(parents=True)
    (landing / "site a" / "_manifest.json").write_text("{}")
    result = _evaluate(build_extract_drop_sensor(landing, tmp_path / "build"), dagster_instance)
    assert not result.run_requests and "'site a': rename the drop" in result.skip_message


def test_run_failure_sensor_logs_the_failed_step_and_the_users_error(tmp_path, dagster_instance, caplog):
    extract = write_fixture(tmp_path / "extract")
    (extract / "person.csv").unlink()
    database = tmp_path / "study.duckdb"
    result = run_study(extract, database, instance=dagster_instance)
    assert not result.success

    [failure] = dagster_instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    context = dg.build_run_status_sensor_context(
        sensor_name=run_failure_summary.name, dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=dagster_instance, dagster_run=dagster_instance.get_run_by_id(result.run_id),
    ).for_run_failure()
    with caplog.at_level(logging.ERROR, logger="pipelines.operations.sensors"):
        run_failure_summary(context)
    [summary] = [r.getMessage() for r in caplog.records if r.name == "pipelines.operations.sensors"]
    assert f"run {result.run_id} of {STUDY_JOB_NAME} FAILED (extract: {extract.resolve()};" in summary
    assert "step load_extract failed: pipelines.ingest.loader.ExtractError:" in summary
    assert "required table file(s) missing: person.csv" in summary
    assert "the published database was not changed" in summary
