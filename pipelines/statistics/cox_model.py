"""The Cox proportional-hazards fit behind every at-index hazard ratio: Newton-Raphson on Efron's partial likelihood,
vectorised in numpy.

`fit_cox` replaces lifelines' `CoxPHFitter`, whose Efron step loops in Python over rows and tie groups (78% of the
statistics stage's samples at 20,000 persons, issue #21). The rows are sorted once by stratum and time; every sum over
a risk set is a reverse cumulative sum over the groups of rows sharing a time, and Efron's tie correction is one term
per event (arrays over all events at once), so an iteration is a few matrix products over the rows.

Conventions (what R survival's `coxph` computes; tests/statistics/test_cox_model.py compares R's published fit of the
Rossi data, R survival 3.5-3's output on seeded data with heavy ties, strata, weights and clusters, and lifelines):
- ties: Efron (1977), the default of R and lifelines. D events tied at t contribute D terms; term k (0 <= k < D)
  removes k/D of the tied events' risk from the risk set. With case weights each term carries the tied events' mean
  weight (R's coxfit6.c and lifelines alike).
- strata: each stratum has its own risk sets (its own baseline hazard); the log-likelihoods add.
- model-based variance: the inverse of the observed information at the estimate.
- robust variance: the Lin & Wei (1989) sandwich D'D, D = the weighted score residuals times the model-based
  covariance (dfbeta), summed within clusters when clusters are given (Therneau & Grambsch 2000, section 7.2; R's
  `coxph(..., robust=TRUE)` and `cluster()`). The score residuals are Efron's, as R's (`residuals.coxph(type =
  "score")`, survival's coxscore2.c), so they sum to the score. lifelines' residuals ignore ties (each row's risk set
  is the rows after it in its sort order): without tied times its robust SE is the same, with ties it differs.
- Newton-Raphson from beta = 0 on the covariates centred and scaled to unit SD (as lifelines; R scales too): the
  estimates do not change, the information is better conditioned. A step that lowers the log-likelihood is halved
  (R's step-halving), at most MAX_HALVINGS times.
- convergence: a full step changed the log-likelihood by at most RELATIVE_TOLERANCE of itself (R's `coxph.control`
  eps, 1e-9) and the next Newton step is below STEP_TOLERANCE in every scaled coefficient (lifelines' test is
  norm(step) < 1e-7; this one is stricter, so that the estimate is not one step short).
- failures, reported in `CoxFit.problems` with every number withheld (NaN), never as an estimate:
  a covariate with one value; a singular information matrix (a Cholesky pivot below R's `toler.chol`,
  eps^0.75, times the largest diagonal element: collinear columns, or a column constant within strata); a
  non-finite log-likelihood or information; the log-likelihood levelling off (LEVELLED_OFF_STEPS full steps within
  RELATIVE_TOLERANCE) while a coefficient keeps moving, which is an infinite estimate (complete or quasi-complete
  separation; R warns "Loglik converged before variable"); step-halving that cannot raise the log-likelihood; and
  MAX_ITERATIONS iterations without convergence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import cho_solve

RELATIVE_TOLERANCE = 1e-9  # R survival coxph.control(eps)
STEP_TOLERANCE = 1e-8  # largest Newton step (scaled coefficients) at which the fit has converged
MAX_ITERATIONS = 50
MAX_HALVINGS = 30
LEVELLED_OFF_STEPS = 5  # full steps within RELATIVE_TOLERANCE, with the step still large: an infinite estimate
SINGULARITY_TOLERANCE = float(np.finfo(float).eps ** 0.75)  # R survival coxph.control(toler.chol)


@dataclass(frozen=True)
class CoxFit:
    """A fitted Cox model, in the column order of the design matrix. When `problems` is not empty the fit cannot be
    trusted and every number below is NaN."""

    coefficients: np.ndarray  # log hazard ratios
    covariance: np.ndarray  # model-based: inverse observed information
    robust_covariance: np.ndarray  # Lin-Wei sandwich, clustered when clusters were given
    log_likelihood: float  # log partial likelihood (Efron) at the estimate
    iterations: int
    problems: tuple[str, ...] = ()


def fit_cox(x: np.ndarray, durations: np.ndarray, events: np.ndarray, strata: np.ndarray | None = None,
            weights: np.ndarray | None = None, clusters: np.ndarray | None = None,
            names: Sequence[str] | None = None) -> CoxFit:
    """Fit a Cox proportional-hazards model with Efron's ties (module docstring for the conventions).

    `x`: one row per person, one column per coefficient; `durations` >= 0; `events` 0/1; `strata` and `clusters`:
    labels per row (any type, no missing values); `weights` > 0 per row (case weights, e.g. IPTW); `names`: the
    columns' names for the problems' texts. Invalid input raises ValueError; a fit that fails says why in
    `problems`.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError("x must be a matrix: one row per person, one column per coefficient")
    n, d = x.shape
    names = list(names) if names is not None else [f"x{j}" for j in range(d)]
    durations = _checked(durations, n, "durations")
    events = _checked(events, n, "events")
    weights = np.ones(n) if weights is None else _checked(weights, n, "weights")
    if not np.isfinite(x).all():
        raise ValueError("x must be finite")
    if (durations < 0).any() or not np.isin(events, (0.0, 1.0)).all() or (weights <= 0).any():
        raise ValueError("durations must be >= 0, events 0 or 1 and weights > 0")
    failed = _Failure(d)
    spread = x.std(axis=0, ddof=1) if n > 1 else np.zeros(d)
    constant = [name for name, sd in zip(names, spread) if not sd > 0]
    if constant:
        return failed(0, f"covariate(s) {_quoted(constant)} take one value only: no coefficient is identifiable")

    if not events.any():
        return failed(0, "no events: the partial likelihood is flat")
    partial = _EfronPartialLikelihood((x - x.mean(axis=0)) / spread, durations, events, weights,
                                      _labels(strata, n, "strata"))
    gamma = np.zeros(d)  # coefficients of the scaled columns
    state = partial.evaluate(gamma)
    levelled = 0  # consecutive full steps that changed the log-likelihood by at most RELATIVE_TOLERANCE
    for iteration in range(MAX_ITERATIONS + 1):
        if not state.finite:
            return failed(iteration, "the log-likelihood or its derivatives are not finite")
        factor, singular = _cholesky(state.information)
        if singular:
            columns = [names[j] for j in singular]
            if iteration == 0:
                return failed(iteration, f"the information matrix is singular at {_quoted(columns)}: collinear "
                                         "covariates, or a covariate constant within strata")
            return failed(iteration, f"the information matrix became singular at {_quoted(columns)}: an infinite "
                                     "estimate (separation) or collinear covariates")
        step = cho_solve(factor, state.gradient)
        moving = np.abs(step) > STEP_TOLERANCE
        if levelled and not moving.any():
            covariance = cho_solve(factor, np.eye(d))
            robust = partial.robust_covariance(state, covariance,
                                               None if clusters is None else _labels(clusters, n, "clusters"))
            return CoxFit(coefficients=gamma / spread, covariance=covariance / np.outer(spread, spread),
                          robust_covariance=robust / np.outer(spread, spread),
                          log_likelihood=state.log_likelihood, iterations=iteration)
        if levelled >= LEVELLED_OFF_STEPS:
            columns = [names[j] for j in np.flatnonzero(moving)]
            return failed(iteration, f"the log-likelihood levelled off while the coefficient(s) of "
                                     f"{_quoted(columns)} kept moving: an infinite estimate (separation)")
        if iteration == MAX_ITERATIONS:
            break
        candidate = partial.evaluate(gamma + step)
        halvings = 0
        while not (candidate.finite and candidate.log_likelihood >= state.log_likelihood
                   - RELATIVE_TOLERANCE * 1e-3 * abs(state.log_likelihood)):  # rounding near the maximum is no fall
            if halvings == MAX_HALVINGS:
                return failed(iteration, "step-halving could not raise the log-likelihood")
            step = step / 2
            candidate = partial.evaluate(gamma + step)
            halvings += 1
        small = abs(candidate.log_likelihood - state.log_likelihood) <= RELATIVE_TOLERANCE * abs(state.log_likelihood)
        levelled = levelled + 1 if small and halvings == 0 else 0
        gamma, state = gamma + step, candidate
    return failed(MAX_ITERATIONS, f"Newton-Raphson did not converge in {MAX_ITERATIONS} iterations")


