"""A time-varying analysis's first attrition step (the cohort split by any exposed time during follow-up, or none)
is printed by no earlier stage (Table 1 describes the exposure at index; the study report shows the steps after
the first), so its arms are cells the ledger may hide as complements; only the cohort size they add up to is fixed
(analysis_attrition.PRINTED_BY_THE_COHORT_STAGE)."""

from __future__ import annotations

import pandas as pd

from pipelines.statistics.analysis_attrition import suppress_study_counts
from pipelines.statistics.study_analysis import AT_RISK_STEP, EVER_EXPOSED_COHORT_STEP

THRESHOLD = 11


def attrition() -> pd.DataFrame:
    """150 persons: 60 with any exposed time, 90 without; 12 and 4 of them without a day at risk."""
    return pd.DataFrame([
        {"study_id": "s", "analysis_id": "cox_current_exposure", "exposure": "statins", "step_order": 1,
         "step": EVER_EXPOSED_COHORT_STEP, "reason": None, "persons_exposed": 60, "persons_unexposed": 90,
         "excluded_exposed": None, "excluded_unexposed": None},
        {"study_id": "s", "analysis_id": "cox_current_exposure", "exposure": "statins", "step_order": 2,
         "step": AT_RISK_STEP, "reason": "zero days at risk", "persons_exposed": 48, "persons_unexposed": 86,
         "excluded_exposed": 12, "excluded_unexposed": 4}])


def estimate() -> pd.DataFrame:
    return pd.DataFrame([{"study_id": "s", "exposure": "statins", "outcome": "leg_cramps",
                          "analysis_id": "cox_current_exposure", "n_exposed": 48, "n_unexposed": 86,
                          "events_exposed": 15, "events_unexposed": 20, "estimate": 1.3, "ci_lower": 0.7,
                          "ci_upper": 2.5, "p_value": 0.4, "person_years_exposed": 60.0,
                          "person_years_unexposed": 200.0, "sensitivity_analysis": None}])


def test_the_time_varying_arms_are_hidden_before_the_estimate_that_prints_the_persons_at_risk():
    """The 4 unexposed persons without a day at risk are protected by hiding the 90 without exposed time (one
    attrition number; then the 60 beside the printed cohort size of 150, and the 12 beside the 48), not the 86 at
    risk, which the estimate prints with its hazard ratio, interval and p-value."""
    suppression = suppress_study_counts(attrition(), estimate(), THRESHOLD)
    assert not any(flags.iloc[0] for flags in suppression.result_complementary.values())
    published = suppression.attrition
    assert published[["persons_exposed", "persons_unexposed"]].values.tolist() == [[None, None], [48, 86]]
    assert published[["excluded_exposed", "excluded_unexposed"]].iloc[1].tolist() == [None, None]
    assert suppression.numbers_lost == 4
