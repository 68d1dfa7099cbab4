"""Negative controls never cost the main analysis a published number (analysis_attrition.
suppress_study_counts_sparing_main): the main rows are decided alone, then each negative-control exposure-outcome
pair is added, and a pair whose rows would hide a main cell is withheld whole. Hand-built counts of one exposure
(everyone at risk, and a PS-matched subset) where a control outcome with few events among the matched did cost the
matched row's unexposed persons when the controls were decided with the main rows."""

from __future__ import annotations

import duckdb
import pandas as pd

from pipelines.cohorts.build import create_output_tables
from pipelines.statistics.analysis_attrition import suppress_study_counts, suppress_study_counts_sparing_main
from pipelines.statistics.assets import (NEGATIVE_CONTROL_RESULT_COLUMNS, publish_negative_control_estimates,
                                         publish_study_results)
from pipelines.statistics.checks import no_small_unsuppressed_count
from pipelines.statistics.report import notes_markdown, write_study_reports
from pipelines.statistics.results import COHORT_STEP, DERIVED_COLUMNS, EstimateResult
from pipelines.statistics.study_analysis import AT_RISK_STEP, PS_STEPS, AttritionStep, StudyAnalysis
from tests.support.hand_cohort import make_study

THRESHOLD = 11
STEPS = [("in the study population", 68, 277), ("at least one day at risk", 68, 274)]
MATCHED = ("matched on propensity score", 56, 68)
COUNTS = ["n_exposed", "n_unexposed", "events_exposed", "events_unexposed"]


def row(exposure: str, outcome: str, analysis_id: str, n: tuple[int, int], events: tuple[int, int]) -> dict:
    return {"study_id": "s", "exposure": exposure, "outcome": outcome, "analysis_id": analysis_id,
            "n_exposed": n[0], "n_unexposed": n[1], "events_exposed": events[0], "events_unexposed": events[1],
            "estimate": 1.2, "ci_lower": 0.6, "ci_upper": 2.4, "p_value": 0.6, "person_years_exposed": 100.0,
            "person_years_unexposed": 400.0, "sensitivity_analysis": None}


def attrition(exposure: str = "statins") -> pd.DataFrame:
    records = []
    for analysis_id, steps in (("crude_irr", STEPS), ("cox_adjusted", STEPS), ("km_risk_365", STEPS),
                               ("ps_matched_cox", [*STEPS, MATCHED])):
        for order, (step, exposed, unexposed) in enumerate(steps, start=1):
            before = steps[order - 2] if order > 1 else None
            records.append({"study_id": "s", "analysis_id": analysis_id, "exposure": exposure, "step_order": order,
                            "step": step, "reason": None, "persons_exposed": exposed, "persons_unexposed": unexposed,
                            "excluded_exposed": None if before is None else before[1] - exposed,
                            "excluded_unexposed": None if before is None else before[2] - unexposed})
    return pd.DataFrame(records)


def main_rows() -> pd.DataFrame:
    return pd.DataFrame([row("statins", "leg_cramps", "crude_irr", (68, 274), (7, 45)),
                         row("statins", "leg_cramps", "cox_adjusted", (68, 274), (7, 45)),
                         row("statins", "leg_cramps", "km_risk_365", (68, 274), (0, 40)),
                         row("statins", "leg_cramps", "ps_matched_cox", (56, 68), (7, 17))])


def control_rows() -> pd.DataFrame:
    """`ingrown_nail`, printed by two analyses (3 exposed persons with a prior control outcome, 1 unexposed event)
    costs the main analysis: the at-risk unexposed persons (274) are hidden to protect the 3 persons without a day
    at risk, the control's 274 gives them back (no one has a prior control outcome), and the complements that
    protect it run on into the matched row's unexposed persons; `cataract` (the matched row only, every count
    large) costs nothing."""
    return pd.DataFrame([row("statins", "ingrown_nail", "ps_matched_cox", (53, 68), (8, 1)),
                         row("statins", "ingrown_nail", "crude_irr", (65, 274), (8, 1)),
                         row("statins", "cataract", "ps_matched_cox", (56, 68), (20, 25))])


def decide(controls: pd.DataFrame | None, sparing: bool = True):
    function = suppress_study_counts_sparing_main if sparing else suppress_study_counts
    return function(attrition(), main_rows(), THRESHOLD, outcome_count=52, controls=controls)


def main_hidden(suppression) -> tuple:
    rows = {column: list(flags) for column, flags in suppression.result_complementary.items()}
    return rows, suppression.attrition[["persons_exposed", "persons_unexposed"]].isna().sum().to_dict(), \
        suppression.outcome_count_suppression


def test_deciding_the_controls_with_the_main_rows_costs_main_cells():
    """The case the rule is for: with both controls in one ledger, the matched row's unexposed persons (and the
    attrition step that prints them) are hidden, which the main analysis alone publishes."""
    alone, joint = decide(None, sparing=False), decide(control_rows(), sparing=False)
    assert not alone.result_complementary["n_unexposed"].iloc[3]
    assert joint.result_complementary["n_unexposed"].iloc[3]


def test_the_main_analysis_publishes_the_same_with_and_without_its_negative_controls():
    alone, with_controls = decide(None), decide(control_rows())
    assert main_hidden(with_controls) == main_hidden(alone)
    assert with_controls.attrition.equals(alone.attrition)


def test_a_costly_control_pair_is_withheld_whole_and_the_others_are_published():
    suppression = decide(control_rows())
    assert suppression.withheld_control_pairs == [("statins", "ingrown_nail")]
    hidden = pd.DataFrame(suppression.control_complementary)[COUNTS]
    assert hidden.iloc[:2].all(axis=None)  # every count of the withheld pair
    assert not hidden.iloc[2:].any(axis=None)  # the cataract pair keeps its counts
    assert list(suppression.control_ledger_rows) == [False, False, True]


