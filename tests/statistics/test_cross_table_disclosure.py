"""No small count can be recomputed across a study's published tables (results.attrition's cohort size,
results.analysis_attrition, results.associations): hand-built analyses for each differencing attack, published as
the statistics asset publishes them, then attacked as a reader would (tests/support/disclosure_attacks.py)."""

from __future__ import annotations

import re
from dataclasses import replace

import duckdb
import pandas as pd
import pytest

from pipelines.disclosure import Cell, CountLedger, SumRelation, suppress_cells
from pipelines.statistics.assets import publish_study_results
from pipelines.statistics.report import write_study_plots
from pipelines.statistics.results import EstimateResult
from pipelines.statistics.study_analysis import AT_RISK_STEP, COHORT_STEP, PS_STEPS, AttritionStep, StudyAnalysis
from tests.support.disclosure_attacks import small_differences
from tests.support.hand_cohort import NEW_USER, make_study

THRESHOLD = 11
MATCHED_STEP, UNMATCHED = PS_STEPS["matching"]
ITT = "thiazide_diuretics vs calcium_channel_blockers, intention to treat"
ON_TREATMENT = "thiazide_diuretics vs calcium_channel_blockers, on treatment (censored 30 days after discontinuation)"


def rate(analysis_id: str, n: int, events: int, years: float, unexposed: bool = False) -> EstimateResult:
    side = "unexposed" if unexposed else "exposed"
    return EstimateResult(method="rate", estimand=f"incidence rate, {side}", estimate=events / years * 1000,
                          ci_lower=events / years * 500, ci_upper=events / years * 2000, p_value=None,
                          analysis_id=analysis_id, **{f"n_{side}": n, f"events_{side}": events,
                                                      f"person_years_{side}": years})


def ratio(analysis_id: str, n: tuple[int, int], events: tuple[int, int], years: tuple[float, float],
          estimand: str = "hazard ratio") -> EstimateResult:
    estimate = (events[0] / years[0]) / (events[1] / years[1])
    return EstimateResult(method=analysis_id, estimand=estimand, estimate=estimate, ci_lower=estimate / 2,
                          ci_upper=estimate * 2, p_value=0.5, n_exposed=n[0], n_unexposed=n[1],
                          events_exposed=events[0], events_unexposed=events[1], person_years_exposed=years[0],
                          person_years_unexposed=years[1], analysis_id=analysis_id)


def crude(n: tuple[int, int], events: tuple[int, int], years: tuple[float, float] = (800.0, 1500.0)):
    """The analyses of everyone with time at risk: rates, their ratio, a Cox model."""
    return [rate("incidence_rate", n[0], events[0], years[0]),
            rate("incidence_rate", n[1], events[1], years[1], unexposed=True),
            ratio("crude_irr", n, events, years, "incidence rate ratio"),
            ratio("cox_adjusted", n, events, years)]


def write_cohort(con: duckdb.DuckDBPyConnection, persons: int, with_outcome: int,
                 study_id: str = "test_study") -> None:
    """cohort.study_population as the statistics stage reads its published counts: persons, outcomes."""
    con.execute("CREATE SCHEMA IF NOT EXISTS cohort")
    con.execute("CREATE TABLE IF NOT EXISTS cohort.study_population (study_id VARCHAR, outcome_date DATE)")
    con.execute("INSERT INTO cohort.study_population SELECT ?, CASE WHEN i < ? THEN DATE '2020-01-01' END "
                "FROM range(?) t(i)", [study_id, with_outcome, persons])


def publish(analysis: StudyAnalysis, cohort_size: int, nested=(), with_outcome: int | None = None
            ) -> duckdb.DuckDBPyConnection:
    study = make_study(small_cell_threshold=THRESHOLD, **({"index": NEW_USER} if nested else {}))
    con = duckdb.connect()
    # By default the outcome count is the crude events of both arms (no outcome outside the follow-up).
    crude_rows = [r for _, _, r in analysis.results if r.analysis_id == "crude_irr"]
    write_cohort(con, cohort_size, with_outcome if with_outcome is not None
           else crude_rows[0].events_exposed + crude_rows[0].events_unexposed)
    publish_study_results(con, study, analysis)
    # results.attrition publishes the cohort size (its last step's persons after)
    con.execute("CREATE TABLE results.attrition AS SELECT 'test_study' AS study_id, 9 AS step_order, "
                f"{cohort_size} AS persons_after")
    return con


