"""Risks at a fixed horizon with death as a competing event (Aalen-Johansen), and their difference and ratio.

The Kaplan-Meier risk (risks.py) censors at death, so it estimates the risk in a world where nobody dies: where
death is common (the old, the very ill) it overstates the share of persons who actually have a cramp by the
horizon. The Aalen-Johansen estimator of the cumulative incidence function (Aalen & Johansen 1978; Putter, Fiocco &
Geskus, Stat Med 2007) counts a cramp only among persons still alive:

    F(h)        sum_{t_j <= h} S(t_j-) d1_j / n_j       S the Kaplan-Meier estimate of remaining free of both events
                                                         d1_j cramps, d_j cramps + deaths, n_j at risk on day t_j
    Var(F(h))   sum_{t_j <= h} [ (F(h) - F(t_j))^2 d_j / (n_j (n_j - d_j))
                                 + S(t_j-)^2 d1_j (n_j - d1_j) / n_j^3
                                 - 2 (F(h) - F(t_j)) S(t_j-) d1_j / n_j^2 ]
                the delta-method (Greenwood-type) variance of Marubini & Valsecchi 1995 and Collett 2015 (p. 411),
                as SAS PROC LIFETEST and lifelines' AalenJohansenFitter compute it
    interval    on the log(-log F) scale (as lifelines and R cmprsk), so it stays inside (0, 1)
    difference  F1 - F0, Wald with Var1 + Var0;  ratio  F1 / F0, Wald on the log scale (delta method)
A cramp and a death on the same day: the cramp counts (it is the first outcome). With no deaths F(h) equals the
Kaplan-Meier risk 1 - S(h). The Cox models stay cause-specific: death censors (docs/statistics.md).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from pipelines.statistics.estimability import judged
from pipelines.statistics.inputs import EXPOSURE, FOLLOWUP_DAYS, OUTCOME, binary_column, require_columns, to_int
from pipelines.statistics.results import EstimateResult

COMPETING_EVENT = "death"  # 1 = died during follow-up before any outcome (the follow-up ends at death)
AALEN_JOHANSEN_METHOD = "Aalen-Johansen cumulative incidence at horizon, death as competing event (delta-method variance)"


def aalen_johansen_at(durations: np.ndarray, events: np.ndarray, competing: np.ndarray,
                      horizon: float) -> tuple[float, float, float]:
    """(F(h), Var F(h), outcome events by h) of one group; F is NaN when nobody is followed to h.

    `events` 1 = the outcome at the end of follow-up, `competing` 1 = the competing event there (an outcome wins a
    tie), both 0 = censored."""
    durations = np.asarray(durations, dtype=float)
    events = np.asarray(events, dtype=float)
    competing = np.where(events > 0, 0.0, np.asarray(competing, dtype=float))
    if len(durations) == 0 or durations.max() < horizon:
        return math.nan, math.nan, float(events[durations <= horizon].sum()) if len(events) else 0.0
    times, position = np.unique(durations, return_inverse=True)
    outcomes = np.bincount(position, weights=events, minlength=len(times))
    any_event = outcomes + np.bincount(position, weights=competing, minlength=len(times))
    at_risk = np.cumsum(np.bincount(position, minlength=len(times))[::-1])[::-1].astype(float)
    keep = (times <= horizon) & (any_event > 0)
    d1, d, n = outcomes[keep], any_event[keep], at_risk[keep]
    survival_after = np.cumprod(1 - d / n)
    survival_before = np.concatenate([[1.0], survival_after[:-1]])
    incidence = np.cumsum(survival_before * d1 / n)  # F(t_j) at each event time up to h
    total = float(incidence[-1]) if len(incidence) else 0.0
    gap = total - incidence
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = d / (n * (n - d))  # infinite when everyone at risk had an event
        # F(h) - F(t_j) is 0 from the last outcome on: a term 0 x inf is 0 there, not NaN.
        spread = np.where(gap == 0, 0.0, gap ** 2 * greenwood)
        variance = float(np.sum(spread + survival_before ** 2 * d1 * (n - d1) / n ** 3
                                - 2 * gap * survival_before * d1 / n ** 2))
    return total, variance, float(d1.sum())


def _incidence_interval(incidence: float, variance: float, z: float) -> tuple[float, float]:
    """The interval of F on the log(-log F) scale."""
    if not 0 < incidence < 1 or not math.isfinite(variance) or variance < 0:
        return math.nan, math.nan
    spread = z * math.sqrt(variance) / (incidence * abs(math.log(incidence)))
    bounds = sorted(math.exp(-math.exp(math.log(-math.log(incidence)) + sign * spread)) for sign in (-1, 1))
    return bounds[0], bounds[1]


def cumulative_incidence_at_horizon(data: pd.DataFrame, horizon_days: int,
                                    groups: tuple[str, str] = ("exposed", "unexposed"), exposure: str = EXPOSURE,
                                    outcome: str = OUTCOME, competing_event: str = COMPETING_EVENT,
                                    followup_days: str = FOLLOWUP_DAYS, alpha: float = 0.05) -> list[EstimateResult]:
    """The Aalen-Johansen cumulative incidence by `horizon_days` of each group (exposed first), with death (the
    `competing_event` column) as a competing event, their difference and their ratio. One row per person."""
    require_columns(data, [exposure, outcome, competing_event, followup_days])
    exposed = binary_column(data, exposure).to_numpy() == 1
    events = binary_column(data, outcome).to_numpy()
    deaths = binary_column(data, competing_event).to_numpy()
    days = data[followup_days].to_numpy(dtype=float)
    z = float(stats.norm.ppf(1 - alpha / 2))
    label = f"{horizon_days} days"
    fits = {side: aalen_johansen_at(days[mask], events[mask], deaths[mask], horizon_days)
            for side, mask in (("exposed", exposed), ("unexposed", ~exposed))}
    counts = {"n_exposed": to_int(exposed.sum()), "n_unexposed": to_int((~exposed).sum()),
              "events_exposed": to_int(fits["exposed"][2]), "events_unexposed": to_int(fits["unexposed"][2])}
    results = []
    for side, group in zip(("exposed", "unexposed"), groups):
        incidence, variance, _ = fits[side]
        lower, upper = _incidence_interval(incidence, variance, z)
        followed = not math.isnan(incidence)
        results.append(judged(EstimateResult(
            method=AALEN_JOHANSEN_METHOD, estimand=f"cumulative incidence at {label} (death competing), {group}",
            estimate=incidence if followed else None, ci_lower=lower, ci_upper=upper, p_value=None,
            **{f"n_{side}": counts[f"n_{side}"], f"events_{side}": counts[f"events_{side}"]},
            not_estimable_reason=None if followed else f"nobody {group} is followed to {label}",
            analysis_id="aj_risk")))
    (f1, v1, _), (f0, v0, _) = fits["exposed"], fits["unexposed"]
    followed = not (math.isnan(f1) or math.isnan(f0))
    reason = None if followed else f"not every group is followed to {label}"
    with np.errstate(all="ignore"):
        difference = f1 - f0
        se_difference = math.sqrt(v1 + v0) if followed and math.isfinite(v1 + v0) and v1 + v0 >= 0 else math.nan
        results.append(judged(EstimateResult(
            method=AALEN_JOHANSEN_METHOD,
            estimand=f"cumulative incidence difference at {label} (death competing), {groups[0]} minus {groups[1]}",
            estimate=difference if followed else None, ci_lower=difference - z * se_difference,
            ci_upper=difference + z * se_difference,
            p_value=float(2 * stats.norm.sf(abs(difference / se_difference))) if se_difference > 0 else None,
            not_estimable_reason=reason, analysis_id="aj_risk_difference", **counts)))
        ratio_estimable = followed and f1 > 0 and f0 > 0
        se_log_ratio = math.sqrt(v1 / f1 ** 2 + v0 / f0 ** 2) if ratio_estimable else math.nan
        log_ratio = math.log(f1 / f0) if ratio_estimable else math.nan
        results.append(judged(EstimateResult(
            method=AALEN_JOHANSEN_METHOD,
            estimand=f"cumulative incidence ratio at {label} (death competing), {groups[0]} vs {groups[1]}",
            estimate=math.exp(log_ratio) if ratio_estimable else None,
            ci_lower=math.exp(log_ratio - z * se_log_ratio), ci_upper=math.exp(log_ratio + z * se_log_ratio),
            p_value=float(2 * stats.norm.sf(abs(log_ratio / se_log_ratio))) if se_log_ratio > 0 else None,
            se_log_estimate=se_log_ratio if ratio_estimable else None, not_estimable_reason=reason,
            analysis_id="aj_risk_ratio", **counts)))
    return results
