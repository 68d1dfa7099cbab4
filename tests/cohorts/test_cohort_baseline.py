"""Baseline status uses only data up to the index date, through the real phenotype stage and the cohort SQL.

Tiny hand-built extracts (staging rows), the library's phenotype rules (run_phenotypes), then one study whose index
is each person's first outpatient visit on 2019-06-01. Every expected value below is worked out by hand:

- a rule-based phenotype (one inpatient or two outpatient codes 30+ days apart) whose confirming code comes after
  index is absent at index, even though its first code is before index;
- an ABI judged on the values up to index: low before and normal after index is low at index; normal before and
  low after is normal at index (and becomes low only later); borderline before and low after is borderline.
"""

from __future__ import annotations

import itertools
from datetime import date

import duckdb
import pytest

from pipelines.cohorts import build_study
from pipelines.cohorts.study import StudyDefinition
from pipelines.phenotypes import run_phenotypes
from tests.support.phenotype_staging import create_staging_tables, insert_rows

INDEX = "2019-06-01"
BEFORE, AFTER = "2019-03-01", "2020-02-01"
_ids = itertools.count(1)

STUDY = StudyDefinition.model_validate({
    "id": "baseline_test",
    "title": "baseline without look-ahead",
    "study_period": {"start": "2019-01-01", "end": "2019-12-31"},
    "prior_observation_days": 365,
    "index": {"rule": "first_visit", "visit_types": ["outpatient"]},
    "outcome": {"phenotype": "leg_cramps"},
    "exposures": ["diabetes_mellitus", "peripheral_arterial_disease", "abi_low", "abi_borderline", "abi_normal"],
    "small_cell_threshold": 1,
})

PERSONS = {
    # first code before index, the confirming code (30+ days later) after index
    "dm_confirmed_after_index": [("E11.9", "2019-05-01"), ("E11.9", "2019-07-15")],
    # both codes before index: confirmed at 2019-04-10, present at index
    "dm_confirmed_before_index": [("E11.9", "2019-03-01"), ("E11.9", "2019-04-10")],
    # as in the 100k example: I73.9 two months before index, its confirming record long after
    "pad_confirmed_after_index": [("I73.9", "2019-04-02"), ("I73.9", "2020-03-23")],
}
# person -> [(day, left ABI, right ABI)]
ABI = {
    "abi_low_then_normal": [(BEFORE, 0.85, 1.05), (AFTER, 1.10, 1.08)],
    "abi_normal_then_low": [(BEFORE, 1.10, 1.05), (AFTER, 0.80, 1.02)],
    "abi_borderline_then_low": [(BEFORE, 0.95, 1.02), (AFTER, 0.70, 0.98)],
    "abi_only_after_index": [(AFTER, 0.60, 0.90)],
}


@pytest.fixture(scope="module")
def at_index() -> dict[tuple[str, str], tuple[bool, date]]:
    con = duckdb.connect()
    create_staging_tables(con)
    persons = sorted({*PERSONS, *ABI})
    insert_rows(con, "person", [{"person_id": p, "year_of_birth": 1950, "sex": "F"} for p in persons])
    insert_rows(con, "observation_period", [
        {"observation_period_id": f"op_{p}", "person_id": p, "observation_period_start_date": "2010-01-01",
         "observation_period_end_date": "2022-12-31"} for p in persons])
    insert_rows(con, "visit_occurrence", [
        {"visit_occurrence_id": f"v_{p}", "person_id": p, "visit_type": "outpatient", "visit_start_date": INDEX}
        for p in persons])
    insert_rows(con, "condition_occurrence", [
        {"condition_occurrence_id": f"c{next(_ids)}", "person_id": p, "condition_vocabulary": "ICD10CM",
         "condition_code": code, "condition_start_date": day}
        for p, codes in PERSONS.items() for code, day in codes])
    insert_rows(con, "measurement", [
        {"measurement_id": f"m{next(_ids)}", "person_id": p, "measurement_vocabulary": "SNOMED",
         "measurement_code": "446841001", "measurement_date": day, "value_as_number": value, "unit": "ratio",
         "laterality": side}
        for p, readings in ABI.items() for day, left, right in readings for side, value in (("L", left), ("R", right))])
    run_phenotypes(con)
    build_study(con, STUDY)
    rows = con.execute("SELECT person_id, variable, at_index, first_date FROM cohort.person_variables "
                       "WHERE study_id = 'baseline_test'").fetchall()
    assert con.execute("SELECT count(*) FROM cohort.study_population WHERE study_id = 'baseline_test'"
                       ).fetchone()[0] == len(persons)
    con.close()
    return {(person, variable): (flag, first) for person, variable, flag, first in rows}


def present(at_index, person: str) -> set[str]:
    return {variable for (p, variable), (flag, _) in at_index.items() if p == person and flag}


def test_a_phenotype_confirmed_after_index_is_absent_at_index(at_index):
    assert present(at_index, "dm_confirmed_after_index") == set()
    # Dated at the confirming code: the statistics stage sees the person start having it then.
    assert at_index[("dm_confirmed_after_index", "diabetes_mellitus")] == (False, date(2019, 7, 15))
    assert present(at_index, "pad_confirmed_after_index") == set()
    assert at_index[("pad_confirmed_after_index", "peripheral_arterial_disease")] == (False, date(2020, 3, 23))


def test_a_phenotype_confirmed_before_index_is_present_from_its_confirming_code(at_index):
    assert present(at_index, "dm_confirmed_before_index") == {"diabetes_mellitus"}
    assert at_index[("dm_confirmed_before_index", "diabetes_mellitus")] == (True, date(2019, 4, 10))


def test_abi_low_before_index_and_normal_after_is_low_at_index(at_index):
    assert present(at_index, "abi_low_then_normal") == {"abi_low"}


def test_abi_normal_before_index_and_low_after_is_normal_at_index(at_index):
    assert present(at_index, "abi_normal_then_low") == {"abi_normal"}
    assert at_index[("abi_normal_then_low", "abi_low")] == (False, date(2020, 2, 1))


def test_abi_borderline_before_index_and_low_after_is_borderline_at_index(at_index):
    assert present(at_index, "abi_borderline_then_low") == {"abi_borderline"}
    assert at_index[("abi_borderline_then_low", "abi_low")] == (False, date(2020, 2, 1))


def test_abi_measured_only_after_index_is_nothing_at_index(at_index):
    assert present(at_index, "abi_only_after_index") == set()
