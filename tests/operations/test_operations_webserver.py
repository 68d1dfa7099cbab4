"""The UI end to end: dagster-webserver serves the code location, a run launched through GraphQL succeeds, and
headless Chromium renders the asset graph.

The test instance uses the repository's dagster.yaml plus the DefaultRunCoordinator, which launches a run at once.
The repository's instance uses the QueuedRunCoordinator, which needs `dagster-daemon run` (started by `make ui`,
i.e. `dagster dev`) to dequeue runs and enforce the legcramp/duckdb-writer limit; starting a daemon here would only
add time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipelines.jobs import STUDY_JOB_NAME
from pipelines.operations.run_config import study_run_config
from tests.support.paths import REPO_ROOT

BIN = Path(sys.executable).parent
TEST_RUN_COORDINATOR = """
# Added by tests/operations/test_operations_webserver.py: launch runs at once (no daemon in this test).
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""
EXPECTED_ASSETS = {"published_database", "staging/person", "cohort/leg_cramps"}
ASSET_GROUPS = ("ingest", "phenotypes", "cohorts", "statistics", "publish", "network")

LOCATIONS = """
query { repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""
# What the Launchpad's "Add partition" button does: register a site (a dynamic partition of the study assets).
ADD_SITE = """
mutation AddSite($repository: RepositorySelector!, $site: String!) {
  addDynamicPartition(repositorySelector: $repository, partitionsDefName: "site", partitionKey: $site) {
    __typename
    ... on AddDynamicPartitionSuccess { partitionKey }
    ... on PythonError { message }
  }
}
"""
RUN_STATUS = """
query Status($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }
"""
ASSET_NODES = "query { assetNodes { assetKey { path } } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]


def _wait_for_server(port: int, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"dagster-webserver exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"dagster-webserver did not answer /server_info within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.mark.slow
def test_webserver_launches_the_study_and_chromium_renders_the_asset_graph(tmp_path, generated_extract):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    extract = generated_extract(200, 7).path
    database = tmp_path / "published" / "study.duckdb"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text() + TEST_RUN_COORDINATOR)
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1",
           "GX_ANALYTICS_ENABLED": "false"}
    port = _free_port()
    log = tmp_path / "webserver.log"

    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", "pipelines.definitions"],
            env=env, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_server(port, server, log)

        [repository] = _graphql(port, LOCATIONS)["repositoriesOrError"]["nodes"]
        selector = {"repositoryLocationName": repository["location"]["name"], "repositoryName": repository["name"]}
        added = _graphql(port, ADD_SITE, {"repository": selector, "site": "site_a"})["addDynamicPartition"]
        assert added == {"__typename": "AddDynamicPartitionSuccess", "partitionKey": "site_a"}, added
        params = {
            "selector": {**selector, "jobName": STUDY_JOB_NAME},
            "runConfigData": study_run_config(extract, database),
            "executionMetadata": {"tags": [{"key": "legcramp/trigger", "value": "test_webserver"},
                                           {"key": "dagster/partition", "value": "site_a"}]},
        }
        launched = _graphql(port, LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]

        status, deadline = None, time.monotonic() + 300
        while time.monotonic() < deadline:
            status = _graphql(port, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(1)
        assert status == "SUCCESS", f"run {run_id} ended {status}; webserver log:\n{log.read_text()[-3000:]}"
        assert database.exists()

        asset_keys = {"/".join(node["assetKey"]["path"]) for node in _graphql(port, ASSET_NODES)["assetNodes"]}
        assert EXPECTED_ASSETS <= asset_keys

        if chromium is None:
            pytest.skip("chromium is not installed (`apt-get install -y chromium`; .ci/run installs it): "
                        "the run through the webserver passed, the screenshot was not taken")
        screenshot = tmp_path / "asset_graph.png"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium_profile'}", "--window-size=1600,1000",
                 "--virtual-time-budget=15000"]
        subprocess.run([chromium, *flags, f"--screenshot={screenshot}", f"http://127.0.0.1:{port}/asset-groups"],
                       capture_output=True, timeout=120, cwd=tmp_path)
        assert screenshot.exists(), "chromium wrote no screenshot"
        assert _png_size(screenshot) == (1600, 1000)
        # A blank page compresses to a few kB; the rendered graph with its labels is far larger.
        assert screenshot.stat().st_size > 30_000, f"screenshot looks empty ({screenshot.stat().st_size} bytes)"

        # The lineage page as rendered (after its JavaScript ran) shows every asset group of the code location.
        # (The catalogue at /assets renders its rows lazily, so its DOM does not reliably hold asset names.)
        dom = subprocess.run([chromium, *flags, "--dump-dom", f"http://127.0.0.1:{port}/asset-groups"],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path).stdout
        for group in ASSET_GROUPS:
            assert f">{group}<" in dom, f"asset group {group} is not on the rendered lineage page"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the webserver and the run process it launched
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        # The run's compute-log manager follows its log files with `tail -F` processes that outlive the run and
        # the webserver's process group; their command lines name files under this instance's directory.
        subprocess.run(["pkill", "-f", str(home)], check=False)
