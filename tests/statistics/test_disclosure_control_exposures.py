"""A negative-control exposure's rows (a control drug against the study outcome, estimate rows of the ledger) are
controls for the sparing rule (analysis_attrition.suppress_study_counts_sparing_main): decided after the main rows,
like the control outcomes, and withheld whole, with the drug's attrition, when they would cost a main number."""

from __future__ import annotations

import pandas as pd

from pipelines.statistics.analysis_attrition import (
    ESTIMATE_COUNT_COLUMNS,
    suppress_study_counts_sparing_main,
)

THRESHOLD = 11
OUTCOME_COUNT = 52
STEPS = [("in the study population", 68, 277), ("at least one day at risk", 68, 277)]


def steps(exposure: str) -> pd.DataFrame:
    return pd.DataFrame([{"study_id": "s", "analysis_id": "crude_irr", "exposure": exposure, "step_order": order,
                          "step": step, "reason": None, "persons_exposed": exposed, "persons_unexposed": unexposed,
                          "excluded_exposed": None if order == 1 else 0,
                          "excluded_unexposed": None if order == 1 else 0}
                         for order, (step, exposed, unexposed) in enumerate(STEPS, start=1)])


def estimate(exposure: str, events: tuple[int, int]) -> dict:
    return {"study_id": "s", "exposure": exposure, "outcome": "leg_cramps", "analysis_id": "crude_irr",
            "n_exposed": 68, "n_unexposed": 277, "events_exposed": events[0], "events_unexposed": events[1],
            "estimate": 1.2, "ci_lower": 0.6, "ci_upper": 2.4, "p_value": 0.6, "person_years_exposed": 100.0,
            "person_years_unexposed": 400.0, "sensitivity_analysis": None}


def main_numbers(suppression) -> tuple:
    """What the main analysis (statins, row 0, its attrition rows 0 and 1, the outcome count) publishes."""
    rows = {column: bool(flags.iloc[0]) for column, flags in suppression.result_complementary.items()}
    return rows, suppression.attrition.iloc[:2].astype(str).to_dict(), suppression.outcome_count_suppression


def test_a_control_drugs_small_count_costs_the_main_analysis_nothing():
    """Statins has 5 exposed events (small) of the cohort's 52 outcomes, so a reader could get them from the outcome
    count less its 47 unexposed: alone, the 47 is hidden and the outcome count printed. A control drug (ranitidine)
    with 3 exposed events of the same 52 needs a complement too; decided with the main rows, hiding the outcome
    count protects both at once (one number instead of two), so the main analysis loses its outcome count. As a
    control, the drug is decided after the main rows: it would change them, so it is withheld whole."""
    main_alone = suppress_study_counts_sparing_main(steps("statins"), pd.DataFrame([estimate("statins", (5, 47))]),
                                                    THRESHOLD, outcome_count=OUTCOME_COUNT)
    attrition = pd.concat([steps("statins"), steps("ranitidine")], ignore_index=True)
    results = pd.DataFrame([estimate("statins", (5, 47)), estimate("ranitidine", (3, 49))])
    as_main = suppress_study_counts_sparing_main(attrition, results, THRESHOLD, outcome_count=OUTCOME_COUNT)
    assert main_alone.outcome_count_suppression is None and main_alone.result_complementary["events_unexposed"][0]
    # the old rule: the control drug counted as a main row, and cost the outcome count
    assert as_main.outcome_count_suppression is not None
    assert main_numbers(as_main) != main_numbers(main_alone)

    as_control = suppress_study_counts_sparing_main(attrition, results, THRESHOLD, outcome_count=OUTCOME_COUNT,
                                                    control_exposures=pd.Series([False, True]))
    assert main_numbers(as_control) == main_numbers(main_alone)
    assert as_control.withheld_control_pairs == [("ranitidine", "leg_cramps")]
    # withheld whole: every count of its row and of its attrition hidden, and its rows out of the ledger's own
    assert all(as_control.result_complementary[column][1] for column in ESTIMATE_COUNT_COLUMNS)
    assert not as_control.ledger_rows[1]
    drug_steps = as_control.attrition.iloc[2:]
    assert list(drug_steps["exposure"]) == ["ranitidine"] * 2 and drug_steps["suppressed"].all()
    assert drug_steps[["persons_exposed", "persons_unexposed"]].isna().all(axis=None)


def test_a_control_drug_that_costs_nothing_is_published_with_its_attrition():
    """The same drug with 20 exposed events of the 52: no small count, nothing withheld, its counts printed."""
    attrition = pd.concat([steps("statins"), steps("ranitidine")], ignore_index=True)
    results = pd.DataFrame([estimate("statins", (5, 47)), estimate("ranitidine", (20, 32))])
    suppression = suppress_study_counts_sparing_main(attrition, results, THRESHOLD, outcome_count=OUTCOME_COUNT,
                                                     control_exposures=pd.Series([False, True]))
    assert suppression.withheld_control_pairs == []
    assert not any(suppression.result_complementary[column][1] for column in ESTIMATE_COUNT_COLUMNS)
    assert list(suppression.attrition.index) == list(attrition.index)
    assert suppression.attrition.iloc[2:][["persons_exposed", "persons_unexposed"]].notna().all(axis=None)
