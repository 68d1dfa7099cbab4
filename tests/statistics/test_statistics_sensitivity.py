"""Sensitivity analyses: the study's analyses rerun with the outcome replaced by a variant phenotype, on a hand-made
cohort where the broad and the leg-specific outcome differ."""

from __future__ import annotations

import pytest

from pipelines.cohorts import build_study
from pipelines.statistics.assets import publish_study_results
from pipelines.statistics.checks import STUDY_CHECKS, run_checks
from pipelines.statistics.report import write_study_reports
from pipelines.statistics.study_analysis import analyse_study
from tests.support.hand_cohort import HandExtract, make_study

LEG_SPECIFIC = {"id": "outcome_leg_specific", "replace": "leg_cramps", "variant": "leg_cramps_leg_specific",
                "description": "outcome = G47.62 or M62.831 only"}
EXPOSURE = {"phenotype": "statins", "window": "current_use"}


def extract() -> HandExtract:
    hand = HandExtract()
    for n in range(10):
        hand.person(f"E{n}", visits=["2016-06-01"]).fill(f"E{n}", "statins", "2016-05-01", "2016-08-31")
        hand.person(f"U{n}", visits=["2016-06-01"])
    for pid in ("E0", "E1", "E2", "U0"):  # a cramp at an unnamed site (R25.2): the broad outcome only
        hand.event(pid, "leg_cramps", "2018-01-01")
    for pid in ("E3", "U1", "U2"):  # a leg-specific code (G47.62) counts for both outcomes
        hand.event(pid, "leg_cramps", "2018-01-01").event(pid, "leg_cramps_leg_specific", "2018-01-01")
    # A variant outcome before index without the broad one (as a broader variant would have): this person leaves
    # the sensitivity analysis only.
    hand.event("E4", "leg_cramps_leg_specific", "2015-01-01")
    return hand


def crude_irr(analysis, outcome):
    [row] = [r for exposure, o, r in analysis.results if r.analysis_id == "crude_irr" and o == outcome]
    return row.n_exposed, row.n_unexposed, row.events_exposed, row.events_unexposed, row.estimate


def test_a_sensitivity_analysis_counts_the_variant_outcome_in_the_same_population():
    con = extract().connect()
    study = make_study(exposures=[EXPOSURE], sensitivity_analyses=[LEG_SPECIFIC])
    build_study(con, study)
    analysis = analyse_study(con, study)
    main = crude_irr(analysis, "leg_cramps")
    variant = crude_irr(analysis.sensitivity["outcome_leg_specific"], "leg_cramps_leg_specific")
    assert main[:4] == (10, 10, 4, 3)
    assert variant[:4] == (9, 10, 1, 2)
    # Same follow-up per person (no one had an event before 2018): the rate ratios are the event ratios over
    # person-time, 4/3 x (U person-time / E person-time) and (1/2) x the same factor, less E4's time.
    assert main[4] > 1 > variant[4]
    # The note says who was left out, not how many (1 of 20: a count the disclosure rule may have to hide).
    left_out = ("sensitivity analysis outcome_leg_specific: left out the persons who had leg_cramps_leg_specific "
                "before their time at risk (the rows' n_exposed and n_unexposed count those kept)")
    assert analysis.sensitivity["outcome_leg_specific"].notes[0] == left_out and left_out in analysis.notes


def test_a_study_without_sensitivity_analyses_runs_none():
    con = extract().connect()
    study = make_study(exposures=[EXPOSURE])
    build_study(con, study)
    assert analyse_study(con, study).sensitivity == {}


@pytest.mark.parametrize("change, message", [
    ({"replace": "statins", "variant": "statins"}, "by itself"),
    ({"replace": "diabetes_mellitus", "variant": "hypothyroidism"}, "only the outcome"),
    ({"variant": "statins"}, "is a drug phenotype"),
])
def test_a_wrong_sensitivity_analysis_is_a_study_definition_error(change, message):
    with pytest.raises(ValueError, match=message):
        make_study(exposures=[EXPOSURE], covariates=["diabetes_mellitus"],
                   sensitivity_analyses=[{**LEG_SPECIFIC, **change}])


def test_sensitivity_rows_are_published_beside_the_main_rows_and_shown_side_by_side(tmp_path):
    con = extract().connect()
    study = make_study(exposures=[EXPOSURE], sensitivity_analyses=[LEG_SPECIFIC], primary_analysis="crude_irr")
    build_study(con, study)
    analysis = analyse_study(con, study)
    published = publish_study_results(con, study, analysis)
    assert con.execute(
        "SELECT outcome, sensitivity_analysis, n_exposed, events_exposed, events_unexposed FROM results.associations "
        "WHERE study_id = 'test_study' AND analysis_id = 'crude_irr' ORDER BY sensitivity_analysis NULLS FIRST"
    ).fetchall() == [("leg_cramps", None, 10, 4, 3), ("leg_cramps_leg_specific", "outcome_leg_specific", 9, 1, 2)]
    # The blocking checks hold with the sensitivity rows in the table (the attrition tables describe the main rows).
    assert [v.name for v in run_checks(con, study.id, study.threshold, STUDY_CHECKS,
                                      ledger=analysis.disclosure_ledger) if not v.passed] == []
    main_irr = published.query("analysis_id == 'crude_irr' and sensitivity_analysis.isna()").iloc[0]
    variant_irr = published.query("analysis_id == 'crude_irr' and sensitivity_analysis.notna()").iloc[0]
    assert main_irr["estimate"] != variant_irr["estimate"]
    text = write_study_reports(con, study, analysis, published, {}, tmp_path).markdown.read_text()
    section = text.split("## Sensitivity analyses")[1]
    [line] = [line for line in section.splitlines() if line.startswith("| Statins")]
    assert f"{main_irr['estimate']:.2f}" in line and f"{variant_irr['estimate']:.2f}" in line
    assert "| 10 / 4 |" in line and "| 9 / 1 |" in line
    # The main tables show the main rows only.
    assert text.split("## Sensitivity analyses")[0].count(f"{variant_irr['estimate']:.2f}") == 0
