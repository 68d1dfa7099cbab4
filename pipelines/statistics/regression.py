"""Covariate-adjusted odds ratio (logistic regression) and incidence rate ratio (Poisson regression).

Both are statsmodels maximum-likelihood models; the reported interval is the model's Wald interval for the
exposure coefficient, exponentiated (`conf_int()`), and the p-value its Wald test.
- `adjusted_odds_ratio`: logistic regression (statsmodels Logit, Newton-Raphson) of the 0/1 outcome on exposure +
  covariates. Same estimates and intervals as a GLM Binomial, but Newton steps on the 40x40 information matrix are
  about six times faster than GLM's IRLS least squares on the 250,000-row design (the screening study fits one
  model per exposure).
- `adjusted_incidence_rate_ratio`: GLM Poisson (log link) of the event count on exposure + covariates with
  log(person-years) as offset, so the exposure coefficient is a log rate ratio.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm

from pipelines.statistics.inputs import (
    EXPOSURE,
    FOLLOWUP_DAYS,
    OUTCOME,
    binary_column,
    covariate_matrix,
    followup_years,
    require_columns,
    to_int,
)
from pipelines.statistics.results import EstimateResult


def _design(data: pd.DataFrame, exposure: str, covariates: Sequence[str]) -> pd.DataFrame:
    """Intercept, exposure, then covariates (categorical ones as indicators)."""
    design = pd.concat(
        [binary_column(data, exposure).astype(float).rename(exposure), covariate_matrix(data, covariates)], axis=1
    )
    return sm.add_constant(design, prepend=True, has_constant="add")


def _covariate_note(covariates: Sequence[str]) -> str:
    return f"adjusted for {', '.join(covariates)}" if covariates else "no covariates"


def adjusted_odds_ratio(
    data: pd.DataFrame,
    covariates: Sequence[str],
    exposure: str = EXPOSURE,
    outcome: str = OUTCOME,
    alpha: float = 0.05,
) -> EstimateResult:
    """Odds ratio of `outcome` for `exposure` from a logistic regression on `covariates` (statsmodels Logit)."""
    require_columns(data, [exposure, outcome, *covariates])
    data = data.reset_index(drop=True)
    design = _design(data, exposure, covariates)
    has_outcome = binary_column(data, outcome)
    fit = sm.Logit(has_outcome.astype(float), design).fit(method="newton", disp=0)
    lower, upper = np.exp(fit.conf_int(alpha=alpha).loc[exposure])
    exposed = design[exposure] == 1
    return EstimateResult(
        method=f"Adjusted odds ratio, logistic regression ({_covariate_note(covariates)}; statsmodels Logit)",
        estimand="odds ratio, exposed vs unexposed, conditional on covariates",
        estimate=float(np.exp(fit.params[exposure])),
        ci_lower=float(lower),
        ci_upper=float(upper),
        p_value=float(fit.pvalues[exposure]),
        n_exposed=to_int(exposed.sum()),
        n_unexposed=to_int((~exposed).sum()),
        events_exposed=to_int(has_outcome[exposed].sum()),
        events_unexposed=to_int(has_outcome[~exposed].sum()),
    )


def adjusted_incidence_rate_ratio(
    data: pd.DataFrame,
    covariates: Sequence[str] = (),
    exposure: str = EXPOSURE,
    outcome: str = OUTCOME,
    followup_days: str = FOLLOWUP_DAYS,
    alpha: float = 0.05,
) -> EstimateResult:
    """Incidence rate ratio from a Poisson regression with log person-time offset (statsmodels GLM Poisson).

    `outcome` is the number of events per person (0/1 for a first event). Persons with zero follow-up add
    nothing to a rate and are left out.
    """
    require_columns(data, [exposure, outcome, followup_days, *covariates])
    data = data.reset_index(drop=True)
    years = followup_years(data, followup_days)
    keep = years > 0
    data, years = data[keep], years[keep]
    design = _design(data, exposure, covariates)
    events = data[outcome].astype(float)
    fit = sm.GLM(events, design, family=sm.families.Poisson(), offset=np.log(years)).fit()
    lower, upper = np.exp(fit.conf_int(alpha=alpha).loc[exposure])
    exposed = design[exposure] == 1
    return EstimateResult(
        method=f"Incidence rate ratio, Poisson regression with log person-time offset ({_covariate_note(covariates)}; "
        "statsmodels GLM Poisson)",
        estimand="incidence rate ratio, exposed vs unexposed, conditional on covariates",
        estimate=float(np.exp(fit.params[exposure])),
        ci_lower=float(lower),
        ci_upper=float(upper),
        p_value=float(fit.pvalues[exposure]),
        n_exposed=to_int(exposed.sum()),
        n_unexposed=to_int((~exposed).sum()),
        events_exposed=to_int(events[exposed].sum()),
        events_unexposed=to_int(events[~exposed].sum()),
        person_years_exposed=float(years[exposed].sum()),
        person_years_unexposed=float(years[~exposed].sum()),
    )