def test_the_published_control_table_prints_nothing_of_a_withheld_pair_and_no_small_count():
    suppression = decide(control_rows())
    con = duckdb.connect()
    frame = control_rows().assign(seed=1).reindex(
        columns=["study_id", "exposure", "outcome", *NEGATIVE_CONTROL_RESULT_COLUMNS, "seed"])
    published = publish_negative_control_estimates(con, "s", frame, THRESHOLD,
                                                   suppression.control_complementary,
                                                   suppression.control_ledger_rows)
    derived = [column for column in DERIVED_COLUMNS if column in published]
    withheld, kept = published.iloc[:2], published.iloc[2:]
    assert withheld[[*COUNTS, *derived]].isna().all(axis=None)
    assert kept[["n_exposed", "n_unexposed", "events_exposed", "estimate"]].notna().all(axis=None)
    assert no_small_unsuppressed_count(con, "s", THRESHOLD).passed


def test_an_exposure_control_is_a_pair_of_its_own():
    """A negative-control exposure's rows (the control drug against the study outcome) are their own pair: the
    costly control outcome of the study exposure withholds nothing of them."""
    controls = pd.concat([control_rows(), pd.DataFrame([
        row("ranitidine", "leg_cramps", "ps_matched_cox", (56, 68), (20, 25))])], ignore_index=True)
    frame = pd.concat([attrition(), attrition("ranitidine")], ignore_index=True)
    suppression = suppress_study_counts_sparing_main(frame, main_rows(), THRESHOLD, outcome_count=52,
                                                     controls=controls)
    assert suppression.withheld_control_pairs == [("statins", "ingrown_nail")]
    assert not pd.DataFrame(suppression.control_complementary)[COUNTS].iloc[2:].any(axis=None)


def test_the_withheld_pairs_are_one_note_and_the_report_and_metadata_name_each_pair(tmp_path):
    """Published as the statistics asset publishes a study: two costly control pairs (the `ingrown_nail` counts above
    under two phenotypes of the catalogue) and one that costs nothing. The run log prints each note once: one
    note counts the withheld pairs; the study report and the asset's "notes" metadata list the pairs under it."""
    def result(analysis_id: str, n: tuple[int, int], events: tuple[int, int]) -> EstimateResult:
        return EstimateResult(method=analysis_id, estimand="hazard ratio", estimate=1.2, ci_lower=0.6, ci_upper=2.4,
                              p_value=0.6, n_exposed=n[0], n_unexposed=n[1], events_exposed=events[0],
                              events_unexposed=events[1], person_years_exposed=100.0, person_years_unexposed=400.0,
                              analysis_id=analysis_id)

    analysis = StudyAnalysis("test_study")
    steps = [AttritionStep(step, None, exposed, unexposed) for step, exposed, unexposed in
             ((COHORT_STEP, 68, 277), (AT_RISK_STEP, 68, 274))]
    analysis.add("statins", "leg_cramps", [result(analysis_id, (r["n_exposed"], r["n_unexposed"]),
                                                  (r["events_exposed"], r["events_unexposed"]))
                                           for analysis_id, r in main_rows().set_index("analysis_id").iterrows()],
                 {"": steps, "ps_matched_cox": [*steps, AttritionStep(PS_STEPS["matching"][0], None, 56, 68)]})
    costly, free = ("onychomycosis", "ganglion_cyst"), "viral_warts"
    analysis.negative_control_results = [
        *(("statins", control, result(analysis_id, n, (8, 1)))
          for control in costly for analysis_id, n in (("ps_matched_cox", (53, 68)), ("crude_irr", (65, 274)))),
        ("statins", free, result("ps_matched_cox", (56, 68), (20, 25)))]
    study = make_study(small_cell_threshold=THRESHOLD, primary_analysis="ps_matched_cox",
                       negative_control_outcomes=[*costly, free])
    con = duckdb.connect()
    create_output_tables(con)
    con.execute("""INSERT INTO cohort.study_population (study_id, person_id, index_date, time_at_risk_start,
                       followup_end, followup_days, outcome_flag, outcome_date)
                   SELECT 'test_study', i::VARCHAR, DATE '2019-01-01', DATE '2019-01-02', DATE '2020-06-30', 546,
                          i < 52, CASE WHEN i < 52 THEN DATE '2020-01-01' END FROM range(345) t(i)""")
    published = publish_study_results(con, study, analysis)

    note = ("small-cell suppression: 2 negative-control pair(s) withheld, since publishing their rows would hide "
            "main-analysis numbers")
    assert [n for n in analysis.notes if "negative" in n] == [note]
    assert not any(control in n for n in analysis.notes for control in (*costly, free))
    assert analysis.note_details == {note: ["statins / onychomycosis", "statins / ganglion_cyst"]}
    assert con.execute("SELECT outcome, count(estimate), count(n_exposed) FROM results.negative_control_estimates "
                       "GROUP BY ALL ORDER BY ALL").fetchall() == [
        ("ganglion_cyst", 0, 0), ("onychomycosis", 0, 0), ("viral_warts", 1, 1)]
    assert f"- {note}\n  - statins / onychomycosis\n  - statins / ganglion_cyst" in \
        notes_markdown(analysis.notes, analysis.note_details)
    reports = write_study_reports(con, study, analysis, published, {}, tmp_path)
    assert f"- {note}\n  - statins / onychomycosis\n  - statins / ganglion_cyst\n" in reports.markdown.read_text()
    assert (f"<li>{note}<ul><li>statins / onychomycosis</li><li>statins / ganglion_cyst</li></ul></li>"
            in reports.html.read_text())
