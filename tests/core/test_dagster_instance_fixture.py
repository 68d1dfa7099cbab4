"""The tests' Dagster instance runs with the project's instance settings (dagster.yaml): telemetry off, one writing
run at a time, a dead run retried once. Dagster's instance_for_test writes its own dagster.yaml into the folder, so
a copied file alone would be ignored."""

import yaml

from tests.support.paths import REPO_ROOT


def test_the_fixture_instance_has_the_project_settings(dagster_instance):
    project = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    settings = dagster_instance.get_settings
    assert settings("telemetry") == {"enabled": False}
    assert settings("run_retries")["max_retries"] == project["run_retries"]["max_retries"] == 1
    assert dagster_instance.run_retries_enabled
    assert dagster_instance.run_retries_max_retries == 1
    assert not dagster_instance.run_retries_retry_on_asset_or_op_failure
    assert settings("run_monitoring")["start_timeout_seconds"] == 180
    limits = dagster_instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": "legcramp/duckdb-writer", "limit": 1} in limits
