"""A record whose end date is before its start date is loaded (the data-quality check <end>_not_before_start counts
it) but no phenotype counts it: not as a confirming diagnosis, not as the inpatient visit of a diagnosis, not as a
drug fill (sql/record_spans.sql; docs/data_quality.md, "Records that end before they start")."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from pipelines.phenotypes import run_phenotypes
from tests.support.hand_cohort import HandExtract

DIABETES = "diabetes_mellitus"  # one inpatient record, or two others at least 30 days apart
THIAZIDES = "thiazide_diuretics"  # ATC C03AA: any fill


@pytest.fixture(scope="module")
def phenotyped() -> duckdb.DuckDBPyConnection:
    extract = HandExtract()
    # Two diabetes records 59 days apart: the second, which would confirm the rule, ends before it starts.
    extract.person("only_reversed_confirms").condition("only_reversed_confirms", "E11.9", "2018-01-01") \
        .condition("only_reversed_confirms", "E11.9", "2018-03-01", end="2018-02-20")
    # The same, and a third plausible record later: that one confirms, on its own date.
    extract.person("later_record_confirms").condition("later_record_confirms", "E11.9", "2018-01-01") \
        .condition("later_record_confirms", "E11.9", "2018-03-01", end="2018-02-20") \
        .condition("later_record_confirms", "E11.9", "2019-06-01")
    # The control: the second record ends on its start day (plausible) and confirms.
    extract.person("plausible_confirms").condition("plausible_confirms", "E11.9", "2018-01-01") \
        .condition("plausible_confirms", "E11.9", "2018-03-01", end="2018-03-01")
    # One record in an inpatient visit that ends before it starts: not an inpatient record, so one record only.
    extract.person("reversed_inpatient_visit").visit("reversed_inpatient_visit", "2018-05-10", end="2018-05-02",
                                                     visit_type="inpatient", visit_id="VIP_REVERSED") \
        .condition("reversed_inpatient_visit", "E11.9", "2018-05-10", visit_id="VIP_REVERSED")
    # The control: a plausible inpatient visit confirms with one record.
    extract.person("plausible_inpatient_visit").visit("plausible_inpatient_visit", "2018-05-10", end="2018-05-12",
                                                      visit_type="inpatient", visit_id="VIP_PLAUSIBLE") \
        .condition("plausible_inpatient_visit", "E11.9", "2018-05-10", visit_id="VIP_PLAUSIBLE")
    # Thiazide fills: one that ends before it starts (no event), then a plausible one.
    extract.person("reversed_fill_first").fill("reversed_fill_first", THIAZIDES, "2017-01-10", "2017-01-01",
                                               code="C03AA03") \
        .fill("reversed_fill_first", THIAZIDES, "2017-04-01", "2017-04-30", code="C03AA03")
    extract.person("only_reversed_fill").fill("only_reversed_fill", THIAZIDES, "2017-01-10", "2017-01-09",
                                              code="C03AA03")
    con = extract.connect()
    run_phenotypes(con)
    yield con
    con.close()


def summary(con: duckdb.DuckDBPyConnection, phenotype_id: str) -> dict[str, tuple[date, int]]:
    return {person: (first_date, count) for person, first_date, count in con.execute(
        "SELECT person_id, first_date, event_count FROM phenotype.person_summary WHERE phenotype_id = ?",
        [phenotype_id]).fetchall()}


def test_a_record_that_ends_before_it_starts_does_not_confirm_a_two_record_rule(phenotyped):
    found = summary(phenotyped, DIABETES)
    assert "only_reversed_confirms" not in found
    # Confirmed by the later plausible record, not by the reversed one on 2018-03-01; two records counted.
    assert found["later_record_confirms"] == (date(2019, 6, 1), 2)
    assert found["plausible_confirms"] == (date(2018, 3, 1), 2)


def test_a_visit_that_ends_before_it_starts_does_not_make_its_diagnoses_inpatient(phenotyped):
    found = summary(phenotyped, DIABETES)
    assert "reversed_inpatient_visit" not in found
    assert found["plausible_inpatient_visit"] == (date(2018, 5, 10), 1)


def test_a_fill_that_ends_before_it_starts_is_no_drug_event(phenotyped):
    found = summary(phenotyped, THIAZIDES)
    assert found == {"reversed_fill_first": (date(2017, 4, 1), 1)}
    assert phenotyped.execute("SELECT count(*) FROM phenotype.events WHERE event_end_date < event_date"
                              ).fetchone()[0] == 0


def test_the_reversed_records_stay_loaded(phenotyped):
    """Not counted is not deleted: staging keeps them, for the data-quality checks to report."""
    reversed_rows = phenotyped.execute("""
        SELECT (SELECT count(*) FROM staging.condition_occurrence WHERE condition_end_date < condition_start_date),
               (SELECT count(*) FROM staging.visit_occurrence WHERE visit_end_date < visit_start_date),
               (SELECT count(*) FROM staging.drug_exposure WHERE drug_exposure_end_date < drug_exposure_start_date)
    """).fetchone()
    assert reversed_rows == (2, 1, 2)
