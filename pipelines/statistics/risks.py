"""Risks at a fixed horizon from Kaplan-Meier, and their difference and ratio between two groups.

A risk (cumulative incidence) is published only at a stated horizon, never as a crude share of persons with an event
over follow-up of any length: crude odds and risk ratios ignore person-time, so they mix the effect with who was
followed longer. The target-trial literature (Hernan & Robins 2016; Hernan & Robins 2020, ch. 17) reports risks at
a horizon from Kaplan-Meier, beside the hazard and rate ratios CohortMethod publishes.

    risk(h)          1 - S(h), S the Kaplan-Meier estimate at day h (events and censoring on day t = followup_days)
    Var(S(h))        Greenwood: S(h)^2 sum_{t <= h} d_t / (n_t (n_t - d_t))
    risk interval    from the complementary log-log interval of S (lifelines' default, Kalbfleisch & Prentice)
    difference       r1 - r0, Wald interval with Var = Var1 + Var0 (independent groups)
    ratio            r1 / r0, Wald interval on the log scale, Var(log RR) = Var1 / r1^2 + Var0 / r0^2 (delta method)
A group whose follow-up all ends before the horizon has no Kaplan-Meier estimate there: its rows are not estimable.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from pipelines.statistics.estimability import judged
from pipelines.statistics.inputs import EXPOSURE, FOLLOWUP_DAYS, OUTCOME, binary_column, require_columns, to_int
from pipelines.statistics.results import EstimateResult

KAPLAN_MEIER_METHOD = "Kaplan-Meier risk at horizon (Greenwood variance)"


def kaplan_meier_at(followup_days: np.ndarray, events: np.ndarray, horizon_days: int) -> tuple[float, float, float]:
    """(S(h), Greenwood sum sum d/(n(n-d)), events by h) of one group; S is NaN when nobody is followed to h."""
    followup_days = np.asarray(followup_days, dtype=np.int64)
    events = np.asarray(events, dtype=np.int64)
    if len(followup_days) == 0 or followup_days.max() < horizon_days:
        return math.nan, math.nan, float(events[followup_days <= horizon_days].sum()) if len(events) else 0.0
    times, position = np.unique(followup_days, return_inverse=True)
    deaths = np.bincount(position, weights=events, minlength=len(times))
    at_risk = np.cumsum(np.bincount(position, minlength=len(times))[::-1])[::-1].astype(float)
    within = (times <= horizon_days) & (deaths > 0)
    d, n = deaths[within], at_risk[within]
    survival = float(np.prod(1 - d / n))
    with np.errstate(divide="ignore"):
        greenwood = float(np.sum(d / (n * (n - d))))  # infinite when a group's last persons all had the event
    return survival, greenwood, float(d.sum())


def _risk_interval(survival: float, greenwood: float, z: float) -> tuple[float, float]:
    """The risk's interval from the complementary log-log interval of S(h)."""
    if not 0 < survival < 1 or not math.isfinite(greenwood):
        return math.nan, math.nan
    spread = z * math.sqrt(greenwood) / abs(math.log(survival))
    return 1 - survival ** math.exp(-spread), 1 - survival ** math.exp(spread)


def risks_at_horizon(data: pd.DataFrame, horizon_days: int, groups: tuple[str, str] = ("exposed", "unexposed"),
                     exposure: str = EXPOSURE, outcome: str = OUTCOME, followup_days: str = FOLLOWUP_DAYS,
                     alpha: float = 0.05) -> list[EstimateResult]:
    """The risk by `horizon_days` of each group (exposed first), their difference and their ratio.

    `groups` names the exposed and the unexposed group in the estimands. One row per person, follow-up in days.
    """
    require_columns(data, [exposure, outcome, followup_days])
    exposed = binary_column(data, exposure).to_numpy() == 1
    events = binary_column(data, outcome).to_numpy()
    days = data[followup_days].to_numpy()
    z = float(stats.norm.ppf(1 - alpha / 2))
    label = f"{horizon_days} days"
    fits = {side: kaplan_meier_at(days[mask], events[mask], horizon_days)
            for side, mask in (("exposed", exposed), ("unexposed", ~exposed))}
    counts = {"n_exposed": to_int(exposed.sum()), "n_unexposed": to_int((~exposed).sum()),
              "events_exposed": to_int(fits["exposed"][2]), "events_unexposed": to_int(fits["unexposed"][2])}
    results = []
    risk, variance = {}, {}
    for side, group in zip(("exposed", "unexposed"), groups):
        survival, greenwood, _ = fits[side]
        risk[side] = 1 - survival
        variance[side] = survival ** 2 * greenwood
        lower, upper = _risk_interval(survival, greenwood, z)
        results.append(judged(EstimateResult(
            method=KAPLAN_MEIER_METHOD, estimand=f"risk at {label}, {group}",
            estimate=None if math.isnan(survival) else risk[side], ci_lower=lower, ci_upper=upper, p_value=None,
            **{f"n_{side}": counts[f"n_{side}"], f"events_{side}": counts[f"events_{side}"]},
            not_estimable_reason=None if not math.isnan(survival) else f"nobody {group} is followed to {label}")))
    r1, r0, v1, v0 = risk["exposed"], risk["unexposed"], variance["exposed"], variance["unexposed"]
    followed = not (math.isnan(r1) or math.isnan(r0))
    reason = None if followed else f"not every group is followed to {label}"
    with np.errstate(all="ignore"):
        difference = r1 - r0
        se_difference = math.sqrt(v1 + v0) if followed and math.isfinite(v1 + v0) else math.nan
        p_difference = float(2 * stats.norm.sf(abs(difference / se_difference))) if se_difference > 0 else None
        results.append(judged(EstimateResult(
            method=KAPLAN_MEIER_METHOD, estimand=f"risk difference at {label}, {groups[0]} minus {groups[1]}",
            estimate=difference if followed else None, ci_lower=difference - z * se_difference,
            ci_upper=difference + z * se_difference, p_value=p_difference, not_estimable_reason=reason, **counts)))
        ratio_estimable = followed and r1 > 0 and r0 > 0
        se_log_ratio = math.sqrt(v1 / r1 ** 2 + v0 / r0 ** 2) if ratio_estimable else math.nan
        log_ratio = math.log(r1 / r0) if ratio_estimable else math.nan
        results.append(judged(EstimateResult(
            method=KAPLAN_MEIER_METHOD, estimand=f"risk ratio at {label}, {groups[0]} vs {groups[1]}",
            estimate=math.exp(log_ratio) if ratio_estimable else None,
            ci_lower=math.exp(log_ratio - z * se_log_ratio), ci_upper=math.exp(log_ratio + z * se_log_ratio),
            p_value=float(2 * stats.norm.sf(abs(log_ratio / se_log_ratio))) if se_log_ratio > 0 else None,
            se_log_estimate=se_log_ratio if ratio_estimable else None, not_estimable_reason=reason, **counts)))
    return results
