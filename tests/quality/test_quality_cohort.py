"""Cohort-output checks: a clean build passes, each planted violation is caught with its exact count."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from pipelines.cohorts import build_study, load_studies
from pipelines.cohorts.settings import StudySettings
from pipelines.quality import suites
from pipelines.quality.runner import run_suite


@pytest.fixture(scope="module")
def cohort_database(tmp_path_factory, study_database):
    database = tmp_path_factory.mktemp("cohort_quality") / "clean.duckdb"
    shutil.copy(study_database(1_500, 21), database)  # ingested, phenotyped, every study's cohort built
    return database


def failing(database, study="leg_cramps", override=None) -> dict[str, int]:
    """The failed checks of the study's suite, built from the study file with `override` merged over it."""
    resolved = StudySettings(overrides={study: override} if override else {}).resolve(load_studies()[study])
    result = run_suite(database, suites.build_cohort_suite(resolved), run_id="test", build_data_docs=False)
    assert all(r.error is None for r in result.results), [r.error for r in result.results]
    return {r.name: r.unexpected_count for r in result.results if not r.passed}


def test_no_cohort_suite_is_stored():
    # Built for each run from the study it resolves: nothing to regenerate when a study is added or changed.
    assert not (suites.EXPECTATIONS_DIR / suites.COHORT_LAYER).exists()


def test_the_study_period_checked_is_the_one_the_run_used(cohort_database, tmp_path):
    later_end = {"study_period": {"start": "2022-07-01", "end": "2023-06-30"}}
    extended = tmp_path / "extended.duckdb"
    shutil.copy(cohort_database, extended)
    con = duckdb.connect(str(extended))
    build_study(con, StudySettings(overrides={"leg_cramps": later_end}).resolve(load_studies()["leg_cramps"]))
    in_2023 = con.execute("SELECT count(*) FROM cohort.study_population WHERE study_id = 'leg_cramps' "
                          "AND index_date > DATE '2022-12-31'").fetchone()[0]
    con.close()
    assert in_2023 > 10, "the extract must have index dates after the file's study end"
    assert failing(extended, override=later_end) == {}
    # Judged against the file's period instead, exactly the persons indexed after 2022-12-31 fail.
    assert failing(extended) == {"index_inside_study_period": in_2023}


def test_clean_cohorts_pass_every_check(cohort_database):
    assert failing(cohort_database) == {}
    assert failing(cohort_database, "thiazide_vs_ccb") == {}


def test_planted_cohort_violations_are_caught_exactly(cohort_database, tmp_path):
    broken = tmp_path / "broken.duckdb"
    shutil.copy(cohort_database, broken)
    con = duckdb.connect(str(broken))
    persons = [r[0] for r in con.execute(
        "SELECT person_id FROM cohort.study_population WHERE study_id = 'leg_cramps' ORDER BY person_id LIMIT 5"
    ).fetchall()]
    # two persons twice, one index before the study, one negative follow-up, attrition that grows at step 1 (whose
    # counts, unlike some later small ones, are not suppressed)
    con.execute("INSERT INTO cohort.study_population SELECT * FROM cohort.study_population "
                "WHERE study_id = 'leg_cramps' AND person_id IN (?, ?)", persons[:2])
    con.execute("UPDATE cohort.study_population SET index_date = DATE '2010-06-01' "
                "WHERE study_id = 'leg_cramps' AND person_id = ?", [persons[2]])
    con.execute("UPDATE cohort.study_population SET followup_days = -3 "
                "WHERE study_id = 'leg_cramps' AND person_id = ?", [persons[3]])
    con.execute("UPDATE results.attrition SET persons_after = persons_before + 1 "
                "WHERE study_id = 'leg_cramps' AND step_order = 1")
    con.close()
    found = failing(broken)
    assert found["one_row_per_person"] == 2
    assert found["index_inside_study_period"] == 1
    assert found["followup_not_negative"] >= 1
    assert found["attrition_monotonic"] == 2  # step 1 grows, and step 2 no longer starts where step 1 ended
    assert "outcome_inside_time_at_risk" not in found
    assert failing(broken, "thiazide_vs_ccb") == {}
