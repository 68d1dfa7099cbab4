"""Time-varying exposure (exposure_time current): counting-process rows of current drug use (eras bridged within
the grace period, exposed until the era's last supply + grace) and of risk windows after abnormal laboratory results,
on hand-made fills and results with every row written out."""

from __future__ import annotations

import pytest

from pipelines.cohorts import build_study
from pipelines.cohorts.study import StudyDefinitionError, load_study
from pipelines.statistics.study_analysis import analyse_study
from tests.support.hand_cohort import HandExtract, make_study

THIAZIDE, MAGNESIUM = "thiazide_diuretics", "hypomagnesemia_lab"
EXPOSURES = [{"phenotype": THIAZIDE, "window": "current_use"},
             {"phenotype": MAGNESIUM, "window": {"lookback_days": 365}}]
# Index visit 2016-01-10, so day 0 of the time at risk is 2016-01-11; observation ends 2016-12-31 (day 355).
OBSERVED = [("2010-01-01", "2016-12-31")]


def _extract() -> HandExtract:
    extract = HandExtract()
    for pid in "ABC":
        extract.person(pid, observation=OBSERVED, visits=["2016-01-10"])
    # A: a fill before index (supply to day -12) and one starting day 9: 21 days apart, within the 30-day grace, so
    # one era from before index to day 38 (2016-02-18), exposed to day 68. The fill of day 111 (2016-05-01) starts
    # 73 days after that supply: a new era, supply to day 140, exposed to day 170.
    extract.fill("A", THIAZIDE, "2015-12-01", "2015-12-30").fill("A", THIAZIDE, "2016-01-20", "2016-02-18")
    extract.fill("A", THIAZIDE, "2016-05-01", "2016-05-30")
    # B: never exposed, a cramp on 2016-06-01 (day 142): follow-up ends there.
    extract.event("B", "leg_cramps", "2016-06-01")
    # C: low magnesium on 2015-12-21 (day -21: its 42-day window covers days -21 to 20), 2016-02-01 (day 21, adjacent:
    # one window) and 2016-03-01 (day 50: overlapping, joined to day 91); 2016-06-01 (day 142) opens a new window,
    # during which the cramp of 2016-07-01 (day 172) ends follow-up.
    for day in ("2015-12-21", "2016-02-01", "2016-03-01", "2016-06-01"):
        extract.event("C", MAGNESIUM, day, source_table="measurement")
    extract.event("C", "leg_cramps", "2016-07-01")
    return extract


@pytest.fixture(scope="module")
def built():
    con = _extract().connect()
    study = make_study(exposures=EXPOSURES, exposure_time={"mode": "current", "grace_days": 30,
                                                           "risk_window_days": 42})
    build_study(con, study)
    return con, study


@pytest.fixture(scope="module")
def rows(built):
    con, _ = built
    found = con.execute("SELECT person_id, variable, start_day, stop_day, exposed, outcome "
                        "FROM cohort.time_varying_exposure WHERE study_id = 'test_study' "
                        "ORDER BY person_id, variable, start_day").fetchall()
    days = dict(con.execute("SELECT person_id, followup_days FROM cohort.study_population").fetchall())
    return found, days


def test_current_use_rows_follow_the_eras_plus_grace(rows):
    found, days = rows
    assert days == {"A": 356, "B": 143, "C": 173}
    assert [r[2:] for r in found if r[:2] == ("A", THIAZIDE)] == [
        (0, 69, True, False), (69, 111, False, False), (111, 171, True, False), (171, 356, False, False)]
    assert [r[2:] for r in found if r[:2] == ("B", THIAZIDE)] == [(0, 143, False, True)]


def test_risk_windows_start_at_each_abnormal_result_and_join_when_they_touch(rows):
    found, _ = rows
    assert [r[2:] for r in found if r[:2] == ("C", MAGNESIUM)] == [
        (0, 92, True, False), (92, 142, False, False), (142, 173, True, True)]
    assert [r[2:] for r in found if r[:2] == ("A", MAGNESIUM)] == [(0, 356, False, False)]


def test_every_persons_rows_cover_the_time_at_risk_once(rows):
    found, days = rows
    for person, total in days.items():
        for variable in (THIAZIDE, MAGNESIUM):
            spans = [(r[2], r[3]) for r in found if r[:2] == (person, variable)]
            assert spans[0][0] == 0 and spans[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_the_analysis_counts_events_and_person_time_by_the_exposure_of_the_day(built):
    con, study = built
    analysis = analyse_study(con, study)
    current = {(exposure, r.analysis_id): r for exposure, _, r in analysis.results
               if r.analysis_id in ("cox_current_exposure", "cox_risk_window")}
    assert set(current) == {(THIAZIDE, "cox_current_exposure"), (MAGNESIUM, "cox_risk_window")}
    drug, finding = current[(THIAZIDE, "cox_current_exposure")], current[(MAGNESIUM, "cox_risk_window")]
    # A is the only current user (days 0-68 and 111-170); both cramps fall in unexposed time: no estimate.
    assert (drug.n_exposed, drug.n_unexposed, drug.events_exposed, drug.events_unexposed) == (1, 2, 0, 2)
    assert drug.person_years_exposed == pytest.approx((69 + 60) / 365.25)
    assert drug.person_years_unexposed == pytest.approx((356 + 143 + 173 - 129) / 365.25)
    assert drug.estimate is None and "no events among the exposed" in drug.not_estimable_reason
    assert drug.estimand == "hazard ratio of first outcome, current use (time-varying, grace 30 days) vs not"
    # C's cramp falls in a risk window (days 0-91 and 142-172 exposed); B's does not. Two events: too few.
    assert (finding.n_exposed, finding.n_unexposed, finding.events_exposed, finding.events_unexposed) == (1, 2, 1, 1)
    assert finding.person_years_exposed == pytest.approx((92 + 31) / 365.25)
    assert finding.estimate is None and "events per variable" in finding.not_estimable_reason
    steps = analysis.attrition[(MAGNESIUM, "cox_risk_window")]
    assert [(s.persons_exposed, s.persons_unexposed) for s in steps] == [(1, 2), (1, 2)]


def test_at_index_studies_write_no_rows():
    con = _extract().connect()
    build_study(con, make_study(exposures=EXPOSURES))
    assert con.execute("SELECT count(*) FROM cohort.time_varying_exposure").fetchone()[0] == 0


def test_an_exposure_may_choose_its_own_exposure_time():
    study = make_study(exposures=[{**EXPOSURES[0], "exposure_time": "current"}, EXPOSURES[1]])
    assert study.time_varying_exposures == {THIAZIDE: "current_use"}
    study = make_study(exposures=[EXPOSURES[0], {**EXPOSURES[1], "exposure_time": "at_index"}],
                       exposure_time={"mode": "current"})
    assert study.time_varying_exposures == {THIAZIDE: "current_use"}


def test_a_chronic_condition_cannot_be_current(tmp_path):
    path = tmp_path / "test_study.yaml"
    path.write_text("id: test_study\ntitle: t\nstudy_period: {start: 2015-01-01, end: 2022-12-31}\n"
                    "index: {rule: first_visit}\n"
                    "exposures:\n  - {phenotype: hypothyroidism, exposure_time: current}\n")
    with pytest.raises(StudyDefinitionError, match="exposure_time current applies to drugs"):
        load_study(path)
