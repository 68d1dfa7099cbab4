"""The study job as a real Dagster run: staging, publish, and a failed run that leaves the published file alone."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pytest

from pipelines.cohorts.study import load_studies
from pipelines.run import NO_ESTIMATE_WARNING, failure_messages, run_study, summary
from tests.support.planted_rejects import EXPECTED_REJECTS, FIXTURE_MAX_REJECT_SHARE, write_fixture


@pytest.mark.slow
def test_job_loads_extract_and_publishes_atomically(tmp_path, dagster_instance):
    extract = write_fixture(tmp_path / "extract")
    database = tmp_path / "out" / "study.duckdb"
    result = run_study(extract, database, instance=dagster_instance, max_reject_share=FIXTURE_MAX_REJECT_SHARE)
    assert result.success
    assert database.exists()
    assert not any((database.parent / ".runs").glob("**/*.duckdb")), "the build file must have been moved"

    con = duckdb.connect(str(database), read_only=True)
    assert con.execute("SELECT count(*) FROM staging.person").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM ingest.rejects").fetchone()[0] == len(EXPECTED_REJECTS)
    con.close()

    materialized = {
        tuple(e.asset_key.path) for e in result.get_asset_materialization_events()
    }
    assert ("staging", "person") in materialized and ("published_database",) in materialized
    person_event = next(e for e in result.get_asset_materialization_events()
                        if tuple(e.asset_key.path) == ("staging", "person"))
    metadata = person_event.materialization.metadata
    assert metadata["rejected"].value == 4 and metadata["loaded"].value == 3
    assert dagster_instance.get_run_by_id(result.run_id).tags["legcramp/duckdb-writer"] == "true"

    text = summary(database)
    assert "patients loaded:    <11" in text and "rejected: 14" in text  # 3 persons: a small cell
    # Every study is listed, an empty one too, and a run in which no study published an estimate says so.
    for study_id in load_studies():
        assert f"cohort {study_id}: " in text
    assert "0 of " in text and f"WARNING: {NO_ESTIMATE_WARNING}" in text


@pytest.mark.slow
def test_failed_run_leaves_the_published_database_unchanged(tmp_path, dagster_instance):
    extract = write_fixture(tmp_path / "extract")
    database = tmp_path / "study.duckdb"
    assert run_study(extract, database, instance=dagster_instance, max_reject_share=FIXTURE_MAX_REJECT_SHARE).success
    before = database.read_bytes()

    (extract / "person.csv").unlink()
    result = run_study(extract, database, instance=dagster_instance)
    assert not result.success
    [message] = failure_messages(result)
    assert message.startswith("step load_extract failed: pipelines.ingest.loader.ExtractError:")
    assert "required table file(s) missing: person.csv" in message
    assert database.read_bytes() == before


def test_dagster_definitions_validate():
    env = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1"}
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dagster"), "definitions", "validate",
         "-m", "pipelines.definitions"],
        capture_output=True, text=True, env=env,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
