"""Regression and survival estimators recover planted effects in simulated cohorts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.statistics import (
    adjusted_incidence_rate_ratio,
    adjusted_odds_ratio,
    cox_hazard_ratio,
    crude_odds_ratio,
    kaplan_meier_by_exposure,
)
from pipelines.testing.simulation import COHORT_COVARIATES, simulate_cohort


@pytest.fixture(scope="module")
def cohort_hr2() -> pd.DataFrame:
    # Exponential times with a planted hazard ratio of 2.0, confounded by age.
    return simulate_cohort(20_000, hazard_ratio=2.0, odds_ratio=2.0, seed=11)


@pytest.fixture(scope="module")
def cohort_null() -> pd.DataFrame:
    return simulate_cohort(20_000, hazard_ratio=1.0, odds_ratio=1.0, seed=12)


def test_cox_recovers_planted_hazard_ratio(cohort_hr2):
    result = cox_hazard_ratio(cohort_hr2, covariates=["age", "diabetes"])
    assert result.contains(2.0), result
    assert 1.8 < result.estimate < 2.2
    assert result.n_exposed + result.n_unexposed == 20_000
    assert result.events_exposed + result.events_unexposed == cohort_hr2.outcome.sum()
    assert result.person_years_exposed == pytest.approx(
        cohort_hr2.loc[cohort_hr2.exposure == 1, "followup_days"].sum() / 365.25
    )


def test_cox_null_exposure_interval_contains_one(cohort_null):
    result = cox_hazard_ratio(cohort_null, covariates=["age", "diabetes"])
    assert result.contains(1.0), result
    assert result.p_value > 0.05


def test_crude_cox_is_confounded_by_age(cohort_hr2):
    crude = cox_hazard_ratio(cohort_hr2)
    assert crude.ci_lower > 2.0  # older people are both exposed more often and at higher risk


def test_poisson_offset_model_recovers_rate_ratio(cohort_hr2):
    # Exponential times: the rate ratio equals the hazard ratio.
    result = adjusted_incidence_rate_ratio(cohort_hr2, covariates=["age", "diabetes"])
    assert result.contains(2.0), result
    assert result.person_years_exposed > 0


def test_logistic_regression_recovers_planted_odds_ratio(cohort_hr2, cohort_null):
    adjusted = adjusted_odds_ratio(cohort_hr2, COHORT_COVARIATES, outcome="outcome_binary")
    assert adjusted.contains(2.0), adjusted
    null = adjusted_odds_ratio(cohort_null, COHORT_COVARIATES, outcome="outcome_binary")
    assert null.contains(1.0), null
    crude = crude_odds_ratio(cohort_null, outcome="outcome_binary")
    assert crude.ci_lower > 1.0  # confounding by age makes the crude OR of a null exposure > 1


def test_categorical_covariates_become_indicators(cohort_null):
    data = cohort_null.assign(age_group=pd.cut(cohort_null.age, [0, 60, 70, 200]).astype(str))
    result = adjusted_odds_ratio(data, ["age_group", "diabetes"], outcome="outcome_binary")
    assert result.contains(1.0)


def test_weighted_and_clustered_cox_use_robust_variance(cohort_null):
    data = cohort_null.assign(weight=1.0, cluster=np.arange(len(cohort_null)) // 2)
    weighted = cox_hazard_ratio(data, covariates=["age"], weights="weight")
    plain = cox_hazard_ratio(data, covariates=["age"])
    assert weighted.estimate == pytest.approx(plain.estimate, rel=1e-6)
    assert "robust" in weighted.method
    clustered = cox_hazard_ratio(data, covariates=["age"], cluster="cluster")
    assert "clustered" in clustered.method


def test_missing_covariates_are_refused(cohort_null):
    data = cohort_null.copy()
    data.loc[0, "age"] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        cox_hazard_ratio(data, covariates=["age"])


def test_kaplan_meier_by_exposure(cohort_hr2):
    curves = kaplan_meier_by_exposure(cohort_hr2)
    assert list(curves) == ["Unexposed", "Exposed"]
    # The exposed group has the higher cumulative incidence at 2 years.
    survival_at_2 = {label: float(curve.predict(2.0)) for label, curve in curves.items()}
    assert survival_at_2["Exposed"] < survival_at_2["Unexposed"]


def test_result_prints_as_a_table(cohort_hr2):
    text = str(cox_hazard_ratio(cohort_hr2, covariates=["age"]))
    assert "95% CI lower" in text and "person-years" in text and "exposed" in text


def test_logistic_regression_equals_the_glm_binomial_fit(cohort_hr2):
    # The Newton-Raphson Logit is used for speed; it must give the GLM Binomial's estimate and Wald interval.
    import statsmodels.api as sm

    result = adjusted_odds_ratio(cohort_hr2, COHORT_COVARIATES, outcome="outcome_binary")
    design = sm.add_constant(cohort_hr2[["exposure", *COHORT_COVARIATES]].astype(float))
    glm = sm.GLM(cohort_hr2["outcome_binary"].astype(float), design, family=sm.families.Binomial()).fit()
    lower, upper = np.exp(glm.conf_int().loc["exposure"])
    assert (result.estimate, result.ci_lower, result.ci_upper) == pytest.approx(
        (np.exp(glm.params["exposure"]), lower, upper), rel=1e-6)