def cells(con: duckdb.DuckDBPyConnection, table: str, columns: str, where: str = "TRUE") -> list[tuple]:
    return con.execute(f"SELECT {columns} FROM {table} WHERE {where} ORDER BY ALL").fetchall()


def test_cohort_size_minus_the_analysed_persons_does_not_give_away_the_persons_without_a_day_at_risk(tmp_path):
    """Attack 1: 1,000 persons in the cohort, 1 unexposed person censored before the first day at risk; the
    estimates' n_exposed + n_unexposed = 999 would give that 1 back (and so would the Kaplan-Meier plot's legend
    beside Table 1's 600 unexposed)."""
    analysis = StudyAnalysis("test_study")
    cohort = AttritionStep(COHORT_STEP, None, 400, 600)
    at_risk = AttritionStep(AT_RISK_STEP, "zero days at risk", 400, 599)
    analysis.add("thiazide_diuretics", "leg_cramps", crude((400, 599), (30, 50)), {"": [cohort, at_risk]})
    analysis.km_exposure, analysis.km_steps = "thiazide_diuretics", [cohort, at_risk]
    analysis.km_data = pd.DataFrame({"exposure": [1] * 400 + [0] * 599, "outcome": ([1] * 30 + [0] * 370
                                                                                   + [1] * 50 + [0] * 549),
                                     "followup_days": [700 + i % 300 for i in range(999)]})
    con = publish(analysis, cohort_size=1000)
    published = con.execute("SELECT * FROM results.associations").df()
    plots = write_study_plots(make_study(small_cell_threshold=THRESHOLD), analysis, published, tmp_path)
    svg = plots["Kaplan-Meier curves"].with_suffix(".svg").read_text()
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "n=suppressed" in svg and not any("599" in text for text in texts)
    # Only what recomputes the hidden unexposed persons is hidden: the exposed arm's 400 is printed in the tables,
    # and the unexposed curve (whose first drop is 1 / its persons at risk) is not drawn.
    assert "Exposed (n=400, events=30)" in svg and "no curve" in svg

    assert small_differences(con, "test_study", THRESHOLD, cohort_size=1000) == []
    # The analysed unexposed persons are hidden in every estimate that prints them and in the attrition, and with
    # them what recomputes them; the exposed rate, whose counts give nothing away, stays published; the cohort per
    # arm (which users need, and Table 1 shows) too.
    assert cells(con, "results.associations", "analysis_id, n_exposed, n_unexposed, estimate IS NULL, "
                 "person_years_exposed IS NULL, person_years_unexposed") == [
        ("cox_adjusted", 400, None, True, True, None), ("crude_irr", 400, None, True, True, None),
        ("incidence_rate", 400, None, False, False, None), ("incidence_rate", None, None, True, True, None)]
    assert cells(con, "results.analysis_attrition", "DISTINCT step_order, persons_exposed, persons_unexposed, "
                 "excluded_unexposed, suppressed_columns, complementary_columns") == [
        (1, 400, 600, None, None, None),
        (2, 400, None, None, "excluded_unexposed", "persons_unexposed")]


def test_crude_persons_minus_matched_persons_does_not_give_away_the_unmatched():
    """Attack 2: 500 + 500 analysed, 495 + 495 matched: the crude rows' n minus the matched row's n is the 5
    unmatched per arm, and 40 - 39 events the 1 event among the unmatched."""
    analysis = StudyAnalysis("test_study")
    cohort = AttritionStep(COHORT_STEP, None, 500, 500)
    at_risk = AttritionStep(AT_RISK_STEP, "zero days at risk", 500, 500)
    matched = AttritionStep(MATCHED_STEP, UNMATCHED, 495, 495)
    results = [*crude((500, 500), (40, 45)), ratio("ps_matched_cox", (495, 495), (39, 45), (790.0, 1490.0))]
    analysis.add(ITT, "leg_cramps", results, {"": [cohort, at_risk], "ps_matched_cox": [cohort, at_risk, matched]})
    con = publish(analysis, cohort_size=1000)

    assert small_differences(con, "test_study", THRESHOLD, cohort_size=1000) == []
    assert cells(con, "results.associations", "n_exposed, n_unexposed, events_exposed, estimate",
                 "analysis_id = 'ps_matched_cox'") == [(None, None, None, None)]
    assert cells(con, "results.analysis_attrition", "persons_exposed, persons_unexposed",
                 "analysis_id = 'ps_matched_cox' AND step_order = 3") == [(None, None)]
    # the cohort and its persons with a day at risk stay published
    assert cells(con, "results.analysis_attrition", "DISTINCT persons_exposed, persons_unexposed",
                 "step_order < 3") == [(500, 500)]


