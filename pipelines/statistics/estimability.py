"""When an estimate may be published: the one rule every estimator applies before it returns (docs/statistics.md).

A comparative estimate (a ratio of two groups, or of two sequence orders) is published only when
1. both groups have events (both sequence orders have pairs): with zero events on one side the maximum-likelihood
   ratio is 0 or infinite, and a model reports whatever its optimiser stopped at (HR 2.6e7 from 4 vs 0 events);
2. a regression model has at least MIN_EVENTS_PER_VARIABLE events per estimated coefficient (Peduzzi et al. 1995
   for Cox, 1996 for logistic regression: below 10, coefficients are biased and Wald intervals do not cover);
   for logistic regression the events are the rarer of the two outcome levels;
3. the model converged: the Cox fits return their failures as problems (`cox_model.fit_cox`: a constant covariate,
   singular information, an infinite estimate from separation, no convergence; the counting-process fit of
   time_varying.py: singular information, no convergence); the logistic and Poisson fits (statsmodels,
   regression.py) have their convergence and separation warnings caught while fitting (`caught_fit_warnings`).
   Either becomes the reason, instead of scrolling past in a log;
4. the model-based and robust (sandwich) standard errors of the exposure coefficient agree within a factor of
   MAX_STANDARD_ERROR_RATIO: a larger disagreement means the likelihood is flat (separation) or the model is badly
   misspecified (King & Roberts 2015), and neither interval can be trusted;
5. the estimate and both bounds are finite and the estimate lies inside its interval.
Otherwise the estimate, its interval and p-value are withheld (None, NULL when published) and
`not_estimable_reason` says why. Single-group rates are not comparisons: zero events is a valid rate of 0.
A reason names no count, but it is still a function of the counts (rule 2 with the published covariate list says
the events are fewer than 10 per coefficient; an estimable row says they are not): where small-cell suppression
hides a row's counts, the reason is hidden with the estimate (results.DERIVED_COLUMNS), and the row is withheld,
not "not estimable".
Crude 2x2 ratios, exact rate ratios and sequence ratios are not regression models, so rules 3-4 do not apply.
Rules 1-2 depend on the counts only and are checked first, so a model they withhold is not fitted at all
(`decided_before_fitting`): its row and reason are the same as after a fit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from pipelines.statistics.results import EstimateResult

# Peduzzi et al. 1995 (J Clin Epidemiol 48:1503, Cox) and 1996 (J Clin Epidemiol 49:1373, logistic).
MIN_EVENTS_PER_VARIABLE = 10
# Largest allowed ratio between the model-based and the robust standard error of the exposure coefficient.
MAX_STANDARD_ERROR_RATIO = 2.0


@dataclass(frozen=True)
class ModelFit:
    """What a regression fit tells about its own reliability, for the rule above."""

    parameters: int  # coefficients estimated (exposure + covariate columns; no intercept or baseline hazard)
    events: int  # the events that limit the model: Cox, events; logistic, the rarer outcome level
    standard_error: float | None = None  # model-based SE of the exposure coefficient (log scale)
    robust_standard_error: float | None = None  # sandwich SE of the same coefficient
    # Why the fit cannot be trusted: the Cox fitter's problems, or a statsmodels fit's caught warnings or error.
    convergence_problems: tuple[str, ...] = ()


class FitWarnings:
    """Collects the convergence and separation warnings of a statsmodels fit (see `caught_fit_warnings`)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, text: str) -> None:
        line = " ".join(str(text).split())[:240]
        if line not in self.problems:
            self.problems.append(line)


@contextmanager
def caught_fit_warnings() -> Iterator[FitWarnings]:
    """Run a statsmodels fit (the logistic and Poisson models of regression.py), keeping its convergence and
    separation warnings as problems instead of letting them pass. Other warnings are passed on unchanged. (The Cox
    fits return their problems themselves: cox_model.py, time_varying.py.)
    """
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning as StatsmodelsConvergenceWarning,
        HessianInversionWarning,
        PerfectSeparationWarning,
    )

    caught = FitWarnings()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        yield caught
    for record in records:
        if issubclass(record.category, (StatsmodelsConvergenceWarning, HessianInversionWarning,
                                        PerfectSeparationWarning)):
            caught.add(str(record.message))
            continue
        warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)


