"""Non-estimable results are withheld with a reason, never published as numbers (pipelines/statistics/estimability.py).

Each case is built by hand so its failure mode is known: the 5k thiazide_vs_ccb matched cohort (38 pairs, 4 vs 0
events, which lifelines fitted as HR 2.56e7), an adjusted Cox model with 5 events and 20 covariates, a covariate that
separates the outcome, zero-count 2x2 tables and rate ratios.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from pipelines.network.pooling import pool_site_associations
from pipelines.statistics import (
    EstimateResult,
    adjusted_incidence_rate_ratio,
    adjusted_odds_ratio,
    cox_hazard_ratio,
    crude_odds_ratio,
    incidence_rate_from_counts,
    incidence_rate_ratio_from_counts,
    odds_ratio_from_counts,
    risk_ratio_from_counts,
)
from pipelines.statistics.estimability import (
    MAX_STANDARD_ERROR_RATIO,
    MIN_EVENTS_PER_VARIABLE,
    ModelFit,
    caught_fit_warnings,
    judged,
    not_estimable_reason,
)
from pipelines.statistics.results import RESULT_COLUMNS


def matched_pairs_4_vs_0() -> pd.DataFrame:
    """38 pairs (one target, one comparator each); 4 target persons have the outcome, no comparator does."""
    rng = np.random.default_rng(3)
    rows = []
    for pair in range(38):
        for exposure in (1, 0):
            outcome = int(exposure == 1 and pair < 4)
            days = int(rng.integers(30, 1500)) if not outcome else int(rng.integers(20, 400))
            rows.append({"match_id": pair, "exposure": exposure, "outcome": outcome, "followup_days": days})
    return pd.DataFrame(rows)


def test_the_5k_matched_cohort_with_4_vs_0_events_is_not_estimable():
    pairs = matched_pairs_4_vs_0()
    # What the Cox fit does with it (what was published): a coefficient running off to infinity, with a model SE in
    # the thousands and a robust SE below 1.
    raw = CoxPHFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw.fit(pairs.assign(followup_years=pairs.followup_days / 365.25).drop(columns="followup_days"),
                "followup_years", "outcome", cluster_col="match_id", robust=True)
    assert raw.params_["exposure"] > 8
    assert math.sqrt(raw.variance_matrix_.loc["exposure", "exposure"]) / raw.standard_errors_["exposure"] > 100

    result = cox_hazard_ratio(pairs, cluster="match_id")
    assert (result.estimate, result.ci_lower, result.ci_upper, result.p_value) == (None, None, None, None)
    assert result.not_estimable_reason == "no events among the unexposed: the ratio is 0 or infinite"
    assert (result.n_exposed, result.n_unexposed, result.events_exposed, result.events_unexposed) == (38, 38, 4, 0)


def test_model_and_robust_standard_errors_that_disagree_make_a_result_not_estimable():
    estimate = EstimateResult("Cox", "hazard ratio", 2.56e7, 9.8e6, 6.7e7, 0.0, 38, 38, 4, 1)
    reason = not_estimable_reason(estimate, ModelFit(parameters=1, events=50, standard_error=2546.0,
                                                     robust_standard_error=0.489))
    assert reason == ("model-based and robust standard errors differ by more than a factor of 2: the likelihood is flat "
                      "or the model misfits")
    # Within the factor: published.
    assert not_estimable_reason(estimate.__class__("Cox", "hazard ratio", 2.0, 1.5, 2.7, 0.01, 100, 100, 40, 20),
                                ModelFit(1, 60, 0.15, 0.15 * MAX_STANDARD_ERROR_RATIO * 0.99)) is None


def test_an_adjusted_cox_model_with_5_events_and_20_covariates_is_not_estimable():
    rng = np.random.default_rng(11)
    n = 128
    data = pd.DataFrame({f"x{i}": rng.integers(0, 2, n) for i in range(19)})
    data["age"] = rng.normal(60, 10, n)
    data["exposure"] = np.r_[np.ones(69, int), np.zeros(59, int)]
    data["outcome"] = 0
    data.loc[[0, 1, 2, 3, 70], "outcome"] = 1
    data["followup_days"] = rng.integers(30, 2000, n)
    covariates = [*(f"x{i}" for i in range(19)), "age"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no convergence warning may escape: it is caught and becomes the reason
        result = cox_hazard_ratio(data, covariates)
    assert result.estimate is None and result.ci_lower is None
    assert result.events_exposed == 4 and result.events_unexposed == 1
    assert result.not_estimable_reason == (
        f"fewer than {MIN_EVENTS_PER_VARIABLE} events per variable for 21 coefficients (Peduzzi 1995/1996)")
    # The crude comparison of the same persons has events on both sides and no model: it stays published.
    assert crude_odds_ratio(data).estimate == pytest.approx((4 / 65) / (1 / 58))


def separated_cohort() -> pd.DataFrame:
    """400 persons, 60 events in both groups; covariate `marker` is 1 exactly for the persons with an event."""
    rng = np.random.default_rng(5)
    n = 400
    outcome = np.zeros(n, int)
    outcome[rng.choice(n, 60, replace=False)] = 1
    exposure = rng.integers(0, 2, n)
    return pd.DataFrame({"exposure": exposure, "outcome": outcome, "marker": outcome,
                         "age": rng.normal(60, 10, n), "followup_days": rng.integers(30, 2000, n)})


def test_a_cox_model_that_does_not_converge_is_not_estimable_and_says_why():
    data = separated_cohort()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cox_hazard_ratio(data, ["marker", "age"])
    assert result.estimate is None
    assert result.not_estimable_reason.startswith("the model did not converge: ")
    assert result.events_exposed > 0 and result.events_unexposed > 0
    # Without the separating covariate the same persons give a published hazard ratio.
    assert cox_hazard_ratio(data, ["age"]).estimate is not None


def test_a_logistic_model_with_separation_is_not_estimable():
    data = separated_cohort()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = adjusted_odds_ratio(data, ["marker", "age"])
    assert result.estimate is None and result.not_estimable_reason.startswith("the model did not converge: ")
    published = adjusted_odds_ratio(data, ["age"])
    assert published.estimate is not None and published.ci_lower <= published.estimate <= published.ci_upper


def test_only_statsmodels_warnings_judge_a_fit_the_cox_fitter_reports_its_own():
    """No model is fitted by lifelines any more (cox_model.fit_cox returns its problems): a lifelines warning is
    no verdict on a fit and is passed on; a statsmodels convergence warning is kept as the fit's problem."""
    from lifelines.exceptions import ConvergenceWarning as LifelinesConvergenceWarning
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    with pytest.warns(LifelinesConvergenceWarning), caught_fit_warnings() as caught:
        warnings.warn("Newton-Raphson failed to converge sufficiently", LifelinesConvergenceWarning)
    assert caught.problems == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # kept, not passed on
        with caught_fit_warnings() as caught:
            warnings.warn("Maximum Likelihood optimization failed to converge", ConvergenceWarning)
    assert caught.problems == ["Maximum Likelihood optimization failed to converge"]


