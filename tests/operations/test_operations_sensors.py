"""The extract-drop sensor (complete drops only, one run per drop version, one partition per site) and the
run-failure summary sensor."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.jobs import STUDY_JOB_NAME
from pipelines.operations.sensors import RUN_KEY_TAG, build_extract_drop_sensor
from pipelines.run import run_study
from pipelines.synthetic import generate_extract
from tests.support.dagster_runs import run_failure_summary_of
from tests.support.planted_rejects import write_fixture


def _evaluate(sensor, instance, cursor=None):
    # As the daemon evaluates it: the code location's definitions and an instance ref, so that Dagster resolves the
    # partitioned run requests (checks the partition exists or is requested in the same tick, adds partition tags).
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                                        instance_ref=instance.get_ref()))


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
    # A single extract directly in the landing folder is its own site: a new partition, registered in this tick.
    assert request.partition_key == "site_a" and request.tags["dagster/partition"] == "site_a"
    assert result.dynamic_partitions_requests == [dg.AddDynamicPartitionsRequest("site", ["site_a"])]
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


def test_sites_with_drops_get_one_partition_each_and_one_run_per_drop(tmp_path, dagster_instance):
    """landing/<site>/<drop>/: two sites' complete drops register two partitions and request one run each; an
    incomplete drop requests nothing; the next tick requests nothing; a site's next drop runs the same partition."""
    landing, databases = tmp_path / "landing", tmp_path / "sites"
    for site, seed in (("site_a", 3), ("site_b", 4), ("site_c", 5)):
        generate_extract(landing / site / "2026_11", patients=50, seed=seed, progress=False)
    (landing / "site_c" / "2026_11" / "_manifest.json").unlink()  # site_c is still copying
    sensor = build_extract_drop_sensor(landing, databases)

    result = _evaluate(sensor, dagster_instance)
    assert result.dynamic_partitions_requests == [dg.AddDynamicPartitionsRequest("site", ["site_a", "site_b"])]
    requests = {r.partition_key: r for r in result.run_requests}
    assert sorted(requests) == ["site_a", "site_b"]
    for site, request in requests.items():
        manifest = (landing / site / "2026_11" / "_manifest.json").read_bytes()
        assert request.run_key == f"{site}/2026_11:" + hashlib.sha256(manifest).hexdigest()
        assert request.tags["legcramp/drop"] == f"{site}/2026_11" and request.tags["legcramp/site"] == site
        config = request.run_config["resources"]
        assert config["extract"]["config"]["folder"] == str((landing / site / "2026_11").resolve())
        assert config["warehouse"]["config"]["database_path"] == str((databases / f"{site}.duckdb").resolve())

    # The daemon adds the partitions before it launches the runs; then a tick finds nothing new.
    dagster_instance.add_dynamic_partitions("site", ["site_a", "site_b"])
    again = _evaluate(sensor, dagster_instance, cursor=result.cursor)
    assert not again.run_requests and not again.dynamic_partitions_requests
    assert "waiting for _manifest.json in: site_c/2026_11" in again.skip_message

    # site_a delivers its next extract: one run of the existing partition, no new partition.
    generate_extract(landing / "site_a" / "2026_12", patients=50, seed=6, progress=False)
    later = _evaluate(sensor, dagster_instance, cursor=again.cursor)
    [request] = later.run_requests
    assert request.partition_key == "site_a" and request.tags["legcramp/drop"] == "site_a/2026_12"
    assert not later.dynamic_partitions_requests


def test_landing_folder_problems_skip_with_a_reason(tmp_path, dagster_instance):
    sensor = build_extract_drop_sensor(tmp_path / "nowhere", tmp_path / "build")
    assert "landing folder" in _evaluate(sensor, dagster_instance).skip_message

    landing = tmp_path / "landing"
    (landing / "site a").mkdir(parents=True)
    (landing / "site a" / "_manifest.json").write_text("{}")
    result = _evaluate(build_extract_drop_sensor(landing, tmp_path / "build"), dagster_instance)
    assert not result.run_requests and "'site a': rename 'site a' to letters, digits" in result.skip_message


@pytest.mark.slow
def test_run_failure_sensor_logs_the_failed_step_and_the_users_error(tmp_path, dagster_instance, caplog):
    extract = write_fixture(tmp_path / "extract")
    (extract / "person.csv").unlink()
    database = tmp_path / "study.duckdb"
    result = run_study(extract, database, instance=dagster_instance)
    assert not result.success

    summary = run_failure_summary_of(dagster_instance, result.run_id, caplog)
    assert f"run {result.run_id} of {STUDY_JOB_NAME} site extract FAILED (extract: {extract.resolve()};" in summary
    assert "step load_extract failed: pipelines.ingest.loader.ExtractError:" in summary
    assert "required table file(s) missing: person.csv" in summary
    assert "the published database was not changed" in summary
