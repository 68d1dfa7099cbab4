"""New-user designs publish intention-to-treat and on-treatment analyses (LEGEND): the on-treatment end of each
person (discontinuation + grace, or a switch) on hand-made fills, and the events each analysis counts."""

from __future__ import annotations

from datetime import date

import pytest

from pipelines.cohorts import build_study
from pipelines.statistics.study_analysis import analyse_study
from tests.support.hand_cohort import NEW_USER, HandExtract, make_study

D = date.fromisoformat
THIAZIDE, CCB = "thiazide_diuretics", "calcium_channel_blockers"


@pytest.fixture(scope="module")
def built():
    extract = HandExtract()
    for pid in "ABCDE":
        extract.person(pid)
    # A: gap of 21 days joins the second fill; a gap of 73 days after it ends the era: 2016-05-19 + 30 days.
    extract.fill("A", THIAZIDE, "2016-03-01", "2016-03-30").fill("A", THIAZIDE, "2016-04-20", "2016-05-19")
    extract.fill("A", THIAZIDE, "2016-08-01", "2016-08-30").event("A", "leg_cramps", "2016-07-15")
    # B: starts the CCB, switches to the thiazide on 2016-03-20: on treatment until the day before.
    extract.fill("B", CCB, "2016-03-01", "2016-03-30").fill("B", THIAZIDE, "2016-03-20", "2016-04-18")
    extract.event("B", "leg_cramps", "2016-04-01")
    # C: the next fill starts 31 days after the supply ends: outside the 30-day persistence window.
    extract.fill("C", THIAZIDE, "2016-03-01", "2016-03-30").fill("C", THIAZIDE, "2016-04-30", "2016-05-29")
    # D: exactly 30 days: inside the window, one era.
    extract.fill("D", THIAZIDE, "2016-03-01", "2016-03-30").fill("D", THIAZIDE, "2016-04-29", "2016-05-28")
    # E: a CCB user with a cramp while on the drug.
    extract.fill("E", CCB, "2016-03-01", "2016-05-30").event("E", "leg_cramps", "2016-04-15")
    con = extract.connect()
    study = make_study(index={**NEW_USER, "grace_days": 30}, small_cell_threshold=1)
    build_study(con, study)
    return con, study


def test_on_treatment_end_is_discontinuation_plus_grace_or_the_day_before_a_switch(built):
    con, _ = built
    ends = dict(con.execute("SELECT person_id, on_treatment_end FROM cohort.study_population "
                            "WHERE study_id = 'test_study'").fetchall())
    assert ends == {"A": D("2016-06-18"), "B": D("2016-03-19"), "C": D("2016-04-29"), "D": D("2016-06-27"),
                    "E": D("2016-06-29")}


def test_both_analyses_are_published_with_their_own_events(built):
    con, study = built
    analysis = analyse_study(con, study)
    events = {exposure: (r.events_exposed, r.events_unexposed) for exposure, _, r in analysis.results
              if r.analysis_id == "crude_irr"}
    # ITT counts A's cramp (after discontinuation) and B's (after the switch); on treatment only E's.
    assert events == {
        f"{THIAZIDE} vs {CCB}, intention to treat": (1, 2),
        f"{THIAZIDE} vs {CCB}, on treatment (censored 30 days after discontinuation or at a switch)": (0, 1),
    }