def sandwich_standard_error(design: np.ndarray, residuals: np.ndarray, covariance: np.ndarray, column: int) -> float:
    """Robust (HC0 sandwich) SE of one coefficient of a canonical-link GLM: V X' diag(r^2) X V, where V is the
    model-based covariance and r = y - fitted (each person's score is r x)."""
    scores = design * residuals[:, None]
    meat = scores.T @ scores
    robust = covariance @ meat @ covariance
    return float(math.sqrt(max(robust[column, column], 0.0)))


def not_estimable_reason(result: EstimateResult, fit: ModelFit | None = None) -> str | None:
    """Why `result` must not be published as a number (None: it may be). The rule of the module docstring."""
    reason = _reason_from_counts(result, fit)
    if reason is not None:
        return reason
    if fit is not None:
        if fit.convergence_problems:
            return "the model did not converge: " + "; ".join(fit.convergence_problems)
        model_se, robust_se = fit.standard_error, fit.robust_standard_error
        if model_se is not None and robust_se is not None:
            if not (math.isfinite(model_se) and math.isfinite(robust_se)) or min(model_se, robust_se) <= 0:
                return "no usable standard error (model-based or robust)"
            ratio = max(model_se, robust_se) / min(model_se, robust_se)
            if ratio > MAX_STANDARD_ERROR_RATIO:
                # No values: a standard error recomputes the counts behind it (SE of a log rate ratio = sqrt(1/a + 1/c)).
                return (f"model-based and robust standard errors differ by more than a factor of "
                        f"{MAX_STANDARD_ERROR_RATIO:g}: the likelihood is flat or the model misfits")
    values = (result.estimate, result.ci_lower, result.ci_upper)
    if any(v is None or not math.isfinite(v) for v in values):
        return "no finite estimate and 95% CI"
    if not result.ci_lower <= result.estimate <= result.ci_upper:
        return "the estimate lies outside its 95% CI"
    return None


def _reason_from_counts(result: EstimateResult, fit: ModelFit | None) -> str | None:
    """Rules 1 and 2: what the counts decide, whatever a model fit would give."""
    comparative = result.events_exposed is not None and result.events_unexposed is not None
    sequence = result.n_exposed is None and result.n_unexposed is None and "sequence ratio" in result.estimand
    if comparative and (result.events_exposed == 0 or result.events_unexposed == 0):
        # Reasons name no count of persons: a count hidden as a small cell must not reappear here
        # (docs/disclosure.md). Zero is not a small cell, so which side has none may be said.
        if sequence:
            missing = "index drug first" if result.events_exposed == 0 else "marker first"
            return f"no pairs with the {missing}: the ratio is 0 or infinite"
        missing = "exposed" if result.events_exposed == 0 else "unexposed"
        if result.events_exposed == 0 and result.events_unexposed == 0:
            missing = "exposed nor the unexposed"
        if "difference" in result.estimand:
            return f"no events among the {missing}: a risk of 0 has no Greenwood variance"
        return f"no events among the {missing}: the ratio is 0 or infinite"
    if fit is not None and fit.parameters > 0 and fit.events / fit.parameters < MIN_EVENTS_PER_VARIABLE:
        coefficients = f"{fit.parameters} coefficient{'' if fit.parameters == 1 else 's'}"
        return f"fewer than {MIN_EVENTS_PER_VARIABLE} events per variable for {coefficients} (Peduzzi 1995/1996)"
    return None


def decided_before_fitting(unfitted: EstimateResult, fit: ModelFit) -> EstimateResult | None:
    """`unfitted` (a model's counts and covariates, no estimate) as published when its counts alone decide the rule:
    rules 1-2 are checked before rules 3-5, so a fitted model would be withheld with the same reason whatever its fit
    gave, and need not be fitted. `fit` carries the parameters and events only. None: the model must be fitted."""
    if _reason_from_counts(unfitted, fit) is None:
        return None
    return judged(unfitted, fit)


def judged(result: EstimateResult, fit: ModelFit | None = None) -> EstimateResult:
    """`result` as it may be published: unchanged, or with estimate, CI and p-value withheld and the reason set."""
    if result.not_estimable_reason is not None:
        return result
    reason = not_estimable_reason(result, fit)
    if reason is None:
        return result
    return replace(result, estimate=None, ci_lower=None, ci_upper=None, p_value=None, se_log_estimate=None,
                   not_estimable_reason=reason)
