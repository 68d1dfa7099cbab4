"""Propensity scores: fit, matching algorithm, weights, balance, and recovery of a planted effect."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from pipelines.statistics import (
    cox_hazard_ratio,
    equipoise,
    fit_propensity_score,
    inverse_probability_weights,
    match_on_propensity_score,
    preference_scores,
    propensity_score_analysis,
    propensity_score_strata,
    standardized_mean_differences,
)
from pipelines.statistics.propensity import _greedy_nearest_neighbour_pairs
from pipelines.testing.simulation import COHORT_COVARIATES, simulate_cohort

PLANTED_HR = 2.0


@pytest.fixture(scope="module")
def confounded_cohort() -> pd.DataFrame:
    # Strong age confounding: the exposed are older, and age raises the hazard.
    return simulate_cohort(10_000, hazard_ratio=PLANTED_HR, age_confounding=1.0, age_on_outcome=0.7, seed=21)


@pytest.mark.parametrize("adjustment", ["matching", "stratification", "weighting"])
def test_propensity_adjustment_recovers_planted_effect_when_crude_does_not(confounded_cohort, adjustment):
    crude = cox_hazard_ratio(confounded_cohort)
    assert not crude.contains(PLANTED_HR), crude
    analysis = propensity_score_analysis(confounded_cohort, COHORT_COVARIATES, adjustment=adjustment)
    result = analysis.hazard_ratio
    assert result.contains(PLANTED_HR), result
    assert analysis.imbalanced_covariates == []
    assert analysis.balance["imbalanced_before"].any()  # age was imbalanced before adjustment
    assert 0 < analysis.equipoise <= 1


def test_matching_pairs_are_disjoint_and_within_caliper(confounded_cohort):
    model = fit_propensity_score(confounded_cohort, COHORT_COVARIATES, penalty="l2")
    scored = confounded_cohort.assign(propensity_score=model.score(confounded_cohort))
    matched = match_on_propensity_score(scored, caliper_sd=0.2)
    assert matched.index.is_unique  # nobody is used twice
    pairs = matched.groupby("match_id")
    assert (pairs["exposure"].sum() == 1).all() and (pairs.size() == 2).all()
    logits = logit(scored.propensity_score)
    caliper = 0.2 * logits.std()
    distance = pairs["propensity_score"].agg(lambda s: abs(logit(s.iloc[0]) - logit(s.iloc[1])))
    assert distance.max() <= caliper + 1e-12


def test_greedy_matching_equals_brute_force():
    rng = np.random.default_rng(5)
    treated = rng.normal(0.5, 1, 60)
    comparators = rng.normal(0, 1, 80)
    caliper = 0.05
    fast = _greedy_nearest_neighbour_pairs(treated, comparators, caliper, np.random.default_rng(9))

    # Brute force with the same visiting order: scan every unused comparator.
    used = set()
    slow = []
    for t in np.random.default_rng(9).permutation(len(treated)):
        free = [c for c in range(len(comparators)) if c not in used]
        best = min(free, key=lambda c: abs(comparators[c] - treated[t]))
        if abs(comparators[best] - treated[t]) <= caliper:
            used.add(best)
            slow.append((int(t), best))
    assert fast == slow


def test_propensity_model_sampling_keeps_scores_calibrated(confounded_cohort):
    full = fit_propensity_score(confounded_cohort, COHORT_COVARIATES, penalty="l2")
    # Fit on at most 2,000 per group (like CohortMethod's 250,000 cap), then score everyone.
    sampled = fit_propensity_score(confounded_cohort, COHORT_COVARIATES, penalty="l2", max_per_group=2_000)
    assert sampled.persons_used_for_fit == 4_000
    scores = sampled.score(confounded_cohort)
    assert scores.mean() == pytest.approx(confounded_cohort.exposure.mean(), abs=0.02)
    assert np.corrcoef(scores, full.score(confounded_cohort))[0, 1] > 0.99


def test_l1_model_and_preference_score(confounded_cohort):
    model = fit_propensity_score(confounded_cohort, COHORT_COVARIATES, penalty="l1")
    scores = model.score(confounded_cohort)
    preference = preference_scores(scores, model.treated_share)
    # A person with PS equal to the treated share has preference 0.5.
    share = model.treated_share
    assert preference_scores(pd.Series([share]), share).iloc[0] == pytest.approx(0.5)
    assert 0 < equipoise(preference) < 1
    assert set(model.coefficients().index) == set(COHORT_COVARIATES)


def test_stabilised_weights_average_one_and_truncation_caps_them(confounded_cohort):
    model = fit_propensity_score(confounded_cohort, COHORT_COVARIATES, penalty="l2")
    scores = model.score(confounded_cohort)
    weights = inverse_probability_weights(confounded_cohort.exposure, scores)
    assert weights.mean() == pytest.approx(1.0, abs=0.05)
    truncated = inverse_probability_weights(confounded_cohort.exposure, scores, truncate_percentiles=(1, 99))
    assert truncated.max() <= np.percentile(weights, 99) + 1e-12
    unstabilised = inverse_probability_weights(confounded_cohort.exposure, scores, stabilized=False)
    treated = confounded_cohort.exposure == 1
    assert unstabilised[treated].iloc[0] == pytest.approx(1 / scores[treated].iloc[0])


def test_equal_scores_give_a_clear_error_instead_of_empty_strata():
    with pytest.raises(ValueError, match="no propensity score strata: the scores take too few distinct values") \
            as raised:
        propensity_score_strata(pd.Series([0.3] * 128))
    # published as the row's not_estimable_reason and logged: no count of persons in it
    assert "128" not in str(raised.value)


def test_strata_are_ten_equal_groups(confounded_cohort):
    strata = propensity_score_strata(pd.Series(np.linspace(0.01, 0.99, 1000)))
    assert strata.nunique() == 10 and (strata.value_counts() == 100).all()


def test_standardized_mean_difference_by_hand():
    data = pd.DataFrame({"exposure": [1, 1, 0, 0], "x": [1.0, 3.0, 0.0, 2.0]})
    table = standardized_mean_differences(data, ["x"])
    # means 2 and 1, variances (population) 1 and 1: SMD = 1 / sqrt((1 + 1) / 2) = 1.
    assert table.loc[0, "smd"] == pytest.approx(1.0)
    assert bool(table.loc[0, "imbalanced"])


def test_stratified_balance_works_on_a_frame_with_gaps_in_its_index():
    # Cohort frames arrive filtered (persons with no follow-up dropped), so their index is not 0..n-1.
    import numpy as np
    import pandas as pd

    from pipelines.statistics.propensity import stratified_standardized_mean_differences

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"exposure": rng.integers(0, 2, 400), "age": rng.normal(60, 10, 400),
                          "ps_stratum": rng.integers(0, 4, 400)}, index=np.arange(0, 800, 2))
    balance = stratified_standardized_mean_differences(frame, ["age"], "ps_stratum", "exposure")
    assert len(balance) == 1 and np.isfinite(balance["smd"].iloc[0])


def test_forced_covariates_are_never_penalised_away_and_imbalance_is_flagged(confounded_cohort):
    """With the strongest penalty on the grid, L1 drops every covariate (a constant score, 'balanced' by nothing);
    age and sex, forced, keep exactly their unpenalised coefficients, and the matched cohort is balanced on age."""
    import statsmodels.api as sm
    from sklearn.preprocessing import StandardScaler

    strongest = [1e-4]
    shrunk = fit_propensity_score(confounded_cohort, COHORT_COVARIATES, candidate_cs=strongest)
    assert (shrunk.coefficients() == 0).all()
    forced = fit_propensity_score(confounded_cohort, COHORT_COVARIATES, candidate_cs=strongest,
                                  forced_covariates=["age", "female"])
    coefficients = forced.coefficients()
    assert coefficients["diabetes"] == 0
    standardised = StandardScaler().fit_transform(confounded_cohort[["age", "female"]].to_numpy(float))
    unpenalised = sm.Logit(confounded_cohort.exposure.to_numpy(float), sm.add_constant(standardised)).fit(disp=0)
    assert coefficients["age"] == pytest.approx(unpenalised.params[1], rel=1e-3)
    assert coefficients["female"] == pytest.approx(unpenalised.params[2], rel=1e-2, abs=1e-3)
    scores = forced.score(confounded_cohort)
    assert scores.mean() == pytest.approx(confounded_cohort.exposure.mean(), abs=0.01)  # intercept not shrunk

    matched = propensity_score_analysis(confounded_cohort, COHORT_COVARIATES, model=forced)
    smd = matched.balance.set_index("covariate")
    assert smd.loc["age", "smd_before"] > 0.3 and abs(smd.loc["age", "smd_after"]) < 0.1
    assert 0.6 < matched.hazard_ratio.ps_auc < 0.9
    # Diabetes (also a confounder) was penalised away at this C and stays imbalanced: flagged, not called balanced.
    assert matched.hazard_ratio.covariates_balanced is False
    assert re.fullmatch(r"diabetes \(SMD 0\.\d{3}\)", matched.hazard_ratio.imbalanced_covariates)
    unadjusted = propensity_score_analysis(confounded_cohort, COHORT_COVARIATES, model=shrunk).hazard_ratio
    assert unadjusted.ps_auc == pytest.approx(0.5)
    assert unadjusted.covariates_balanced is False and unadjusted.imbalanced_covariates.startswith("age (SMD 0.")


def test_effective_sample_size_is_kish_per_group():
    from pipelines.statistics.propensity import effective_sample_size

    treatment = pd.Series([1, 1, 1, 0, 0])
    # Target: weights 1, 1, 2 -> 16 / 6; comparator: 3, 3 -> 2.
    assert effective_sample_size(treatment, pd.Series([1.0, 1.0, 2.0, 3.0, 3.0])) == pytest.approx(16 / 6 + 2)
    assert effective_sample_size(treatment, pd.Series([1.0] * 5)) == 5