def test_a_poisson_model_below_the_events_per_variable_minimum_is_not_estimable():
    rng = np.random.default_rng(2)
    n = 600
    data = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(5)})
    data["exposure"] = rng.integers(0, 2, n)
    data["outcome"] = 0
    data.loc[data.index[:30:3], "outcome"] = 1  # 10 events, 6 coefficients
    data["followup_days"] = rng.integers(30, 2000, n)
    result = adjusted_incidence_rate_ratio(data, [f"x{i}" for i in range(5)])
    assert result.not_estimable_reason == "fewer than 10 events per variable for 6 coefficients (Peduzzi 1995/1996)"


@pytest.mark.parametrize("estimator", [odds_ratio_from_counts, risk_ratio_from_counts])
def test_a_2x2_table_without_events_in_one_row_is_not_estimable(estimator):
    result = estimator(4, 69, 0, 59)
    assert result.estimate is None and result.ci_lower is None and result.p_value is None
    assert result.not_estimable_reason == "no events among the unexposed: the ratio is 0 or infinite"
    assert estimator(4, 69, 1, 59).estimate is not None


def test_a_rate_ratio_with_no_events_on_one_side_is_not_estimable_but_a_zero_rate_is_a_rate():
    for events in ((0, 3), (3, 0), (0, 0)):
        result = incidence_rate_ratio_from_counts(events[0], 100.0, events[1], 120.0)
        assert result.estimate is None and result.not_estimable_reason.startswith("no events among the")
    rate = incidence_rate_from_counts(0, 500)
    assert rate.estimate == 0 and rate.not_estimable_reason is None


def test_an_estimate_outside_its_interval_or_infinite_is_withheld():
    outside = judged(EstimateResult("SR", "sequence ratio", 0.0, 0.017, 10.5, None, None, None, 2, 3))
    assert outside.estimate is None
    assert outside.not_estimable_reason == "the estimate lies outside its 95% CI"
    infinite = judged(EstimateResult("IRR", "rate ratio", math.inf, 0.5, math.inf, 0.1, 10, 10, 2, 3))
    assert infinite.estimate is None and infinite.not_estimable_reason.startswith("no finite estimate")


