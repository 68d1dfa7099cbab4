"""Empirical calibration of p-values and confidence intervals on negative controls, as OHDSI's EmpiricalCalibration
R package does it.

Negative controls are exposure-outcome pairs believed to have no causal effect (true ratio 1). Their estimates
scatter around 1 by random error (each estimate's own standard error) and by systematic error (confounding,
selection and measurement bias the design did not remove). The systematic error is modelled as N(mu, sigma^2) on
the log scale (the empirical null distribution), fitted by maximum likelihood with each control's standard error
in the likelihood (Schuemie MJ, Ryan PB, DuMouchel W, Suchard MA, Madigan D. Stat Med 2014;33:209-18;
EmpiricalCalibration `fitNull`):

    log L(mu, sigma) = sum_i log phi(logRr_i; mu, sqrt(sigma^2 + se_i^2))

- calibrated p-value (`calibrateP`): two-sided, of the estimate against the null distribution widened by its own
  standard error: p = 2 min(Phi(z), 1 - Phi(z)) with z = (logRr - mu) / sqrt(sigma^2 + se^2);
- calibrated confidence interval (Schuemie MJ, Hripcsak G, Ryan PB, Madigan D, Suchard MA. PNAS 2018;115:2571-7;
  `calibrateConfidenceInterval` with the model of `convertNullToErrorModel(null)`, i.e. meanSlope = 1 and
  sdSlope = 0: the systematic error is the same at every true effect size, the assumption the package makes when
  only negative controls are available): the calibrated log estimate is logRr - mu and its 95% limits
  logRr - mu -/+ 1.96 sqrt(sigma^2 + se^2). This is the root the package's `uniroot` finds, written in closed form.

numpy and scipy only; the optimiser differs from R's `optim` (L-BFGS-B on (mu, sigma) with sigma >= 0, from two
starting points), the likelihood is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

Z_95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class NullDistribution:
    """The systematic-error distribution N(mean, sd^2) of log estimates under the null, and the controls behind it."""

    mean: float
    sd: float
    controls: int


def _usable(log_estimates, standard_errors) -> tuple[np.ndarray, np.ndarray]:
    """The controls with a finite log estimate and a finite, positive standard error (fitNull drops the others)."""
    log_estimates = np.asarray(log_estimates, dtype=float)
    standard_errors = np.asarray(standard_errors, dtype=float)
    if log_estimates.shape != standard_errors.shape:
        raise ValueError("log estimates and standard errors must have the same length")
    keep = np.isfinite(log_estimates) & np.isfinite(standard_errors) & (standard_errors > 0)
    return log_estimates[keep], standard_errors[keep]


def null_log_likelihood(mean: float, sd: float, log_estimates, standard_errors) -> float:
    """log L(mean, sd) of the controls: each log estimate ~ N(mean, sd^2 + se^2) (EmpiricalCalibration's Gaussian
    product of the null and the estimate's sampling distribution)."""
    log_estimates, standard_errors = _usable(log_estimates, standard_errors)
    variance = sd ** 2 + standard_errors ** 2
    return float(np.sum(-0.5 * np.log(2 * math.pi * variance) - (log_estimates - mean) ** 2 / (2 * variance)))


def fit_null(log_estimates, standard_errors) -> NullDistribution:
    """The maximum-likelihood empirical null distribution of negative-control estimates (EmpiricalCalibration
    `fitNull`). Controls without a finite estimate and standard error are left out; at least one must remain."""
    log_estimates, standard_errors = _usable(log_estimates, standard_errors)
    if len(log_estimates) == 0:
        raise ValueError("no negative control with a finite estimate and standard error")

    def negative(theta: np.ndarray) -> float:
        variance = theta[1] ** 2 + standard_errors ** 2
        return float(np.sum(0.5 * np.log(variance) + (log_estimates - theta[0]) ** 2 / (2 * variance)))

    weights = 1 / standard_errors ** 2
    weighted_mean = float(np.sum(weights * log_estimates) / np.sum(weights))
    spread = float(np.std(log_estimates)) if len(log_estimates) > 1 else 0.0
    best = None
    for start in ((weighted_mean, max(spread, 0.1)), (weighted_mean, 0.01)):
        fit = optimize.minimize(negative, np.array(start), method="L-BFGS-B",
                                bounds=[(None, None), (0.0, None)])
        if best is None or fit.fun < best.fun:
            best = fit
    return NullDistribution(mean=float(best.x[0]), sd=float(abs(best.x[1])), controls=len(log_estimates))


def calibrated_p_value(null: NullDistribution, log_estimate: float, standard_error: float) -> float:
    """Two-sided p-value of an estimate against the empirical null (EmpiricalCalibration `calibrateP`)."""
    z = (log_estimate - null.mean) / math.sqrt(null.sd ** 2 + standard_error ** 2)
    return float(2 * min(stats.norm.cdf(z), stats.norm.sf(z)))


def calibrated_confidence_interval(null: NullDistribution, log_estimate: float,
                                   standard_error: float) -> tuple[float, float, float]:
    """(estimate, lower, upper) on the ratio scale, calibrated with the systematic error model of the null
    (EmpiricalCalibration `calibrateConfidenceInterval(convertNullToErrorModel(null))`)."""
    centre = log_estimate - null.mean
    half_width = Z_95 * math.sqrt(null.sd ** 2 + standard_error ** 2)
    return math.exp(centre), math.exp(centre - half_width), math.exp(centre + half_width)