def test_intention_to_treat_minus_on_treatment_events_does_not_give_away_the_events_after_discontinuation():
    """Attack 3: the same cohort followed to the end (40 target events) and on treatment (37): the 3 events after
    discontinuation."""
    analysis = StudyAnalysis("test_study")
    steps = {"": [AttritionStep(COHORT_STEP, None, 500, 500),
                  AttritionStep(AT_RISK_STEP, "zero days at risk", 500, 500)]}
    analysis.add(ITT, "leg_cramps", crude((500, 500), (40, 45)), steps)
    analysis.add(ON_TREATMENT, "leg_cramps", crude((500, 500), (37, 45), (600.0, 1200.0)), steps)
    analysis.nested_exposures = [(ITT, ON_TREATMENT)]
    con = publish(analysis, cohort_size=1000, nested=True)

    assert small_differences(con, "test_study", THRESHOLD, [(ITT, ON_TREATMENT)], cohort_size=1000) == []
    # one of the two is hidden: the on-treatment events (the smaller part), not the intention-to-treat ones; the
    # on-treatment comparator's rate, which does not print them, stays published
    assert cells(con, "results.associations", "exposure, count(events_exposed), count(estimate)",
                 "TRUE GROUP BY exposure") == [(ITT, 3, 4), (ON_TREATMENT, 0, 1)]


def test_the_outcome_count_minus_the_analysed_events_does_not_give_away_the_outcomes_outside_follow_up():
    """Route 4: the cohort's 85 persons with the outcome minus the 30 + 50 events of the analysis: 5 unexposed
    persons' outcomes after they started the exposure and were censored. Hiding the one outcome count costs one
    number, hiding the events three estimates: the outcome count is hidden (results.outcome_counts, which the
    statistics log and metadata and the run summary print), the estimates stay."""
    analysis = StudyAnalysis("test_study")
    steps = {"": [AttritionStep(COHORT_STEP, None, 400, 600), AttritionStep(AT_RISK_STEP, "zero days", 400, 600)]}
    analysis.add("statins", "leg_cramps", crude((400, 600), (30, 50)), steps)
    con = publish(analysis, cohort_size=1000, with_outcome=85)
    shown = con.execute("SELECT DISTINCT events_exposed, events_unexposed, estimate FROM results.associations "
                        "WHERE analysis_id = 'crude_irr'").fetchall()
    assert shown == [(30, 50, pytest.approx(1.125))]
    assert cells(con, "results.outcome_counts", "persons_with_outcome, persons_with_outcome_text, suppressed") \
        == [(None, "suppressed", True)]
    assert small_differences(con, "test_study", THRESHOLD, cohort_size=1000) == []
    # the same analysis with every outcome inside the follow-up publishes the outcome count too
    con = publish(analysis, cohort_size=1000, with_outcome=80)
    assert con.execute("SELECT events_exposed, events_unexposed FROM results.associations "
                       "WHERE analysis_id = 'crude_irr'").fetchall() == [(30, 50)]
    assert cells(con, "results.outcome_counts", "persons_with_outcome, persons_with_outcome_text") == [(80, "80")]


