"""Cohort-output checks: a clean build passes, each planted violation is caught with its exact count."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from pipelines.cohorts import build_all_studies
from pipelines.ingest.loader import load_extract
from pipelines.phenotypes import run_phenotypes
from pipelines.quality import suites
from pipelines.quality.runner import run_suite
from pipelines.synthetic import generate_extract


@pytest.fixture(scope="module")
def cohort_database(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort_quality")
    generate_extract(folder / "extract", patients=1_500, seed=21, progress=False)
    database = folder / "clean.duckdb"
    con = duckdb.connect(str(database))
    load_extract(con, folder / "extract")
    run_phenotypes(con)
    build_all_studies(con)
    con.close()
    return database


def failing(database, suite="cohort.leg_cramps") -> dict[str, int]:
    result = run_suite(database, suite, run_id="test", build_data_docs=False)
    assert all(r.error is None for r in result.results), [r.error for r in result.results]
    return {r.name: r.unexpected_count for r in result.results if not r.passed}


def test_cohort_suites_are_up_to_date():
    for suite in suites.cohort_suites():
        assert suites.suite_path(suite["name"]).read_text() == suites.suite_json_text(suite), \
            "run `python -m pipelines.quality.suites`"


def test_clean_cohorts_pass_every_check(cohort_database):
    assert failing(cohort_database) == {}
    assert failing(cohort_database, "cohort.thiazide_vs_ccb") == {}


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
    assert failing(broken, "cohort.thiazide_vs_ccb") == {}
