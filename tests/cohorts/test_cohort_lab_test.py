"""Index rule lab_test: a laboratory finding compared with tested persons whose result was normal, time zero at the
test. Hand-built staging tables, the real phenotype stage, then the cohort SQL."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from pipelines import extract_spec as spec
from pipelines.cohorts import build_study
from pipelines.cohorts.study import StudyDefinition, StudyDefinitionError, load_study
from pipelines.ingest.loader import create_empty_staging_table
from pipelines.phenotypes.compiler import run_phenotypes

D = date.fromisoformat
MAGNESIUM_MG_DL = "19123-9"  # hypomagnesemia_lab: low means < 1.70 mg/dL, plausible 0.1-5 mmol/L

STUDY = {
    "id": "low_magnesium_test",
    "title": "test",
    "study_period": {"start": "2015-01-01", "end": "2022-12-31"},
    "prior_observation_days": 365,
    "index": {"rule": "lab_test", "finding": "hypomagnesemia_lab", "comparator": "tested_normal"},
    "outcome": {"phenotype": "leg_cramps"},
    "time_at_risk": {"censor_unexposed_at_exposure_start": True},
    "small_cell_threshold": 1,
}


@pytest.fixture(scope="module")
def built() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    for table in spec.TABLES:
        create_empty_staging_table(con, table)
    persons = ["low", "normal", "untested", "implausible_only", "normal_then_low", "early", "low_and_normal_same_day"]
    con.executemany("INSERT INTO staging.person (person_id, year_of_birth, sex) VALUES (?, 1960, 'F')",
                    [[p] for p in persons])
    con.executemany("INSERT INTO staging.observation_period VALUES (?, ?, '2010-01-01', '2022-12-31')",
                    [[f"OP{k}", p] for k, p in enumerate(persons)])
    measurements = [
        ("low", "2014-03-01", 1.5),           # before the study period: not the index test
        ("low", "2016-05-10", 1.5),           # index, low
        ("normal", "2017-02-01", 2.0),        # index, normal
        ("implausible_only", "2017-02-01", 50.0),  # 50 mg/dL > 5 mmol/L: not a test
        ("normal_then_low", "2016-01-01", 2.1),    # index, normal ...
        ("normal_then_low", "2018-07-01", 1.2),    # ... low later: the comparator is censored the day before
        ("early", "2010-06-01", 1.0),         # no test in the study period
        ("low_and_normal_same_day", "2019-09-09", 2.2),
        ("low_and_normal_same_day", "2019-09-09", 1.6),
    ]
    con.executemany(f"INSERT INTO staging.measurement (measurement_id, person_id, measurement_vocabulary, "
                    f"measurement_code, measurement_date, value_as_number, unit) "
                    f"VALUES (?, ?, 'LOINC', '{MAGNESIUM_MG_DL}', ?, ?, 'mg/dL')",
                    [[f"M{k}", p, D(day), value] for k, (p, day, value) in enumerate(measurements)])
    con.execute("INSERT INTO staging.condition_occurrence (condition_occurrence_id, person_id, condition_vocabulary, "
                "condition_code, condition_start_date) VALUES ('C1', 'normal', 'ICD10CM', 'R25.2', '2018-01-01')")
    run_phenotypes(con)
    build_study(con, StudyDefinition.model_validate(STUDY))
    return con


def test_only_tested_persons_are_compared_from_their_first_test(built):
    rows = built.execute(
        "SELECT person_id, index_date, hypomagnesemia_lab, hypomagnesemia_lab_first_date, outcome_date "
        "FROM cohort.study_population WHERE study_id = 'low_magnesium_test' ORDER BY person_id").fetchall()
    assert rows == [
        ("low", D("2016-05-10"), True, D("2016-05-10"), None),  # the 2014 low value is not the index test
        ("low_and_normal_same_day", D("2019-09-09"), True, D("2019-09-09"), None),
        ("normal", D("2017-02-01"), False, None, D("2018-01-01")),
        ("normal_then_low", D("2016-01-01"), False, D("2018-07-01"), None),
    ]


def test_untested_persons_leave_with_a_reason_in_attrition(built):
    removed = dict(built.execute("SELECT step_code, persons_removed FROM results.attrition "
                                 "WHERE study_id = 'low_magnesium_test'").fetchall())
    # untested, implausible_only (its only value is implausible) and early (tested before the study period only)
    assert removed["no_test_in_study_period"] == 3
    assert removed["insufficient_prior_observation"] == 0


def test_the_finding_is_the_only_exposure_judged_on_the_index_day():
    study = StudyDefinition.model_validate(STUDY)
    assert [(v.variable, v.role, v.window.kind, v.window.days) for v in study.variables] == [
        ("hypomagnesemia_lab", "exposure", "lookback_days", 0)]


def test_a_lab_test_study_lists_no_exposures_and_needs_a_measurement_finding(tmp_path):
    path = tmp_path / "low_magnesium_test.yaml"
    import yaml
    path.write_text(yaml.safe_dump({**STUDY, "exposures": ["statins"]}))
    with pytest.raises(StudyDefinitionError, match="leave exposures out"):
        load_study(path)
    path.write_text(yaml.safe_dump({**STUDY, "index": {"rule": "lab_test", "finding": "diabetes_mellitus"}}))
    with pytest.raises(StudyDefinitionError, match="finding must be a measurement phenotype"):
        load_study(path)


def test_a_lab_test_finding_is_judged_by_single_values(tmp_path):
    """An ABI finding (rule lowest_value: the lowest reading so far over both legs and all dates) cannot be the
    finding of a lab_test study: it is judged on readings before the index test too (before the study period
    included), and "tested_normal" would hold borderline and noncompressible (> 1.40) values, which are not normal."""
    import yaml
    path = tmp_path / "low_magnesium_test.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "index": {"rule": "lab_test", "finding": "abi_low"}}))
    with pytest.raises(StudyDefinitionError, match="abi_low.*lowest_value.*min_records"):
        load_study(path)