def test_a_hidden_outcome_count_is_not_recomputed_from_an_exposure_whose_follow_up_holds_every_outcome():
    """Statins and ACE inhibitors each leave 5 of the 85 outcomes outside their follow-up; insulin's follow-up (a
    time-varying design: every person with time at risk is in one of its arms) holds all 85 (35 + 50). Hiding the
    outcome count protects both 5s only if insulin's events do not add up to it: a reader who assumes nothing
    outside insulin's follow-up would be right. One of insulin's counts is hidden with the outcome count (two
    numbers lost), not one of each other exposure's events (six estimates)."""
    analysis = StudyAnalysis("test_study")
    steps = {"": [AttritionStep(COHORT_STEP, None, 400, 600), AttritionStep(AT_RISK_STEP, "zero days", 400, 600)]}
    analysis.add("statins", "leg_cramps", crude((400, 600), (30, 50)), steps)
    analysis.add("ace_inhibitors", "leg_cramps", crude((300, 700), (20, 60)), steps)
    analysis.add("insulin", "leg_cramps", [ratio("cox_current_exposure", (300, 700), (35, 50), (500.0, 1800.0))],
                 {"": [AttritionStep(COHORT_STEP, None, 300, 700), AttritionStep(AT_RISK_STEP, "zero days", 300, 700)]})
    con = publish(analysis, cohort_size=1000, with_outcome=85)

    assert small_differences(con, "test_study", THRESHOLD, cohort_size=1000) == []
    assert cells(con, "results.outcome_counts", "persons_with_outcome_text") == [("suppressed",)]
    assert cells(con, "results.associations", "exposure, count(*), count(estimate)", "TRUE GROUP BY exposure") == [
        ("ace_inhibitors", 4, 4), ("insulin", 1, 0), ("statins", 4, 4)]
    assert cells(con, "results.associations", "events_exposed, events_unexposed, complementary_columns LIKE "
                 "'events_exposed,%'", "exposure = 'insulin'") == [(None, 50, True)]


def test_the_outcome_count_less_the_shown_arm_does_not_bound_a_hidden_arm_below_the_threshold():
    """22 persons with the outcome; hyponatremia's exposed events (1) are small and hidden, its unexposed 19 shown,
    2 outcomes outside its follow-up: 22 - 19 = 3 bounds the hidden exposed events to 3 or fewer. The time-varying
    risk window (0 + 22 events: everyone with time at risk is in one of its arms) gives the outcome count back if
    it is hidden, so hiding it costs that row too; either way the 3 is not left to form."""
    analysis = StudyAnalysis("test_study")
    steps = {"": [AttritionStep(COHORT_STEP, None, 40, 188), AttritionStep(AT_RISK_STEP, "zero days", 40, 188)]}
    analysis.add("hyponatremia_lab", "leg_cramps", crude((40, 188), (1, 19)), steps)
    analysis.add("hyponatremia_lab", "leg_cramps", [ratio("cox_risk_window", (31, 197), (0, 22), (20.0, 900.0))],
                 {"": [AttritionStep(f"{COHORT_STEP} (arms: any exposed time)", None, 31, 197),
                                      AttritionStep(AT_RISK_STEP, "zero days", 31, 197)]})
    con = publish(analysis, cohort_size=228, with_outcome=22)

    assert small_differences(con, "test_study", THRESHOLD, cohort_size=228) == []
    shown = cells(con, "results.associations", "analysis_id, events_unexposed", "analysis_id IN ('crude_irr', "
                  "'cox_risk_window')")
    outcome = cells(con, "results.outcome_counts", "persons_with_outcome")
    assert (outcome == [(None,)] and shown == [("cox_risk_window", None), ("crude_irr", 19)]) or (
        outcome == [(22,)] and ("crude_irr", None) in shown)


def test_a_row_whose_counts_are_hidden_does_not_say_why_it_is_not_estimable():
    """Cox with 6 coefficients and 5 + 40 events: "fewer than 10 events per variable" says 5 + 40 < 60, i.e. the
    hidden exposed events are fewer than 15; with 5 unexposed events instead the published exposed events pass the
    rule. The reason goes with the hidden counts (the row is withheld, not "not estimable"); a row whose counts are
    shown keeps its reason."""
    epv = "fewer than 10 events per variable for 6 coefficients (Peduzzi 1995/1996)"
    analysis = StudyAnalysis("test_study")
    steps = {"": [AttritionStep(COHORT_STEP, None, 400, 600), AttritionStep(AT_RISK_STEP, "zero days", 400, 600)]}
    for exposure, events in (("statins", (5, 40)), ("insulin", (40, 5))):
        cox = replace(ratio("cox_adjusted", (400, 600), events, (800.0, 1500.0)), estimate=None, ci_lower=None,
                      ci_upper=None, p_value=None, not_estimable_reason=epv)
        analysis.add(exposure, "leg_cramps", [cox], steps)
    con = publish(analysis, cohort_size=1000, with_outcome=45)

    assert cells(con, "results.associations", "exposure, events_exposed, events_unexposed, not_estimable_reason, "
                 "complementary_columns LIKE '%not_estimable_reason%'") == [
        ("insulin", 40, None, None, True), ("statins", None, 40, None, True)]
    # the same rows with every count shown say why they are not estimable
    analysis = StudyAnalysis("test_study")
    cox = replace(ratio("cox_adjusted", (400, 600), (20, 30), (800.0, 1500.0)), estimate=None, ci_lower=None,
                  ci_upper=None, p_value=None, not_estimable_reason=epv)
    analysis.add("statins", "leg_cramps", [cox], steps)
    con = publish(analysis, cohort_size=1000, with_outcome=50)
    assert cells(con, "results.associations", "events_exposed, not_estimable_reason") == [(20, epv)]


