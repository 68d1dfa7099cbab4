"""Age in completed years has one rule (sql/ages.sql) and two users: the cohorts' age at index
(sql/cohorts/eligibility.sql) and the Garrison design's age at the drug start (sql/statistics/garrison_first_dates.sql).
Hand-computed ages around a 29 February birthday go through both, so neither can drift from the other or from
DuckDB's date_sub('year', ...), which counts a 29 February birthday on 28 February in years without one."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.cohorts import build_study
from pipelines.statistics.sequence_symmetry import garrison_first_dates
from tests.support.hand_cohort import HandExtract, make_study, population
from tests.support.hand_omop import first_dates_warehouse

# person: (birth_date, date the age is taken on, completed years counted by hand)
CASES = {
    "leap_day_before_2015": ("1980-02-29", "2015-02-27", 34),
    "leap_birthday_2015": ("1980-02-29", "2015-02-28", 35),   # no 29 February in 2015: the birthday is the 28th
    "leap_day_after_2015": ("1980-02-29", "2015-03-01", 35),
    "leap_day_before_2016": ("1980-02-29", "2016-02-28", 35),  # 2016 has a 29 February: not yet 36
    "leap_birthday_2016": ("1980-02-29", "2016-02-29", 36),
    "leap_day_after_2016": ("1980-02-29", "2016-03-01", 36),
    "day_before_birthday": ("1960-06-15", "2016-06-14", 55),
    "birthday": ("1960-06-15", "2016-06-15", 56),
}


def test_the_hand_computed_ages_are_duckdbs_date_sub():
    con = duckdb.connect()
    for birth, on, age in CASES.values():
        assert con.execute("SELECT date_sub('year', ?::DATE, ?::DATE)", [birth, on]).fetchone()[0] == age


def test_eligibility_counts_age_at_index_by_the_rule():
    extract = HandExtract()
    for pid, (birth, on, _) in CASES.items():
        extract.person(pid, year_of_birth=int(birth[:4]), birth_date=birth, visits=[on])
    con = extract.connect()
    build_study(con, make_study(small_cell_threshold=1))
    found = {pid: row["age_at_index"] for pid, row in population(con).items()}
    assert {pid: row["index_date"].isoformat() for pid, row in population(con).items()} == {
        pid: on for pid, (_, on, _) in CASES.items()}
    assert found == {pid: age for pid, (_, _, age) in CASES.items()}


def test_garrison_counts_age_at_the_drug_start_by_the_rule():
    con = first_dates_warehouse(
        persons=[(pid, int(birth[:4]), birth) for pid, (birth, _, _) in CASES.items()],
        observation_periods=[(pid, "2010-01-01", "2020-12-31") for pid in CASES],
        first_dates=[(pid, "statins", on) for pid, (_, on, _) in CASES.items()])
    first = garrison_first_dates(con, ["statins"])
    assert dict(zip(first["person_id"], first["age"])) == {pid: age for pid, (_, _, age) in CASES.items()}


@pytest.mark.parametrize("user", ["eligibility", "garrison"])
def test_without_a_birth_date_age_is_the_difference_of_years(user):
    """Extracts with only a year of birth: year(date) - year_of_birth, by both users."""
    if user == "eligibility":
        extract = HandExtract()
        extract.person("Y", year_of_birth=1960, visits=["2016-01-05"])
        con = extract.connect()
        build_study(con, make_study(small_cell_threshold=1))
        assert population(con)["Y"]["age_at_index"] == 56
    else:
        con = first_dates_warehouse(persons=[("Y", 1960, None)],
                                    observation_periods=[("Y", "2010-01-01", "2020-12-31")],
                                    first_dates=[("Y", "statins", "2016-01-05")])
        assert garrison_first_dates(con, ["statins"])["age"].tolist() == [56]