@dataclass(frozen=True)
class _State:
    """The log-likelihood and its derivatives at one point, with what the score residuals reuse."""

    log_likelihood: float
    gradient: np.ndarray
    information: np.ndarray
    risk: np.ndarray  # exp(eta - the stratum's largest eta) per sorted row, without the weight
    hazard: np.ndarray  # per Efron term: mean weight / risk-set denominator (the hazard increment, / risk)
    mean: np.ndarray  # per Efron term: the risk-set mean of the scaled covariates

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.log_likelihood) and np.isfinite(self.gradient).all()
                    and np.isfinite(self.information).all())


class _EfronPartialLikelihood:
    """Efron's log partial likelihood of sorted rows, its gradient and information, and its score residuals.

    Rows are sorted by stratum, then time. A group is the rows of one stratum sharing one time; the risk set of a
    group is its stratum's rows from that group on, so its sums are reverse cumulative sums over the groups. An Efron
    term is one event: the events of a group are its terms k = 0..D-1, each with the risk set less k/D of the tied
    events' risk.
    """

    def __init__(self, z: np.ndarray, durations: np.ndarray, events: np.ndarray, weights: np.ndarray,
                 strata: np.ndarray) -> None:
        self.order = np.lexsort((durations, strata))
        time, stratum = durations[self.order], strata[self.order]
        self.z, self.weights = z[self.order], weights[self.order]
        new_group = np.r_[True, (time[1:] != time[:-1]) | (stratum[1:] != stratum[:-1])]
        self.group_starts = np.flatnonzero(new_group)
        self.group = np.cumsum(new_group) - 1  # the group of each sorted row
        group_stratum = stratum[self.group_starts]
        stratum_starts = np.flatnonzero(np.r_[True, group_stratum[1:] != group_stratum[:-1]])
        self.stratum_spans = list(zip(stratum_starts, np.r_[stratum_starts[1:], len(self.group_starts)]))
        new_stratum = np.r_[True, stratum[1:] != stratum[:-1]]
        self.row_stratum_starts = np.flatnonzero(new_stratum)
        self.row_stratum = np.cumsum(new_stratum) - 1  # the stratum of each sorted row, 0, 1, ...
        # The Efron terms: one per event, in sorted order, so the terms of a group are contiguous.
        self.events = np.flatnonzero(events[self.order] > 0)
        term_group = self.group[self.events]
        self.term_starts = np.flatnonzero(np.r_[True, term_group[1:] != term_group[:-1]])
        self.event_groups = term_group[self.term_starts]  # the groups with events, one per set of tied terms
        tied = np.diff(np.r_[self.term_starts, len(term_group)])  # D of each group with events
        self.term_set = np.repeat(np.arange(len(tied)), tied)  # each term's set of tied events
        self.tied = tied[self.term_set].astype(float)  # D of each term's set
        self.down_weight = (np.arange(len(term_group)) - self.term_starts[self.term_set]) / self.tied  # k / D
        event_weights = self.weights[self.events]
        self.mean_weight = np.add.reduceat(event_weights, self.term_starts)[self.term_set] / self.tied
        self.weighted_event_z = event_weights @ self.z[self.events]
        self._rows_by_columns = np.empty_like(self.z)  # reused by every evaluation: no fresh pages per iteration

    def evaluate(self, gamma: np.ndarray) -> _State:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return self._evaluate(gamma)

    def _evaluate(self, gamma: np.ndarray) -> _State:
        z, events, groups, sets = self.z, self.events, self.group_starts, self.term_set
        eta = z @ gamma
        shift = np.maximum.reduceat(eta, self.row_stratum_starts)[self.row_stratum]  # exp() cannot overflow
        risk = np.exp(eta - shift)
        weighted = self.weights * risk
        weighted_z = np.multiply(weighted[:, None], z, out=self._rows_by_columns)
        at_risk = self._from_group_on(np.add.reduceat(weighted, groups))[self.event_groups]
        at_risk_z = self._from_group_on(np.add.reduceat(weighted_z, groups, axis=0))[self.event_groups]
        tied_risk = np.add.reduceat(weighted[events], self.term_starts)
        tied_risk_z = np.add.reduceat(weighted_z[events], self.term_starts, axis=0)
        k = self.down_weight
        denominator = at_risk[sets] - k * tied_risk[sets]
        mean = (at_risk_z[sets] - k[:, None] * tied_risk_z[sets]) / denominator[:, None]
        c = self.mean_weight
        log_likelihood = float(self.weights[events] @ eta[events] - c @ (np.log(denominator) + shift[events]))
        gradient = self.weighted_event_z - c @ mean
        hazard = c / denominator
        # Information = sum over terms of c (S2 - k E2) / denominator - c mean mean'. The S2 part is every row's
        # z z' weighted by its risk times the hazard summed over the terms whose risk set holds it; the E2 part
        # takes the tied events' share back.
        cumulative_hazard = self._up_to_group(self._per_group(np.add.reduceat(hazard, self.term_starts)))
        row_weight = weighted * cumulative_hazard[self.group]
        row_weight[events] -= weighted[events] * np.add.reduceat(k * hazard, self.term_starts)[sets]
        weighted_z = np.multiply(row_weight[:, None], z, out=self._rows_by_columns)
        information = weighted_z.T @ z - (mean * c[:, None]).T @ mean
        return _State(log_likelihood, gradient, information, risk, hazard, mean)

    def robust_covariance(self, state: _State, covariance: np.ndarray, clusters: np.ndarray | None) -> np.ndarray:
        """Lin-Wei sandwich of the scaled coefficients from Efron's score residuals (survival's coxscore2.c):
            r_i = d_i (z_i - mean over i's tied terms of m_k) + e_i sum_{k tied with i} k/D h_k (z_i - m_k)
                  - e_i sum_{terms k with i at risk} h_k (z_i - m_k),
        e_i = exp(eta_i), h_k = mean weight / denominator and m_k the mean of term k; weighted by w_i, summed per
        cluster (each row its own without clusters), times the model-based covariance."""
        z, events, sets = self.z, self.events, self.term_set
        starts, hazard, mean, k = self.term_starts, state.hazard, state.mean, self.down_weight
        cumulative_hazard = self._up_to_group(self._per_group(np.add.reduceat(hazard, starts)))
        cumulative_mean = self._up_to_group(self._per_group(np.add.reduceat(hazard[:, None] * mean, starts, axis=0)))
        risk = state.risk
        residuals = cumulative_mean[self.group]  # built in place: each n x d temporary costs a pass over memory
        residuals -= np.multiply(z, cumulative_hazard[self.group][:, None], out=self._rows_by_columns)
        residuals *= risk[:, None]
        tied_hazard = np.add.reduceat(k * hazard, starts)[sets]
        tied_mean = np.add.reduceat((k * hazard)[:, None] * mean, starts, axis=0)[sets]
        average_mean = np.add.reduceat(mean, starts, axis=0)[sets] / self.tied[:, None]
        residuals[events] += (z[events] - average_mean) + risk[events, None] * (z[events] * tied_hazard[:, None]
                                                                                 - tied_mean)
        residuals *= self.weights[:, None]
        if clusters is not None:
            codes = clusters[self.order]
            residuals = np.stack([np.bincount(codes, weights=column) for column in residuals.T], axis=1)
        return covariance @ (residuals.T @ residuals) @ covariance

    def _per_group(self, per_event_group: np.ndarray) -> np.ndarray:
        """Values of the groups with events placed among all groups (zero elsewhere)."""
        values = np.zeros((len(self.group_starts), *per_event_group.shape[1:]))
        values[self.event_groups] = per_event_group
        return values

    def _from_group_on(self, per_group: np.ndarray) -> np.ndarray:
        """Sum over each group and the later groups of its stratum (the risk set)."""
        total = np.empty_like(per_group)
        for first, end in self.stratum_spans:
            total[first:end] = np.cumsum(per_group[first:end][::-1], axis=0)[::-1]
        return total

    def _up_to_group(self, per_group: np.ndarray) -> np.ndarray:
        """Sum over each group and the earlier groups of its stratum."""
        total = np.empty_like(per_group)
        for first, end in self.stratum_spans:
            total[first:end] = np.cumsum(per_group[first:end], axis=0)
        return total