def test_a_negative_control_row_does_not_give_away_the_persons_with_a_prior_control_outcome():
    """The primary analysis (Cox) for a negative-control outcome analyses the study population less the persons with
    the control before their time at risk: 400 - 397 = 3 exposed persons with prior acute conjunctivitis. The study's
    ledger ties each control's persons to the primary analysis's, so one of the two is hidden (the control's, the
    cheaper), and the blocking check sees results.negative_control_estimates."""
    from pipelines.statistics.checks import no_small_unsuppressed_count

    analysis = StudyAnalysis("test_study")
    steps = {"": [AttritionStep(COHORT_STEP, None, 400, 600), AttritionStep(AT_RISK_STEP, "zero days", 400, 600)]}
    analysis.add("statins", "leg_cramps", crude((400, 600), (30, 50)), steps)
    analysis.negative_control_results = [
        ("statins", "acute_conjunctivitis", ratio("cox_adjusted", (397, 600), (12, 20), (790.0, 1500.0))),
        ("statins", "contact_dermatitis", ratio("cox_adjusted", (400, 600), (15, 5), (800.0, 1500.0)))]
    study = make_study(small_cell_threshold=THRESHOLD, primary_analysis="cox_adjusted",
                       negative_control_outcomes=["acute_conjunctivitis", "contact_dermatitis"])
    con = duckdb.connect()
    write_cohort(con, 1000, 80)
    publish_study_results(con, study, analysis)

    controls = cells(con, "results.negative_control_estimates", "outcome, n_exposed, n_unexposed, events_exposed, "
                     "events_unexposed, estimate IS NULL")
    assert controls == [("acute_conjunctivitis", None, 600, 12, 20, True),
                        ("contact_dermatitis", 400, 600, 15, None, True)]
    assert cells(con, "results.associations", "count(n_exposed), count(DISTINCT n_exposed), count(estimate)") \
        == [(3, 1, 4)]
    assert no_small_unsuppressed_count(con, "test_study", THRESHOLD).passed
    # the check reads the table: a small count written there fails it
    con.execute("UPDATE results.negative_control_estimates SET events_unexposed = 5")
    assert no_small_unsuppressed_count(con, "test_study", THRESHOLD).failures == [
        "results.negative_control_estimates / statins / acute_conjunctivitis / cox_adjusted / hazard ratio",
        "results.negative_control_estimates / statins / contact_dermatitis / cox_adjusted / hazard ratio"]


