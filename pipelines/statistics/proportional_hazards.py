"""The proportional-hazards check of a Cox model's exposure term: Grambsch & Therneau's scaled Schoenfeld residual test.

Grambsch & Therneau (Biometrika 1994;81:515) show that the scaled Schoenfeld residual of event k,
r*_k = beta + d V r_k (r_k = x_k - the risk-set mean of x at t_k, V the model-based covariance, d the events),
has expectation beta(t_k): a hazard ratio that changes over follow-up shows as a trend of r*_k in time. The test of
no trend against a transform g of time, for coefficient e, is

    T = (sum_k (g_k - mean g) r*_ke)^2 / (d V_ee sum_k (g_k - mean g)^2)   ~ chi-squared, 1 df,

the per-coefficient test of R survival's cox.zph before version 3.0 (2019) and of lifelines'
`proportional_hazard_test`, which it equals without tied event times (tests/statistics/test_proportional_hazards.py).
It is computed here in numpy because lifelines' residuals loop over every person in Python (minutes on the
250,000-person model samples).

Choices:
- time transform: g = 1 - KM(t-), one minus the Kaplan-Meier estimate of everyone just before the event time (R
  cox.zph's default "km"). It spreads the events evenly in [0, 1), so a few late events on long follow-up do not
  dominate the test as they do with identity time; lifelines' default, the rank of the event, behaves alike.
- ties: the risk-set means are Breslow's (every tied event sees the whole risk set); the model is fitted with
  Efron's (`cox_model.py`), which differs only with tied event times.
- strata: risk sets within each stratum; the time transform over everyone, as cox.zph does.
- weights (IPTW): risk-set means, event sums and d weighted. With weights the model-based V is not the estimate's
  variance, so the test is then an approximate diagnostic.
A p-value below PROPORTIONAL_HAZARDS_ALPHA flags the estimate (`proportional_hazards_violated`): its hazard ratio
then averages a ratio that changes over follow-up (Stensrud & Hernan, JAMA 2020). The estimate is still published.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# Below this p-value of the scaled Schoenfeld residual test the exposure's hazard ratio is flagged as non-proportional.
PROPORTIONAL_HAZARDS_ALPHA = 0.05
TIME_TRANSFORMS = ("km", "rank", "identity")
TIME_TRANSFORM = "km"


def event_time_transform(durations: np.ndarray, events: np.ndarray, weights: np.ndarray | None = None,
                         transform: str = TIME_TRANSFORM) -> np.ndarray:
    """g(t_k) of every person with an event, in row order: "km" 1 - KM(t_k-) of everyone (weighted when weights are
    given), "rank" the event's rank among the events (ties share one rank), "identity" the time itself."""
    durations = np.asarray(durations, dtype=float)
    events = np.asarray(events, dtype=float)
    event_times = durations[events > 0]
    if transform == "identity":
        return event_times
    if transform == "rank":
        return stats.rankdata(event_times, method="min").astype(float)
    if transform != "km":
        raise ValueError(f"time transform {transform!r} is not one of {', '.join(TIME_TRANSFORMS)}")
    w = np.ones_like(durations) if weights is None else np.asarray(weights, dtype=float)
    times, position = np.unique(durations, return_inverse=True)
    deaths = np.bincount(position, weights=w * events, minlength=len(times))
    at_risk = np.cumsum(np.bincount(position, weights=w, minlength=len(times))[::-1])[::-1]
    survival_after = np.cumprod(1 - deaths / at_risk)
    survival_before = np.concatenate([[1.0], survival_after[:-1]])
    return 1 - survival_before[position[events > 0]]


def schoenfeld_test(x: np.ndarray, durations: np.ndarray, events: np.ndarray, beta: np.ndarray,
                    covariance: np.ndarray, column: int, weights: np.ndarray | None = None,
                    strata: np.ndarray | None = None, transform: str = TIME_TRANSFORM) -> tuple[float, float]:
    """(chi-squared statistic, p-value) of the scaled Schoenfeld residual test of coefficient `column` of a fitted
    Cox model (module docstring). `x` holds the model's columns in the order of `beta` and `covariance`."""
    x = np.asarray(x, dtype=float)
    durations = np.asarray(durations, dtype=float)
    events = np.asarray(events, dtype=float)
    w = np.ones(len(durations)) if weights is None else np.asarray(weights, dtype=float)
    v = np.asarray(covariance, dtype=float)[:, column]
    a = x @ v  # (V r_k)_e = a_k - risk-set mean of a: only this scalar per person is needed
    linear = x @ np.asarray(beta, dtype=float)
    risk = w * np.exp(linear - linear.max())  # a common factor cancels in the risk-set means
    scaled = np.zeros(len(durations))
    groups = [np.arange(len(durations))] if strata is None else \
        [np.flatnonzero(strata == value) for value in np.unique(strata)]
    for rows in groups:
        t, r, aa = durations[rows], risk[rows], a[rows]
        times, position = np.unique(t, return_inverse=True)
        s0 = np.cumsum(np.bincount(position, weights=r, minlength=len(times))[::-1])[::-1]
        s1 = np.cumsum(np.bincount(position, weights=r * aa, minlength=len(times))[::-1])[::-1]
        scaled[rows] = aa - (s1 / s0)[position]
    has_event = events > 0
    event_weights = w[has_event]
    d = float(event_weights.sum())
    g = event_time_transform(durations, events, weights, transform)
    g = g - np.sum(event_weights * g) / d
    residuals = d * scaled[has_event]  # the trend-free part beta_e drops out against centred g
    denominator = d * float(covariance[column][column]) * float(np.sum(event_weights * g ** 2))
    if not denominator > 0:
        return float("nan"), float("nan")
    statistic = float(np.sum(event_weights * g * residuals) ** 2 / denominator)
    return statistic, float(stats.chi2.sf(statistic, 1))
