"""A run whose configuration cannot work (as launched from the Launchpad) fails while its resources are set up,
before its first step, with the field and the problem named; the run-failure sensor reports the same."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from pipelines.definitions import defs
from pipelines.jobs import STUDY_JOB_NAME
from pipelines.network.sites import register_site
from pipelines.operations.run_config import study_run_config
from pipelines.run import failure_messages
from tests.support.dagster_runs import run_failure_summary_of
from tests.support.paths import REPO_ROOT

SETUP_FAILED = ("run setup (resources, before the first step) failed: pipelines.run_failures.RunConfigError: "
                "invalid run configuration of run ")


def _launch(instance, run_config, tags=None) -> dg.ExecuteInProcessResult:
    register_site(instance, "site_a")
    return defs.resolve_job_def(STUDY_JOB_NAME).execute_in_process(
        run_config=run_config, instance=instance, partition_key="site_a", tags=tags or {}, raise_on_error=False)


def _cases(tmp_path):
    extract = tmp_path / "extract"
    extract.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    database = tmp_path / "published" / "site_a.duckdb"

    def with_warehouse(**settings):
        config = study_run_config(extract, database)
        config["resources"]["warehouse"]["config"].update(settings)
        return config

    return {
        "missing extract": (study_run_config(tmp_path / "missing", database), {},
                            f"resources.extract.config.folder: extract folder {tmp_path / 'missing'} does not exist"),
        "database folder cannot be created": (
            study_run_config(extract, a_file / "site_a.duckdb"), {},
            f"resources.warehouse.config.database_path: {a_file} is a file, so {a_file / 'site_a.duckdb'} cannot "
            "be created"),
        "bad memory limit": (with_warehouse(memory_limit="6 gigs"), {},
                             "resources.warehouse.config.memory_limit: DuckDB does not accept '6 gigs' "
                             "(Parser Error: Unknown unit for memory: 'gigs'"),
        "bad thread count": (with_warehouse(threads=0), {},
                             "resources.warehouse.config.threads: DuckDB does not accept 0 "
                             "(Syntax Error: Must have at least 1 thread!)"),
        "reject share above 1": (
            study_run_config(extract, database, max_reject_share=1.5), {},
            "resources.extract.config.max_reject_share must be a share from 0 to 1, both included (0.01 = 1%; 1 = "
            "never stop the run for rejects), not 1.5"),
        "unknown study": (study_run_config(extract, database), {"legcramp/study": "leg_cramp"},
                          "tag legcramp/study: unknown study 'leg_cramp'; studies: "),
    }


@pytest.mark.parametrize("case", ["missing extract", "database folder cannot be created", "bad memory limit",
                                  "bad thread count", "reject share above 1", "unknown study"])
@pytest.mark.slow
def test_a_bad_configuration_fails_before_the_first_step_naming_the_field(tmp_path, dagster_instance, case):
    run_config, tags, expected = _cases(tmp_path)[case]
    result = _launch(dagster_instance, run_config, tags)

    assert not result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START], "a step started"
    [message] = failure_messages(result)
    assert message.startswith(SETUP_FAILED + result.run_id)
    assert f"\n  - {expected}" in message
    assert not (tmp_path / "published").exists(), "nothing may be written for a run that cannot work"


@pytest.mark.slow
def test_a_good_configuration_passes_the_check_and_the_failure_sensor_reports_a_bad_one(
        tmp_path, dagster_instance, caplog):
    from tests.support.planted_rejects import accepting_fixture_rejects, write_fixture

    extract = write_fixture(tmp_path / "extract")
    database = tmp_path / "published" / "site_a.duckdb"
    config = accepting_fixture_rejects(study_run_config(extract, database))
    config["resources"]["warehouse"]["config"].update(memory_limit="1GB", threads=1)
    assert _launch(dagster_instance, config, {"legcramp/study": "leg_cramps"}).success
    assert database.exists()

    config["resources"]["warehouse"]["config"]["memory_limit"] = "lots"
    failed = _launch(dagster_instance, config)
    summary = run_failure_summary_of(dagster_instance, failed.run_id, caplog)
    assert f"run {failed.run_id} of {STUDY_JOB_NAME} site site_a FAILED" in summary
    assert "\n  " + SETUP_FAILED + failed.run_id in summary
    assert "resources.warehouse.config.memory_limit: DuckDB does not accept 'lots'" in summary


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["missing extract", "invalid study override"])
def test_a_run_that_fails_on_its_configuration_is_not_retried(tmp_path, caplog, problem):
    """dagster.yaml retries runs that died; a configuration that cannot work fails the same way again, so the run
    is not retried and its failure is reported once. Both resources that check the configuration (the warehouse,
    and the studies resource for overrides, which is set up first) say so."""
    from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

    # An instance with the repository's dagster.yaml as its configuration (instance_for_test writes its own
    # dagster.yaml from the overrides).
    settings = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(overrides=settings, temp_dir=str(tmp_path / "home")) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        # The daemon marks dead runs failed instead of resuming them (a run is one process).
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
        if problem == "missing extract":
            config, expected = study_run_config(tmp_path / "missing", tmp_path / "site_a.duckdb"), "does not exist"
        else:
            (tmp_path / "extract").mkdir()
            config = study_run_config(tmp_path / "extract", tmp_path / "site_a.duckdb")
            config["resources"]["studies"] = {"config": {"overrides": {"leg_cramp": {"min_age": 40}}}}
            expected = "unknown study 'leg_cramp'"
        failed = _launch(instance, config)
        assert not failed.success

        # What the daemon decides (it tags the run dagster/will_retry, which the failure summary reads).
        assert not should_retry(instance.get_run_by_id(failed.run_id), instance)
        assert instance.get_run_by_id(failed.run_id).tags["dagster/will_retry"] == "false"
        summary = run_failure_summary_of(instance, failed.run_id, caplog)
        assert expected in summary and "retry" not in summary
        assert [r.run_id for r in instance.get_runs()] == [failed.run_id]
