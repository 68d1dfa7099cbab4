"""Study parameters overridden from the run config (`resources.studies.config.overrides`), in real Dagster runs of
the study job: a valid override changes what the run builds, exactly; an invalid one fails the run while its
resources are set up, before any step, naming the field; `config_problems` (schedules, sensor) says the same."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.cohorts.build import build_study
from pipelines.cohorts.study import load_studies
from pipelines.definitions import defs
from pipelines.jobs import STUDY_JOB_NAME
from pipelines.network.sites import register_site
from pipelines.operations.run_config import config_problems, study_run_config
from pipelines.quality.checks import COHORT_CHECK_NAME
from pipelines.run import failure_messages
from tests.support.paths import REPO_ROOT

SITE = "site_a"
OVERRIDES_PATH = "resources.studies.config.overrides"
SETUP_FAILED = ("run setup (resources, before the first step) failed: pipelines.run_failures.RunConfigError: "
                "invalid run configuration of run ")


def _config_with_overrides(extract: Path, database: Path, overrides: dict) -> dict:
    config = study_run_config(extract, database)
    config["resources"]["studies"] = {"config": {"overrides": overrides}}
    return config


def _launch(instance, run_config) -> dg.ExecuteInProcessResult:
    register_site(instance, SITE)
    return defs.resolve_job_def(STUDY_JOB_NAME).execute_in_process(
        run_config=run_config, instance=instance, partition_key=SITE, raise_on_error=False)


# ---------------------------------------------------------------------------------------------------------------
# A valid override changes what the run builds
# ---------------------------------------------------------------------------------------------------------------

# Age is checked after the index date is chosen, so raising the minimum age must give exactly the persons of the
# file's study population who are 65 or older at index. The period override names only `start`: the file's end must
# survive the merge.
AGE_OVERRIDE = {"age_at_index": {"min": 65}}
PERIOD_START = "2018-01-01"


@pytest.fixture(scope="module")
def overridden_run(tmp_path_factory, generated_extract):
    """One study-job run on a generated extract with both overrides; its result, published database and folder."""
    folder = tmp_path_factory.mktemp("overrides")
    extract = generated_extract(400, 7).path
    database = folder / "published" / f"{SITE}.duckdb"
    home = folder / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = _launch(instance, _config_with_overrides(extract, database, {
            "leg_cramps": AGE_OVERRIDE, "thiazide_vs_ccb": {"study_period": {"start": PERIOD_START}}}))
        yield result, database, folder


def _cohort_metadata(result: dg.ExecuteInProcessResult, study_id: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["cohort", study_id]]
    return event.materialization.metadata


@pytest.mark.slow
def test_an_age_override_builds_exactly_the_older_part_of_the_file_population(overridden_run):
    result, database, folder = overridden_run
    assert result.success, failure_messages(result)

    # The study as the file defines it, built independently of Dagster on a copy of the published database (which
    # holds the run's staging and phenotype tables), then restricted by SQL to ages 65 and over.
    file_build = folder / "file_study.duckdb"
    shutil.copy(database, file_build)
    con = duckdb.connect(str(file_build))
    build_study(con, load_studies()["leg_cramps"])
    population = "SELECT person_id FROM cohort.study_population WHERE study_id = 'leg_cramps'"
    file_persons = {r[0] for r in con.execute(population).fetchall()}
    expected = {r[0] for r in con.execute(population + " AND age_at_index >= 65").fetchall()}
    con.close()

    con = duckdb.connect(str(database), read_only=True)
    published = {r[0] for r in con.execute(population).fetchall()}
    [attrition_final] = con.execute("SELECT persons_after FROM results.attrition WHERE study_id = 'leg_cramps' "
                                    "ORDER BY step_order DESC LIMIT 1").fetchone()
    con.close()

    assert 11 <= len(expected) < len(file_persons), "the extract must have persons on both sides of age 65"
    assert published == expected
    metadata = _cohort_metadata(result, "leg_cramps")
    assert metadata["cohort_size"].value == len(expected) == attrition_final
    assert metadata["study_overrides"].value == {"age_at_index": {"min": 65, "max": None}}
    assert "age 65 or older at index" in metadata["attrition"].value


@pytest.mark.slow
def test_a_partial_study_period_override_keeps_the_file_end(overridden_run):
    result, database, _ = overridden_run
    assert result.success, failure_messages(result)
    file_end = load_studies()["thiazide_vs_ccb"].study_period.end

    assert _cohort_metadata(result, "thiazide_vs_ccb")["study_overrides"].value == {
        "study_period": {"start": PERIOD_START, "end": file_end.isoformat()}}
    con = duckdb.connect(str(database), read_only=True)
    earliest, latest = con.execute("SELECT min(index_date), max(index_date) FROM cohort.study_population "
                                   "WHERE study_id = 'thiazide_vs_ccb'").fetchone()
    con.close()
    assert date.fromisoformat(PERIOD_START) <= earliest <= latest <= file_end


# The cohort checks judge the study the run used: a study period reaching past the file's end (2022-12-31) publishes.
# The start moves too, so that a small extract has index dates after the file's end.
LATER_PERIOD = {"study_period": {"start": "2022-07-01", "end": "2023-06-30"}}


@pytest.mark.slow
def test_a_study_period_override_past_the_file_end_publishes(tmp_path_factory, generated_extract):
    folder = tmp_path_factory.mktemp("later_period")
    extract = generated_extract(400, 7).path
    database = folder / "published" / f"{SITE}.duckdb"
    home = folder / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = _launch(instance, _config_with_overrides(extract, database, {"leg_cramps": LATER_PERIOD}))
    assert result.success, failure_messages(result)
    [cohort_check] = [e.asset_check_evaluation_data for e in result.all_events
                      if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
                      and e.asset_check_evaluation_data.check_name == COHORT_CHECK_NAME
                      and e.asset_check_evaluation_data.asset_key.path == ["cohort", "leg_cramps"]]
    assert cohort_check.passed
    [period_check] = [c for c in cohort_check.metadata["sub_checks"].value
                      if c["name"] == "index_inside_study_period"]
    assert period_check["passed"] and period_check["unexpected_count"] == 0
    assert "index_inside_study_period (fatal): Index dates lie inside the study period of the run (2022-07-01 to " \
           "2023-06-30)" in cohort_check.description
    con = duckdb.connect(str(database), read_only=True)
    earliest, latest, after_file_end = con.execute(
        "SELECT min(index_date), max(index_date), count(*) FILTER (WHERE index_date > DATE '2022-12-31') "
        "FROM cohort.study_population WHERE study_id = 'leg_cramps'").fetchone()
    con.close()
    assert date(2022, 7, 1) <= earliest and latest <= date(2023, 6, 30)
    assert after_file_end > 0


# ---------------------------------------------------------------------------------------------------------------
# An invalid override fails the run before any step, and config_problems says the same
# ---------------------------------------------------------------------------------------------------------------

INVALID = {
    "wrong type": ({"leg_cramps": {"prior_observation_days": "a year"}},
                   f"{OVERRIDES_PATH}.leg_cramps.prior_observation_days: Input should be a valid integer, unable to "
                   "parse string as an integer"),
    "end before start": ({"leg_cramps": {"study_period": {"end": "2014-12-31"}}},
                         f"{OVERRIDES_PATH}.leg_cramps.study_period: start (2015-01-01) is after end (2014-12-31)"),
    "unknown field": ({"leg_cramps": {"prior_observation": 730}},
                      f"{OVERRIDES_PATH}.leg_cramps.prior_observation: unknown field (check the spelling; "
                      "docs/studies.md lists the fields)"),
    "unknown study": ({"leg_cramp": {"prior_observation_days": 730}},
                      f"{OVERRIDES_PATH}.leg_cramp: unknown study 'leg_cramp'; studies: leg_cramps, "
                      "low_magnesium_tested, low_potassium_tested, low_sodium_tested, thiazide_vs_ccb"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(INVALID))
def test_an_invalid_override_fails_the_run_before_the_first_step_naming_the_field(tmp_path, dagster_instance, case):
    overrides, expected = INVALID[case]
    extract = tmp_path / "extract"
    extract.mkdir()
    result = _launch(dagster_instance, _config_with_overrides(extract, tmp_path / "published" / "a.duckdb", overrides))

    assert not result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START], "a step started"
    [message] = failure_messages(result)
    assert message == f"{SETUP_FAILED}{result.run_id}:\n  - {expected}"
    assert not (tmp_path / "published").exists()


@pytest.mark.parametrize("case", list(INVALID))
def test_config_problems_reports_an_invalid_override(tmp_path, case):
    overrides, expected = INVALID[case]
    extract = tmp_path / "extract"
    extract.mkdir()
    assert config_problems(_config_with_overrides(extract, tmp_path / "a.duckdb", overrides)) == [expected]
    assert config_problems(_config_with_overrides(extract, tmp_path / "a.duckdb", {"leg_cramps": AGE_OVERRIDE})) == []
