"""Hazard ratios from Cox models and Kaplan-Meier curves (lifelines).

`cox_hazard_ratio` fits lifelines' `CoxPHFitter` on time to first cramp (follow-up in years) with the exposure
and any covariates. The reported interval is lifelines' 95% Wald interval for exp(coef). Options map directly
to lifelines:
- `strata`: a stratified Cox model (separate baseline hazard per stratum, e.g. propensity-score strata);
- `weights`: a column of weights (e.g. IPTW); the robust (sandwich) variance is then used, as lifelines advises,
  because model-based variance is wrong for non-integer weights;
- `cluster`: a column identifying clusters (e.g. matched pairs); the robust variance is then clustered on it;
- `robust`: the robust sandwich variance without clusters.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter

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

# lifelines' own column names inside the frame we hand it.
_DURATION = "_followup_years"
_EVENT = "_event"
_WEIGHT = "_weight"
_CLUSTER = "_cluster"
_STRATUM = "_stratum"


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
        fit_options["robust"] = True
        variance_note = f"robust variance clustered on {cluster!r}" if cluster else "robust (sandwich) variance"

    fitter = CoxPHFitter(alpha=alpha)
    fitter.fit(frame, **fit_options)
    row = fitter.summary.loc[exposure]
    level = round(100 * (1 - alpha))

    if method is None:
        parts = [_covariate_note(covariates)]
        if strata is not None:
            parts.append(f"stratified by {strata!r}")
        if weights is not None:
            parts.append(f"weighted by {weights!r}")
        parts.append(variance_note)
        method = f"Cox proportional hazards ({'; '.join(parts)}; lifelines CoxPHFitter)"

    exposed = frame[exposure] == 1
    return EstimateResult(
        method=method,
        estimand="hazard ratio of first outcome, exposed vs unexposed",
        estimate=float(row["exp(coef)"]),
        ci_lower=float(row[f"exp(coef) lower {level}%"]),
        ci_upper=float(row[f"exp(coef) upper {level}%"]),
        p_value=float(row["p"]),
        n_exposed=to_int(exposed.sum()),
        n_unexposed=to_int((~exposed).sum()),
        events_exposed=to_int(frame.loc[exposed, _EVENT].sum()),
        events_unexposed=to_int(frame.loc[~exposed, _EVENT].sum()),
        person_years_exposed=float(frame.loc[exposed, _DURATION].sum()),
        person_years_unexposed=float(frame.loc[~exposed, _DURATION].sum()),
    )


def _covariate_note(covariates: Sequence[str]) -> str:
    return f"adjusted for {', '.join(covariates)}" if covariates else "unadjusted"


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