def test_the_attack_finds_each_leak_when_the_tables_are_suppressed_one_by_one():
    """The attack itself: the three differences are found in tables suppressed without the cross-table sums."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA results")
    con.execute("CREATE TABLE results.analysis_attrition AS SELECT * FROM (VALUES "
                f"('s', 'incidence_rate', '{ITT}', 1, '{COHORT_STEP}', 500, 500), "
                f"('s', 'incidence_rate', '{ITT}', 2, '{AT_RISK_STEP}', 500, 500), "
                f"('s', 'ps_matched_cox', '{ITT}', 1, '{COHORT_STEP}', 500, 500), "
                f"('s', 'ps_matched_cox', '{ITT}', 2, '{AT_RISK_STEP}', 500, 500), "
                f"('s', 'ps_matched_cox', '{ITT}', 3, '{MATCHED_STEP}', NULL, NULL), "
                f"('s', 'incidence_rate', '{ON_TREATMENT}', 1, '{COHORT_STEP}', 500, 500), "
                f"('s', 'incidence_rate', '{ON_TREATMENT}', 2, '{AT_RISK_STEP}', 500, 500)) "
                "t(study_id, analysis_id, exposure, step_order, step, persons_exposed, persons_unexposed)")
    con.execute("CREATE TABLE results.associations AS SELECT * FROM (VALUES "
                f"('s', '{ITT}', 'incidence_rate', 'rate', 500, 499, 40, 45), "
                f"('s', '{ITT}', 'ps_matched_cox', 'hr', 495, 495, 39, 45), "
                f"('s', '{ON_TREATMENT}', 'incidence_rate', 'rate', 500, 499, 37, 45)) "
                "t(study_id, exposure, analysis_id, estimand, n_exposed, n_unexposed, events_exposed, "
                "events_unexposed)")
    leaks = small_differences(con, "s", THRESHOLD, [(ITT, ON_TREATMENT)], cohort_size=1000)
    assert any("cohort size" in leak and "= 1" in leak for leak in leaks)
    assert any("exposed: analysis_attrition incidence_rate step 2 - associations main ps_matched_cox hr: "
               "500 - 495 = 5" in leak for leak in leaks)
    assert any("exposed events: associations main incidence_rate rate - associations main ps_matched_cox hr: "
               "40 - 39 = 1" in leak for leak in leaks)
    assert any(leak.startswith("events") and "40 - 37 = 3" in leak for leak in leaks)


# ---------------------------------------------------------------------------------------------------------------
# The rule in pipelines/disclosure.py
# ---------------------------------------------------------------------------------------------------------------

def test_a_count_printed_in_two_tables_is_one_cell_and_a_small_difference_hides_a_printed_part():
    ledger = CountLedger()
    total = ledger.count("cohort", 1000)
    analysed = ledger.count("analysed", 999)
    assert ledger.count("analysed", 999) == analysed  # the same count printed elsewhere: the same cell
    assert ledger.count("analysed", 998) is None  # not the same count
    ledger.add_difference(total, analysed, "dropped")
    ledger.suppress(THRESHOLD)
    assert (ledger.suppression("dropped"), ledger.suppression("analysed"), ledger.suppression("cohort")) == \
        ("small_cell", "complementary", None)


def test_an_unprinted_count_that_a_sum_gives_away_counts_as_known_in_other_sums():
    """a = b + u (u never printed, given away by a - b); u = c + s with s small: c must be hidden, or u - c = s."""
    cells = {"a": Cell(100), "b": Cell(60), "u": Cell(40, published=False), "c": Cell(35), "s": Cell(5)}
    suppress_cells(cells, [SumRelation("a", ("b", "u")), SumRelation("u", ("c", "s"))], THRESHOLD, derive_unprinted=True)
    assert {key: cell.suppression for key, cell in cells.items()} == \
        {"a": None, "b": None, "u": None, "c": "complementary", "s": "small_cell"}


@pytest.mark.parametrize("threshold", [11, 20])
def test_nothing_small_is_given_away_whatever_the_threshold(threshold):
    analysis = StudyAnalysis("test_study")
    cohort = AttritionStep(COHORT_STEP, None, 400, 600)
    at_risk = AttritionStep(AT_RISK_STEP, "zero days at risk", 400, 585)  # 15: small at 20, shown at 11
    analysis.add("statins", "leg_cramps", crude((400, 585), (30, 50)), {"": [cohort, at_risk]})
    study = make_study(small_cell_threshold=threshold)
    con = duckdb.connect()
    write_cohort(con, 1000, 80)
    publish_study_results(con, study, analysis)
    con.execute("CREATE TABLE results.attrition AS SELECT 'test_study' AS study_id, 9 AS step_order, "
                "1000 AS persons_after")
    assert small_differences(con, "test_study", threshold) == []
    shown = cells(con, "results.associations", "n_unexposed", "analysis_id = 'crude_irr'")
    assert shown == ([(585,)] if threshold == 11 else [(None,)])


def test_the_complement_is_the_cheapest_cell_and_a_fixed_cell_only_when_nothing_else_is_left():
    """outcomes = a + b + s (s small, never printed): hiding the total costs 1 number, a part 10 (its estimates go
    with it), so the total is hidden. The cohort = 5 + 995 with both the cohort and its arms printed earlier (fixed):
    the other arm is hidden in this ledger's tables, the only cell left that protects the 5."""
    ledger = CountLedger()
    total = ledger.count("outcomes", 85, cost=1)
    parts = [ledger.count("a", 30, cost=10), ledger.count("b", 50, cost=10),
             ledger.count("s", 5, published=False)]
    ledger.add_sum(total, parts)
    cohort = ledger.count("cohort", 1000, fixed=True)
    arms = [ledger.count("exposed", 5, cost=1, fixed=True), ledger.count("unexposed", 995, cost=1, fixed=True)]
    ledger.add_sum(cohort, arms)
    assert ledger.suppress(THRESHOLD) == []
    assert {key: ledger.suppression(key) for key in ("outcomes", "a", "b", "s", "cohort", "exposed", "unexposed")} \
        == {"outcomes": "complementary", "a": None, "b": None, "s": "small_cell", "cohort": None,
            "exposed": "small_cell", "unexposed": "complementary"}


