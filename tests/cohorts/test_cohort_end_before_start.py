"""Visits and observation periods that end before they start count for no cohort (sql/record_spans.sql): a reversed
visit is no index visit, a reversed observation period is no observation time."""

from __future__ import annotations

from datetime import date

from pipelines.cohorts import build_study
from tests.support.hand_cohort import HandExtract, make_study, population


def test_a_visit_that_ends_before_it_starts_is_no_index_visit():
    extract = (HandExtract()
               .person("reversed_first_visit").visit("reversed_first_visit", "2016-03-01", end="2016-02-25")
               .visit("reversed_first_visit", "2016-09-01")
               .person("only_reversed_visit").visit("only_reversed_visit", "2016-03-01", end="2016-02-28")
               .person("plausible_first_visit").visit("plausible_first_visit", "2016-03-01", end="2016-03-01")
               .visit("plausible_first_visit", "2016-09-01"))
    con = extract.connect()
    build_study(con, make_study())
    rows = population(con)
    assert {person: row["index_date"] for person, row in rows.items()} == {
        "reversed_first_visit": date(2016, 9, 1), "plausible_first_visit": date(2016, 3, 1)}
    removed = dict(con.execute("SELECT step_code, persons_removed FROM results.attrition "
                               "WHERE study_id = 'test_study' AND persons_removed > 0").fetchall())
    assert removed == {"no_visit_in_study_period": 1}


def test_an_observation_period_that_ends_before_it_starts_is_no_observation_time():
    # The only period lies in the study period but ends before it starts: the person is not observed in the study
    # period at all (counted, it would pass that step and leave at the next, with no visit inside the period).
    extract = HandExtract().person("p", observation=[("2016-06-01", "2016-01-01")], visits=["2016-03-01"])
    con = extract.connect()
    build_study(con, make_study())
    assert population(con) == {}
    removed = dict(con.execute("SELECT step_code, persons_removed FROM results.attrition "
                               "WHERE study_id = 'test_study' AND persons_removed > 0").fetchall())
    assert removed == {"no_observation_in_study_period": 1}
