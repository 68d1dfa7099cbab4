"""Hazard ratios from Cox models (`cox_model.fit_cox`) and Kaplan-Meier curves (lifelines).

`cox_hazard_ratio` fits a Cox proportional-hazards model on time to first cramp (follow-up in years) with the
exposure and any covariates: Newton-Raphson on Efron's partial likelihood (Efron 1977; R survival's default), fitted
in numpy by `pipelines/statistics/cox_model.py` (module docstring for the conventions; it gives R's and lifelines'
estimates). The reported interval is the 95% Wald interval for exp(coef) from the chosen standard error. Every fit
also computes the robust (Lin & Wei 1989 sandwich) SE, so that `estimability.judged` can compare the two; a fit that
fails (singular information, an infinite estimate, no convergence) is not estimable with the fitter's reason.
Options:
- `strata`: a stratified Cox model (separate baseline hazard per stratum, e.g. propensity-score strata);
- `weights`: a column of case weights (e.g. IPTW); the robust (sandwich) variance is then used, because the
  model-based variance is wrong for non-integer weights (Austin 2016);
- `cluster`: a column identifying clusters (e.g. matched pairs); the robust variance is then clustered on it
  (Therneau & Grambsch 2000, R's `cluster()`);
- `robust`: the robust sandwich variance without clusters.
Every estimable hazard ratio carries the proportional-hazards check of its exposure term (Grambsch & Therneau's
scaled Schoenfeld residual test, `proportional_hazards.py`): `proportional_hazards_p_value` and the flag
`proportional_hazards_violated`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from scipy import stats

from pipelines.statistics.cox_model import fit_cox
from pipelines.statistics.estimability import ModelFit, decided_before_fitting, judged
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
from pipelines.statistics.proportional_hazards import PROPORTIONAL_HAZARDS_ALPHA, schoenfeld_test
from pipelines.statistics.results import EstimateResult

HAZARD_RATIO_ESTIMAND = "hazard ratio of first outcome, exposed vs unexposed"
# What fits the model, in every Cox method text (results.associations.method).
COX_FIT_NOTE = "Efron ties, Newton-Raphson"


def cox_hazard_ratio(
    data: pd.DataFrame,
    covariates: Sequence[str] = (),
    exposure: str = EXPOSURE,
    outcome: str = OUTCOME,
    followup_days: str = FOLLOWUP_DAYS,
    strata: str | None = None,
    weights: str | None = None,
    cluster: str | None = None,
    robust: bool = False,
    method: str | None = None,
    alpha: float = 0.05,
) -> EstimateResult:
    """Hazard ratio of first `outcome` for `exposure` from a Cox proportional-hazards model (Efron ties).

    Expects one row per person: `exposure` 0/1, `outcome` 0/1 (event at the end of follow-up or censored),
    `followup_days` >= 0, and the named covariates. `method` overrides the method text of the result.
    """
    needed = [exposure, outcome, followup_days, *covariates]
    needed += [column for column in (strata, weights, cluster) if column is not None]
    require_columns(data, needed)
    data = data.reset_index(drop=True)  # positional alignment of the columns built below

    design = pd.concat(
        [
            binary_column(data, exposure).rename(exposure),
            covariate_matrix(data, covariates),
        ],
        axis=1,
    ).astype(float)
    x = design.to_numpy(float)  # the exposure is column 0
    years = followup_years(data, followup_days).to_numpy(float)
    events = binary_column(data, outcome).to_numpy(float)
    case_weights = data[weights].astype(float).to_numpy() if weights is not None else None
    stratum = data[strata].to_numpy() if strata is not None else None
    robust = robust or weights is not None or cluster is not None
    variance_note = "model-based variance"
    if robust:
        variance_note = f"robust variance clustered on {cluster!r}" if cluster else "robust (sandwich) variance"

    if method is None:
        parts = [_covariate_note(covariates)]
        if strata is not None:
            parts.append(f"stratified by {strata!r}")
        if weights is not None:
            parts.append(f"weighted by {weights!r}")
        parts.append(variance_note)
        method = f"Cox proportional hazards ({'; '.join(parts)}; {COX_FIT_NOTE})"
    exposed = x[:, 0] == 1
    counts = {
        "n_exposed": to_int(exposed.sum()),
        "n_unexposed": to_int((~exposed).sum()),
        "events_exposed": to_int(events[exposed].sum()),
        "events_unexposed": to_int(events[~exposed].sum()),
        "person_years_exposed": float(years[exposed].sum()),
        "person_years_unexposed": float(years[~exposed].sum()),
    }
    estimand = HAZARD_RATIO_ESTIMAND
    parameters, event_count = x.shape[1], to_int(events.sum())
    unfitted = EstimateResult(method=method, estimand=estimand, estimate=None, ci_lower=None, ci_upper=None,
                              p_value=None, covariates=tuple(covariates), **counts)
    decided = decided_before_fitting(unfitted, ModelFit(parameters, event_count))
    if decided is not None:  # no events in a group, or too few per variable: withheld whatever the fit gives
        return decided
    fit = fit_cox(x, years, events, strata=stratum, weights=case_weights,
                  clusters=data[cluster].to_numpy() if cluster is not None else None, names=list(design.columns))
    if fit.problems:
        return judged(unfitted, ModelFit(parameters, event_count, convergence_problems=fit.problems))
    # Both standard errors for the rule; the interval uses the variance asked for.
    coefficient = float(fit.coefficients[0])
    model_se = float(np.sqrt(fit.covariance[0, 0]))
    robust_se = float(np.sqrt(max(fit.robust_covariance[0, 0], 0.0)))
    se = robust_se if robust else model_se
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(over="ignore"):  # a diverging coefficient gives inf, which judged() withholds
        result = EstimateResult(
            method=method,
            estimand=estimand,
            estimate=float(np.exp(coefficient)),
            ci_lower=float(np.exp(coefficient - z * se)),
            ci_upper=float(np.exp(coefficient + z * se)),
            p_value=float(stats.chi2.sf((coefficient / se) ** 2, 1)),
            se_log_estimate=se,
            covariates=tuple(covariates),
            **counts,
        )
    result = judged(result, ModelFit(parameters, event_count, model_se, robust_se))
    if not result.estimable:
        return result
    _, ph_p_value = schoenfeld_test(x, years, events, fit.coefficients, fit.covariance, 0,
                                    weights=case_weights, strata=stratum)
    if not np.isfinite(ph_p_value):
        return result
    return replace(result, proportional_hazards_p_value=ph_p_value,
                   proportional_hazards_violated=bool(ph_p_value < PROPORTIONAL_HAZARDS_ALPHA))


def _covariate_note(covariates: Sequence[str]) -> str:
    """The adjustment in a method text: how many covariates, not which (the set is `EstimateResult.covariates`,
    published in results.analysis_covariates, so that one analysis has one method text whatever its covariates)."""
    if not covariates:
        return "unadjusted"
    return f"adjusted for {len(covariates)} covariate{'' if len(covariates) == 1 else 's'}"


def kaplan_meier_by_exposure(
    data: pd.DataFrame,
    exposure: str = EXPOSURE,
    outcome: str = OUTCOME,
    followup_days: str = FOLLOWUP_DAYS,
    labels: tuple[str, str] = ("Unexposed", "Exposed"),
    weights: str | None = None,
) -> dict[str, KaplanMeierFitter]:
    """One fitted lifelines KaplanMeierFitter per exposure group, keyed by label (unexposed first).

    Time is in years. `weights` (e.g. IPTW) gives weighted curves.
    """
    require_columns(data, [exposure, outcome, followup_days] + ([weights] if weights else []))
    exposed = binary_column(data, exposure)
    events = binary_column(data, outcome)
    years = followup_years(data, followup_days)
    curves = {}
    for value, label in zip((0, 1), labels):
        group = exposed == value
        if not group.any():
            continue
        fitter = KaplanMeierFitter(label=label)
        fitter.fit(
            years[group],
            event_observed=events[group],
            weights=data.loc[group, weights] if weights else None,
        )
        curves[label] = fitter
    return curves