def test_several_unknown_parts_whose_sum_is_small_hide_one_more_cell():
    """22 = 1 (small, hidden) + 19 + 2 (never printed): the 22 and the 19 give 1 + 2 = 3, fewer than the threshold."""
    ledger = CountLedger()
    total = ledger.count("outcomes", 22, cost=1)
    ledger.add_sum(total, [ledger.count("exposed", 1, cost=5), ledger.count("unexposed", 19, cost=5),
                           ledger.count("outside", 2, published=False)])
    ledger.suppress(THRESHOLD)
    assert [ledger.suppression(key) for key in ("outcomes", "exposed", "unexposed", "outside")] == \
        ["complementary", "small_cell", None, "small_cell"]


def test_the_run_summary_prints_the_outcome_count_as_the_statistics_stage_published_it(tmp_path):
    """The legcramp-run summary reads results.outcome_counts, not the cohort's person rows: a hidden count prints
    "suppressed", never the 85 the cohort holds."""
    from pipelines.run import summary

    analysis = StudyAnalysis("leg_cramps")
    steps = {"": [AttritionStep(COHORT_STEP, None, 400, 600), AttritionStep(AT_RISK_STEP, "zero days", 400, 600)]}
    analysis.add("statins", "leg_cramps", crude((400, 600), (30, 50)), steps)
    database = tmp_path / "published.duckdb"
    con = duckdb.connect(str(database))
    write_cohort(con, 1000, 85, study_id="leg_cramps")
    publish_study_results(con, make_study(id="leg_cramps", small_cell_threshold=THRESHOLD), analysis)
    con.execute("CREATE SCHEMA staging; CREATE TABLE staging.person AS SELECT range AS person_id FROM range(1000)")
    con.execute("CREATE SCHEMA ingest; CREATE TABLE ingest.load_counts AS SELECT 1000 AS input_records, "
                "0 AS rejected")
    con.close()
    [line] = [line for line in summary(database).splitlines() if line.startswith("cohort leg_cramps:")]
    assert line.startswith("cohort leg_cramps: 1,000 persons, suppressed with incident leg cramps; 4 of 4 ")
    assert "85" not in line


# ---------------------------------------------------------------------------------------------------------------
# Table 1 beside the analysis attrition: the cohort per arm is printed in both
# ---------------------------------------------------------------------------------------------------------------

def hand_study_tables(holders: range, split: str | None, hypothyroid_every: int = 3) -> duckdb.DuckDBPyConnection:
    """80 persons at their first visit, `holders` with peripheral arterial disease at index, every
    `hypothyroid_every`-th with hypothyroidism; Table 1 split by `split`; the cohort stage's Table 1 and the
    statistics stage's attrition and estimates published as the two stages publish them."""
    from pipelines.cohorts.build import build_study
    from pipelines.statistics.study_analysis import analyse_study
    from tests.support.hand_cohort import HandExtract

    extract = HandExtract()
    for n in range(80):
        person = f"P{n}"
        extract.person(person, year_of_birth=1940 + n % 30, sex="FM"[n % 2], visits=["2016-03-01"])
        if n in holders:
            extract.event(person, "peripheral_arterial_disease", "2014-01-01")
        if n % hypothyroid_every == 0:
            extract.event(person, "hypothyroidism", "2013-01-01")
        if n % 4 == 1 or n in (0, 2, 4):
            extract.event(person, "leg_cramps", f"2017-{1 + n % 12:02d}-{1 + n % 27:02d}")
    con = extract.connect()
    study = make_study(small_cell_threshold=THRESHOLD, exposures=["peripheral_arterial_disease", "hypothyroidism"],
                       **({"table1_by": split} if split else {}))
    build_study(con, study)
    publish_study_results(con, study, analyse_study(con, study))
    return con


