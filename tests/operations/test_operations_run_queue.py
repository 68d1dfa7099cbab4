"""Two writing runs never run at the same time: both are queued in a real instance configured by the repository's
dagster.yaml (QueuedRunCoordinator, tag limit legcramp/duckdb-writer = 1), then a real `dagster-daemon` dequeues
them. The daemon could start both at once (max_concurrent_runs is 4); the writer tag makes it start one after the
other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from pipelines.jobs import STUDY_JOB_NAME, WRITER_TAG
from pipelines.network.sites import register_site
from pipelines.operations.run_config import study_run_config
from tests.support.paths import REPO_ROOT
from tests.support.planted_rejects import accepting_fixture_rejects, write_fixture

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_two_writer_runs_queue_one_after_the_other(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1", "GX_ANALYTICS_ENABLED": "false"}
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

    # Both runs are submitted before any daemon runs, so both are waiting in the queue together.
    run_ids = []
    for site in ("site_a", "site_b"):
        register_site(instance, site)
        extract = write_fixture(tmp_path / site)
        config = accepting_fixture_rejects(study_run_config(extract, tmp_path / "published" / f"{site}.duckdb"))
        run_id = str(uuid.uuid4())
        subprocess.run(
            [str(BIN / "dagster"), "job", "launch", "-m", "pipelines.definitions", "-j", STUDY_JOB_NAME,
             "--config-json", json.dumps(config), "--tags", json.dumps({"dagster/partition": site}),
             "--run-id", run_id],
            env=env, cwd=REPO_ROOT, check=True, capture_output=True, timeout=180)
        run_ids.append(run_id)
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.QUEUED
        assert run.tags.items() >= WRITER_TAG.items()  # the job's tag, limited to 1 in dagster.yaml

    log = tmp_path / "daemon.log"
    with log.open("w") as log_file:
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "pipelines.definitions"], env=env,
                                  cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, both_in_progress = time.monotonic() + 480, False
        while time.monotonic() < deadline:
            statuses = [instance.get_run_by_id(run_id).status for run_id in run_ids]
            in_progress = [s for s in statuses if s in (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)]
            both_in_progress |= len(in_progress) > 1
            if all(s in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for s in statuses):
                break
            time.sleep(0.5)
        assert statuses == [dg.DagsterRunStatus.SUCCESS] * 2, f"{statuses}; daemon log:\n{log.read_text()[-3000:]}"
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)

    assert not both_in_progress
    # The run records' own times: the later run started only after the earlier one ended.
    first, second = sorted(instance.get_run_records(dg.RunsFilter(run_ids=run_ids)), key=lambda r: r.start_time)
    assert second.start_time >= first.end_time
    assert {r.dagster_run.tags["dagster/partition"] for r in (first, second)} == {"site_a", "site_b"}
