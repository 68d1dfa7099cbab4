"""A date-shifted extract (observation 2110-2150, as the MIMIC-IV demo's) and a study period in 2015-2022: the
cohort build itself warns, naming the extract's observation range beside the study period and the override that
would run the study over it; an extract observed inside the period gets no such warning."""

from __future__ import annotations

from pipelines.cohorts.build import build_study
from tests.support.hand_cohort import HandExtract, make_study


def _extract(observation: tuple[str, str], visit: str) -> HandExtract:
    extract = HandExtract()
    for number in range(3):
        extract.person(f"p{number}", observation=[observation], visits=[visit])
    return extract


def test_the_build_warns_when_no_observation_overlaps_the_study_period():
    con = _extract(("2110-03-01", "2150-06-30"), "2120-05-01").connect()
    build = build_study(con, make_study())
    assert build.cohort_size == 0
    [warning] = [w for w in build.warnings if "study period" in w]
    assert "(2015-01-01 to 2022-12-31): the extract observes 2110-03-01 to 2150-06-30" in warning
    assert "all 3 persons leave" in warning
    assert '{"test_study": {"study_period": {"start": "2110-03-01", "end": "2150-06-30"}}}' in warning


def test_no_study_period_warning_when_the_extract_is_observed_inside_it():
    con = _extract(("2010-01-01", "2022-12-31"), "2018-05-01").connect()
    build = build_study(con, make_study())
    assert build.cohort_size == 3
    assert not [w for w in build.warnings if "study period" in w]


def test_the_extract_range_in_the_warning_ignores_periods_that_end_before_they_start():
    """A reversed observation period (end before start) is no observation time (sql/record_spans.sql; the
    data-quality check observation_period_end_date_not_before_start reports it): its dates are no part of the
    range the warning names."""
    extract = _extract(("2110-03-01", "2150-06-30"), "2120-05-01")
    extract.person("p_reversed", observation=[("2016-01-01", "2015-06-01")], visits=[])  # inside the study period
    build = build_study(extract.connect(), make_study())
    [warning] = [w for w in build.warnings if "study period" in w]
    assert "the extract observes 2110-03-01 to 2150-06-30" in warning