class _Failure:
    """A CoxFit that failed: every number NaN, the reason in `problems`."""

    def __init__(self, d: int) -> None:
        self.d = d

    def __call__(self, iterations: int, problem: str) -> CoxFit:
        return CoxFit(coefficients=np.full(self.d, np.nan), covariance=np.full((self.d, self.d), np.nan),
                      robust_covariance=np.full((self.d, self.d), np.nan), log_likelihood=float("nan"),
                      iterations=iterations, problems=(problem,))


def _cholesky(information: np.ndarray) -> tuple[tuple[np.ndarray, bool], list[int]]:
    """The Cholesky factor of the information (for scipy's cho_solve), and the columns whose pivot falls below R's
    toler.chol times the largest diagonal element (R's cholesky2.c: each pivot of the elimination in column order,
    a column found singular taking no part in the later ones). Empty: not singular."""
    diagonal = np.abs(np.diag(information))
    limit = SINGULARITY_TOLERANCE * float(diagonal.max(initial=0.0))
    remaining = information.astype(float, copy=True)
    singular = []
    for j in range(len(remaining)):
        pivot = remaining[j, j]
        if not pivot > limit:
            singular.append(j)
            remaining[j, :] = remaining[:, j] = 0.0
            continue
        column = remaining[j + 1:, j] / pivot
        remaining[j + 1:, j + 1:] -= np.outer(column, remaining[j, j + 1:])
    if singular:
        return (information, True), singular
    try:
        return (np.linalg.cholesky(information), True), []
    except np.linalg.LinAlgError:  # rounding beyond the pivots' check: no column in particular
        return (information, True), list(range(len(information)))


def _checked(values, n: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if len(array) != n or not np.isfinite(array).all():
        raise ValueError(f"{name} must have one finite value per row of x")
    return array


def _labels(values, n: int, name: str) -> np.ndarray:
    """Integer codes of per-row labels (all zero when None)."""
    if values is None:
        return np.zeros(n, dtype=np.int64)
    codes = pd.factorize(np.asarray(values).reshape(-1))[0] if len(values) == n else None
    if codes is None or (codes < 0).any():
        raise ValueError(f"{name} must have one non-missing label per row of x")
    return codes


def _quoted(columns: Sequence[str]) -> str:
    return ", ".join(repr(str(column)) for column in columns)