TABLE1_CASES = {
    "7 holders, Table 1 overall only": (range(7), None),
    "7 holders, Table 1 split by the exposure": (range(7), "peripheral_arterial_disease"),
    "7 holders, Table 1 split by another exposure": (range(7), "hypothyroidism"),
    "all but 7 hold it, Table 1 overall only": (range(7, 80), None),
    "all but 7 hold it, Table 1 split by it": (range(7, 80), "peripheral_arterial_disease"),
    "holders small in one group of Table 1 only": (range(0, 60, 3), "hypothyroidism"),
}


@pytest.mark.parametrize("case", TABLE1_CASES)
def test_a_count_table1_hides_is_hidden_in_the_attrition_and_estimates_too(case):
    """Table 1 (cohort stage) and the analysis attrition (statistics stage) both print the cohort per arm: each
    exposure's holders at index and the rest, and Table 1's groups when it is split by the exposure. Solved
    together as a linear system, they give back no small count and no count Table 1 hides: the ledger hides a
    small arm and (the cohort size being printed) the other arm, exactly as Table 1 does (its small-group rule)."""
    from tests.support.disclosure_attacks import table1_cross_table_solutions

    holders, split = TABLE1_CASES[case]
    con = hand_study_tables(holders, split)
    assert table1_cross_table_solutions(con, "test_study", THRESHOLD) == []
    hidden_in_table1 = cells(con, "results.table1", "count(*)", "suppressed")[0][0]
    assert hidden_in_table1 > 0  # every case has hidden Table 1 cells to protect


def test_table1s_complement_of_a_small_group_count_is_hidden_in_the_attrition_and_estimates():
    """27 persons with hypothyroidism, 20 of them with peripheral arterial disease, 7 without; no one else has it.
    Table 1 (split by hypothyroidism) hides the 7 (never printed, but 27 - 20), so the 20 of the group, and, the
    other group's 0 protecting nothing, the overall 20. The arterial-disease analyses' cohort per arm is that 20
    and the other 60: hidden in the attrition and in every estimate (the cohort size would give one from the
    other), instead of printing the 20 that gives the 7 back."""
    con = hand_study_tables(range(0, 60, 3), "hypothyroidism")
    assert cells(con, "results.table1", "suppression", "variable = 'peripheral_arterial_disease' AND level = 'true' "
                 "AND \"group\" <> 'unexposed'") == [("complementary",), ("complementary",)]
    assert cells(con, "results.analysis_attrition", "DISTINCT step_order, persons_exposed, persons_unexposed",
                 "exposure = 'peripheral_arterial_disease'") == [(1, None, None), (2, None, None)]
    assert cells(con, "results.associations", "DISTINCT n_exposed, n_unexposed",
                 "exposure = 'peripheral_arterial_disease'") == [(None, None)]
    # hypothyroidism's own arms (Table 1's groups, printed there) stay printed
    assert cells(con, "results.analysis_attrition", "DISTINCT persons_exposed, persons_unexposed",
                 "exposure = 'hypothyroidism' AND step_order = 1") == [(27, 53)]


def test_the_cross_table_attack_reads_a_hidden_table1_count_printed_in_the_attrition():
    """The attack itself: Table 1 split by an exposure 7 persons hold hides both groups' n; an attrition that
    printed the other arm (73) would give Table 1's hidden 73 back and, with the cohort size, the 7."""
    from tests.support.disclosure_attacks import table1_cross_table_solutions

    con = hand_study_tables(range(7), "peripheral_arterial_disease")
    con.execute("UPDATE results.analysis_attrition SET persons_unexposed = 73 "
                "WHERE step_order = 1 AND exposure = 'peripheral_arterial_disease'")
    leaks = table1_cross_table_solutions(con, "test_study", THRESHOLD)
    assert "hidden in Table 1, determined beside the attrition: ('n', 'unexposed'): 73" in leaks
    assert "('n', 'exposed'): 7" in leaks