def site_row(site: str, **values) -> dict:
    return {"site": site, "study_id": "thiazide_vs_ccb", "exposure": "thiazide vs ccb", "outcome": "leg_cramps",
            **{c: None for c in RESULT_COLUMNS}, "method": "PS matched Cox", "analysis_id": "ps_matched_cox", "estimand": "hazard ratio",
            "suppressed": False, "suppressed_columns": None, **values}


def test_pooling_skips_rows_a_site_published_as_not_estimable():
    rows = pd.DataFrame([
        site_row("site_a", estimate=2.0, ci_lower=1.0, ci_upper=4.0),
        site_row("site_b", estimate=1.5, ci_lower=1.0, ci_upper=2.25),
        site_row("site_c", not_estimable_reason="no events among the unexposed: the ratio is 0 or infinite"),
    ])
    pooling = pool_site_associations(rows, {}, 11)
    [pooled] = pooling.pooled.to_dict("records")
    assert pooled["n_sites"] == 2 and pooled["sites"] == "site_a,site_b"
    assert pooled["fixed_estimate"] == pytest.approx(math.exp(
        np.average(np.log([2.0, 1.5]), weights=[1 / (math.log(4) / 3.919928) ** 2, 1 / (math.log(2.25) / 3.919928) ** 2])),
        rel=1e-5)
    assert any("not pooled at site_c (not estimable: no events among the unexposed" in note for note in pooling.notes)


@pytest.mark.parametrize("strata", [None, "stratum"])
def test_the_robust_standard_error_of_an_unweighted_cox_fit_equals_lifelines_sandwich(strata):
    """The rule's robust SE of an unweighted fit is the Cox fit's Lin-Wei sandwich (cox_model.py, from Efron's score
    residuals); without tied times it equals lifelines' robust SE."""
    from pipelines.statistics.cox_model import fit_cox

    rng = np.random.default_rng(4)
    n = 1500
    data = pd.DataFrame({"exposure": rng.integers(0, 2, n), "age": rng.normal(60, 10, n),
                         "female": rng.integers(0, 2, n), "stratum": rng.integers(0, 3, n)})
    hazard = np.exp(0.7 * data.exposure + 0.03 * (data.age - 60))
    data["years"] = rng.exponential(1 / hazard) * 2
    data["outcome"] = (data.years < 3).astype(int)
    data["years"] = data.years.clip(upper=3) + rng.uniform(0, 1e-6, n)  # no ties
    columns = ["exposure", "age", "female"]
    fitter = CoxPHFitter().fit(data[columns + ["years", "outcome"] + ([strata] if strata else [])], "years",
                               "outcome", robust=True, strata=[strata] if strata else None,
                               fit_options={"precision": 1e-14, "r_precision": 1e-18})  # both at the maximum
    mine = fit_cox(data[columns].to_numpy(float), data.years.to_numpy(), data.outcome.to_numpy(float),
                   strata=data[strata].to_numpy() if strata else None)
    assert np.sqrt(mine.robust_covariance[0, 0]) == pytest.approx(fitter.standard_errors_["exposure"], rel=1e-9)


def test_a_covariate_whose_holders_have_no_events_is_left_out_of_the_outcome_model():
    """72 users of a co-medication, none with the outcome: its Cox coefficient runs to minus infinity and the model
    does not converge; the study analysis leaves it out of the outcome model (and says so)."""
    from pipelines.statistics.study_analysis import _outcome_model_covariates

    rng = np.random.default_rng(8)
    n = 3000
    data = pd.DataFrame({"exposure": rng.integers(0, 2, n), "age": rng.normal(60, 10, n),
                         "followup_days": rng.integers(30, 2000, n)})
    data["outcome"] = (rng.random(n) < 0.1).astype(int)
    data["contraceptive"] = 0
    data.loc[data.index[data.outcome == 0][:72], "contraceptive"] = 1
    with_it = cox_hazard_ratio(data, ["age", "contraceptive"])
    assert with_it.estimate is None and with_it.not_estimable_reason.startswith("the model did not converge")
    dropped: set[str] = set()
    kept = _outcome_model_covariates(data, ["age", "contraceptive"], dropped)
    assert kept == ["age"] and dropped == {"contraceptive"}
    assert cox_hazard_ratio(data, kept).estimate is not None
