"""Hazard ratios from Cox models and Kaplan-Meier curves (lifelines).

`cox_hazard_ratio` fits lifelines' `CoxPHFitter` on time to first cramp (follow-up in years) with the exposure
and any covariates. The reported interval is the 95% Wald interval for exp(coef) (lifelines' own, recomputed from the
chosen standard error). Every fit also computes the robust (sandwich) SE, so that `estimability.judged` can compare
the two; convergence warnings are caught and make the result not estimable. Options map directly to lifelines:
- `strata`: a stratified Cox model (separate baseline hazard per stratum, e.g. propensity-score strata);
- `weights`: a column of weights (e.g. IPTW); the robust (sandwich) variance is then used, as lifelines advises,
  because model-based variance is wrong for non-integer weights;
- `cluster`: a column identifying clusters (e.g. matched pairs); the robust variance is then clustered on it;
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
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError
from scipy import stats

from pipelines.statistics.estimability import ModelFit, caught_fit_warnings, decided_before_fitting, judged
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

# lifelines' own column names inside the frame we hand it.
_DURATION = "_followup_years"
_EVENT = "_event"
_WEIGHT = "_weight"
_CLUSTER = "_cluster"
_STRATUM = "_stratum"
HAZARD_RATIO_ESTIMAND = "hazard ratio of first outcome, exposed vs unexposed"


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
    """Hazard ratio of first `outcome` for `exposure` from a Cox proportional-hazards model (lifelines).

    Expects one row per person: `exposure` 0/1, `outcome` 0/1 (event at the end of follow-up or censored),
    `followup_days` >= 0, and the named covariates. `method` overrides the method text of the result.
    """
    needed = [exposure, outcome, followup_days, *covariates]
    needed += [column for column in (strata, weights, cluster) if column is not None]
    require_columns(data, needed)
    data = data.reset_index(drop=True)  # positional alignment of the columns built below

    frame = pd.concat(
        [
            binary_column(data, exposure).rename(exposure),
            covariate_matrix(data, covariates),
        ],
        axis=1,
    ).astype(float)
    frame[_DURATION] = followup_years(data, followup_days)
    frame[_EVENT] = binary_column(data, outcome)
    fit_options: dict = {"duration_col": _DURATION, "event_col": _EVENT}
    variance_note = "model-based variance"
    if strata is not None:
        frame[_STRATUM] = data[strata].to_numpy()
        fit_options["strata"] = [_STRATUM]
    if weights is not None:
        frame[_WEIGHT] = data[weights].astype(float).to_numpy()
        fit_options["weights_col"] = _WEIGHT
        robust = True
    if cluster is not None:
        frame[_CLUSTER] = data[cluster].to_numpy()
        fit_options["cluster_col"] = _CLUSTER
        robust = True
    if robust:
        variance_note = f"robust variance clustered on {cluster!r}" if cluster else "robust (sandwich) variance"

    if method is None:
        parts = [_covariate_note(covariates)]
        if strata is not None:
            parts.append(f"stratified by {strata!r}")
        if weights is not None:
            parts.append(f"weighted by {weights!r}")
        parts.append(variance_note)
        method = f"Cox proportional hazards ({'; '.join(parts)}; lifelines CoxPHFitter)"
    exposed = frame[exposure] == 1
    counts = {
        "n_exposed": to_int(exposed.sum()),
        "n_unexposed": to_int((~exposed).sum()),
        "events_exposed": to_int(frame.loc[exposed, _EVENT].sum()),
        "events_unexposed": to_int(frame.loc[~exposed, _EVENT].sum()),
        "person_years_exposed": float(frame.loc[exposed, _DURATION].sum()),
        "person_years_unexposed": float(frame.loc[~exposed, _DURATION].sum()),
    }
    estimand = HAZARD_RATIO_ESTIMAND
    parameters = len(frame.columns) - len([c for c in (_DURATION, _EVENT, _STRATUM, _WEIGHT, _CLUSTER)
                                           if c in frame.columns])
    events = to_int(frame[_EVENT].sum())
    unfitted = EstimateResult(method=method, estimand=estimand, estimate=None, ci_lower=None, ci_upper=None,
                              p_value=None, covariates=tuple(covariates), **counts)
    decided = decided_before_fitting(unfitted, ModelFit(parameters, events))
    if decided is not None:  # no events in a group, or too few per variable: withheld whatever the fit gives
        return decided
    # lifelines keeps the model-based (inverse information) variance in variance_matrix_ also when it reports the
    # robust one; a fit without robust variance gets its sandwich SE from `_robust_standard_error`, since lifelines'
    # own takes minutes beyond 50,000 persons. The rule compares the two; the interval uses the variance asked for.
    fitter = CoxPHFitter(alpha=alpha)
    with caught_fit_warnings() as caught:
        try:
            fitter.fit(frame, **fit_options, robust=robust)
        except (ConvergenceError, np.linalg.LinAlgError) as error:
            caught.add(f"{type(error).__name__}: {str(error).splitlines()[0]}")
    if not hasattr(fitter, "params_"):  # the fit stopped with an error
        return judged(unfitted, ModelFit(parameters, events, convergence_problems=tuple(caught.problems)))
    coefficient = float(fitter.params_[exposure])
    model_se = float(np.sqrt(fitter.variance_matrix_.loc[exposure, exposure]))
    if robust:
        robust_se = float(fitter.standard_errors_[exposure])
    else:
        columns = list(fitter.params_.index)
        robust_se = _robust_standard_error(
            frame[columns].to_numpy(float), frame[_DURATION].to_numpy(float), frame[_EVENT].to_numpy(float),
            fitter.params_.to_numpy(float), fitter.variance_matrix_.to_numpy(float), columns.index(exposure),
            frame[_STRATUM].to_numpy() if strata is not None else None)
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
    result = judged(result, ModelFit(parameters, events, model_se, robust_se, tuple(caught.problems)))
    if not result.estimable:
        return result
    columns = list(fitter.params_.index)
    _, ph_p_value = schoenfeld_test(
        frame[columns].to_numpy(float), frame[_DURATION].to_numpy(float), frame[_EVENT].to_numpy(float),
        fitter.params_.to_numpy(float), fitter.variance_matrix_.to_numpy(float), columns.index(exposure),
        weights=frame[_WEIGHT].to_numpy(float) if weights is not None else None,
        strata=frame[_STRATUM].to_numpy() if strata is not None else None)
    if not np.isfinite(ph_p_value):
        return result
    return replace(result, proportional_hazards_p_value=ph_p_value,
                   proportional_hazards_violated=bool(ph_p_value < PROPORTIONAL_HAZARDS_ALPHA))


def _robust_standard_error(x: np.ndarray, durations: np.ndarray, events: np.ndarray, beta: np.ndarray,
                           covariance: np.ndarray, column: int, strata: np.ndarray | None = None) -> float:
    """Robust (Lin-Wei sandwich) SE of coefficient `column` of an unweighted Cox fit, from score residuals.

    The robust variance of coefficient e is sum_i (V r_i)_e^2, with r_i person i's score residual and V the
    model-based covariance; (V r_i)_e = r_i . v with v = V[:, e], so only the scalar a_i = x_i . v is needed:
        u_i = d_i (a_i - m(T_i)) - w_i (a_i H(T_i) - G(T_i)),
    with w = exp(x beta), m(t) = sum_{risk set} w a / sum_{risk set} w, H(t) = sum_{event times s <= t} d(s) / S0(s)
    and G(t) = sum_{s <= t} d(s) m(s) / S0(s) (Breslow's handling of ties; lifelines fits Efron's, which differs
    only with tied event times). Strata have their own risk sets.
    """
    a = x @ covariance[:, column]
    w = np.exp(x @ beta - (x @ beta).max())  # a common factor cancels in m, and w H is scale-free
    total = 0.0
    for rows in ([np.arange(len(a))] if strata is None else
                 [np.flatnonzero(strata == value) for value in np.unique(strata)]):
        t, d, aa, ww = durations[rows], events[rows], a[rows], w[rows]
        times, position = np.unique(t, return_inverse=True)  # ascending distinct times
        # Risk-set sums at each distinct time: everyone with T >= t.
        s0 = np.cumsum(np.bincount(position, weights=ww, minlength=len(times))[::-1])[::-1]
        s1 = np.cumsum(np.bincount(position, weights=ww * aa, minlength=len(times))[::-1])[::-1]
        deaths = np.bincount(position, weights=d, minlength=len(times))
        mean = s1 / s0
        h = np.cumsum(deaths / s0)
        g = np.cumsum(deaths * mean / s0)
        u = d * (aa - mean[position]) - ww * (aa * h[position] - g[position])
        total += float(np.sum(u ** 2))
    return float(np.sqrt(total))


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
