"""Hazard ratios of a time-varying exposure: a Cox model on counting-process rows (start, stop].

Each row is a stretch of one person's time at risk in which the exposure is constant (cohort.time_varying_exposure:
current drug use, or a risk window after an abnormal result), with the outcome on the last row's last day. A row
(start, stop] is in the risk set at event time t when start < t <= stop (Andersen & Gill 1982), so a person moves
between the exposed and unexposed risk sets as their exposure changes, and time-fixed covariates (measured at index)
enter every row of the person.

`counting_process_cox` maximises the Cox partial likelihood with Breslow's handling of tied event days by
Newton-Raphson. It is written here instead of calling lifelines' CoxTimeVaryingFitter because that fitter took
about 30 s per model on 21,000 rows on the project's 2-core machine (a screening study fits one per exposure, at up
to 250,000 persons) and has no robust variance, which the estimability rule compares with the model-based one. The
sums over risk sets are differences of cumulative sums over rows sorted by stop and by start, so a fit is a few
matrix products per iteration. The at-index models (`cox_model.py`) use Efron's method; with a few events per day
Breslow's differs from it in the third decimal. The tests check it against lifelines on data without ties.

The interval uses the model-based variance; the robust (Lin-Wei) sandwich variance clustered on the person is computed
for `estimability.judged`, as for every Cox model of the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from pipelines.statistics.estimability import ModelFit, decided_before_fitting, judged
from pipelines.statistics.inputs import covariate_matrix, require_columns, to_int
from pipelines.statistics.results import DAYS_PER_YEAR, EstimateResult

START, STOP, EXPOSED, OUTCOME, PERSON = "start_day", "stop_day", "exposed", "outcome", "person"
MAX_ITERATIONS = 50
TOLERANCE = 1e-9


class CountingProcessFit:
    """The fitted coefficients, their model-based covariance and the robust covariance clustered on persons."""

    def __init__(self, coefficients: np.ndarray, covariance: np.ndarray, robust_covariance: np.ndarray,
                 converged: bool, iterations: int) -> None:
        self.coefficients = coefficients
        self.covariance = covariance
        self.robust_covariance = robust_covariance
        self.converged = converged
        self.iterations = iterations


class _RiskSets:
    """Sums over the risk sets of the distinct event times: rows with start < t <= stop, of `x` (rows x columns)
    weighted by each row's w."""

    def __init__(self, start: np.ndarray, stop: np.ndarray, event: np.ndarray, x: np.ndarray) -> None:
        self.times, deaths = np.unique(stop[event == 1], return_counts=True)
        self.deaths = deaths.astype(float)
        by_stop = np.argsort(stop, kind="stable")
        by_start = np.argsort(start, kind="stable")
        # Rows with stop >= t: positions from searchsorted(left) on; rows with start >= t likewise.
        self.stop_from = np.searchsorted(stop[by_stop], self.times, side="left")
        self.start_from = np.searchsorted(start[by_start], self.times, side="left")
        # Which event times fall in each row's interval (start, stop]: times[lo:hi].
        self.row_lo = np.searchsorted(self.times, start, side="right")
        self.row_hi = np.searchsorted(self.times, stop, side="right")
        # A sum over the rows from position p of an order on is a cumulative sum over that order's rows taken from
        # the last: the rows last first, and x in that order once, one line per column (columns x rows), so each
        # column's cumulative sum runs along contiguous memory (along a column of a rows x columns array it strode
        # over the other columns, 2/3 of a fit's time) and adds the same numbers in the same order as before.
        self._last_first = (by_stop[::-1], by_start[::-1])
        self._x_last_first = tuple(np.ascontiguousarray(x[order].T) for order in self._last_first)

    def total(self, w: np.ndarray) -> np.ndarray:
        """sum over the risk set of each event time of w."""
        stop_order, start_order = self._last_first
        return self._tail_sums(w[stop_order], self.stop_from) - self._tail_sums(w[start_order], self.start_from)

    def weighted_total(self, w: np.ndarray) -> np.ndarray:
        """sum over the risk set of each event time of w * x (event times x columns)."""
        (stop_order, start_order), (x_stop, x_start) = self._last_first, self._x_last_first
        return np.ascontiguousarray((self._tail_sums(x_stop * w[stop_order], self.stop_from)
                                     - self._tail_sums(x_start * w[start_order], self.start_from)).T)

    @staticmethod
    def _tail_sums(last_first: np.ndarray, first: np.ndarray) -> np.ndarray:
        """The sums over positions first.. of an order (nothing from its length on), from values in that order taken
        from the last (along the last axis)."""
        rows = last_first.shape[-1]
        cumulative = np.cumsum(last_first, axis=-1)
        return np.where(first < rows, cumulative[..., rows - 1 - first], 0.0)

    def over_rows(self, per_time: np.ndarray) -> np.ndarray:
        """For each row, the sum of `per_time` (event times, or times x columns) over the event times in its
        interval (start, stop]."""
        cumulative = np.concatenate([np.zeros((1, *per_time.shape[1:])), np.cumsum(per_time, axis=0)], axis=0)
        return cumulative[self.row_hi] - cumulative[self.row_lo]


def fit_counting_process_cox(x: np.ndarray, start: np.ndarray, stop: np.ndarray, event: np.ndarray,
                             cluster: np.ndarray) -> CountingProcessFit:
    """Newton-Raphson on the Breslow partial likelihood of counting-process rows; `cluster` groups the rows of one
    person for the robust variance. Covariates are centred (the coefficients do not change)."""
    x = x - x.mean(axis=0)
    risk = _RiskSets(start, stop, event, x)
    events_x = x[event == 1].sum(axis=0)
    beta = np.zeros(x.shape[1])

    def evaluate(beta: np.ndarray):
        eta = x @ beta
        w = np.exp(eta - eta.max())  # a common factor cancels in every ratio below
        s0 = risk.total(w)
        s1 = risk.weighted_total(w)
        loglik = float(events_x @ beta - np.sum(risk.deaths * np.log(s0)) - risk.deaths.sum() * eta.max())
        return w, s0, s1, loglik

    w, s0, s1, loglik = evaluate(beta)
    converged, iteration = False, 0
    for iteration in range(1, MAX_ITERATIONS + 1):
        mean = s1 / s0[:, None]
        hazard = risk.over_rows(risk.deaths / s0)  # each row's share of the Breslow cumulative hazard, / w
        gradient = events_x - (w * hazard) @ x
        information = (x * (w * hazard)[:, None]).T @ x - (mean * risk.deaths[:, None]).T @ mean
        step = np.linalg.solve(information, gradient)
        new_beta = beta + step
        new = evaluate(new_beta)
        halvings = 0
        while new[3] < loglik - 1e-12 and halvings < 30:  # step halving keeps the likelihood from falling
            step /= 2
            new_beta = beta + step
            new = evaluate(new_beta)
            halvings += 1
        beta, (w, s0, s1, new_loglik) = new_beta, new
        change, loglik = abs(new_loglik - loglik), new_loglik
        if np.max(np.abs(step)) < 1e-7 or change < TOLERANCE:
            converged = True
            break
    mean = s1 / s0[:, None]
    hazard = risk.over_rows(risk.deaths / s0)
    information = (x * (w * hazard)[:, None]).T @ x - (mean * risk.deaths[:, None]).T @ mean
    covariance = np.linalg.inv(information)
    # Score residual of each row (Lin & Wei 1989, Breslow form): d_i (x_i - m(stop_i)) - w_i sum over the event times
    # in its interval of dN/S0 (x_i - m(t)); summed per person, the sandwich V (sum_c r_c r_c') V.
    mean_at_stop = np.zeros_like(x)
    event_rows = np.flatnonzero(event == 1)
    mean_at_stop[event_rows] = mean[np.searchsorted(risk.times, stop[event_rows])]
    mean_increment = risk.over_rows(mean * (risk.deaths / s0)[:, None])
    residuals = event[:, None] * (x - mean_at_stop) - w[:, None] * (x * hazard[:, None] - mean_increment)
    _, group = np.unique(cluster, return_inverse=True)
    per_person = np.zeros((group.max() + 1, x.shape[1]))
    np.add.at(per_person, group, residuals)
    robust = covariance @ (per_person.T @ per_person) @ covariance
    return CountingProcessFit(beta, covariance, robust, converged, iteration)


def counting_process_cox(rows: pd.DataFrame, covariates: Sequence[str] = (), exposure: str = EXPOSED,
                         outcome: str = OUTCOME, start: str = START, stop: str = STOP, person: str = PERSON,
                         exposed_time: str = "exposed time", alpha: float = 0.05) -> EstimateResult:
    """Hazard ratio of a time-varying 0/1 `exposure` from a Cox model on counting-process rows.

    `rows`: one row per stretch (start, stop] of a person's time at risk (days), `exposure` and `outcome` 0/1 (the
    outcome on the person's last row), `person` the person's key, and time-fixed covariates repeated on each row.
    Counts: n_exposed = persons with any exposed time, n_unexposed = persons with none; events and person-years by
    the exposure of the row they fall in. `exposed_time` says what the exposed time is, in the method and estimand.
    """
    require_columns(rows, [exposure, outcome, start, stop, person, *covariates])
    rows = rows.reset_index(drop=True)
    exposed = rows[exposure].astype(int).to_numpy()
    event = rows[outcome].astype(int).to_numpy()
    begin, end = rows[start].to_numpy(float), rows[stop].to_numpy(float)
    if np.any(end <= begin):
        raise ValueError("every counting-process row needs stop > start")
    years = (end - begin) / DAYS_PER_YEAR
    persons = rows[person].to_numpy()
    ever_exposed = pd.Series(exposed, index=persons).groupby(level=0).max()
    counts = {
        "n_exposed": to_int((ever_exposed == 1).sum()),
        "n_unexposed": to_int((ever_exposed == 0).sum()),
        "events_exposed": to_int(event[exposed == 1].sum()),
        "events_unexposed": to_int(event[exposed == 0].sum()),
        "person_years_exposed": float(years[exposed == 1].sum()),
        "person_years_unexposed": float(years[exposed == 0].sum()),
    }
    design = pd.concat([pd.Series(exposed, name=exposure, dtype=float), covariate_matrix(rows, covariates)], axis=1)
    method = (f"Time-varying Cox proportional hazards ({exposed_time}; counting process, Breslow ties; "
              f"{_covariate_note(covariates)}; model-based variance)")
    estimand = f"hazard ratio of first outcome, {exposed_time} vs not"
    unfitted = EstimateResult(method=method, estimand=estimand, estimate=None, ci_lower=None, ci_upper=None,
                              p_value=None, covariates=tuple(covariates), **counts)
    parameters, events = design.shape[1], to_int(event.sum())
    decided = decided_before_fitting(unfitted, ModelFit(parameters, events))
    if decided is not None:  # no events in a group, or too few per variable: withheld whatever the fit gives
        return decided
    try:
        fit = fit_counting_process_cox(design.to_numpy(float), begin, end, event.astype(float), persons)
    except np.linalg.LinAlgError as error:
        return judged(unfitted, ModelFit(parameters, events, convergence_problems=(f"LinAlgError: {error}",)))
    problems = () if fit.converged else (f"Newton-Raphson did not converge in {MAX_ITERATIONS} iterations",)
    coefficient = float(fit.coefficients[0])
    model_se = float(np.sqrt(fit.covariance[0, 0]))
    robust_se = float(np.sqrt(max(fit.robust_covariance[0, 0], 0.0)))
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(over="ignore", invalid="ignore"):
        result = EstimateResult(
            method=method, estimand=estimand,
            estimate=float(np.exp(coefficient)),
            ci_lower=float(np.exp(coefficient - z * model_se)),
            ci_upper=float(np.exp(coefficient + z * model_se)),
            p_value=float(stats.chi2.sf((coefficient / model_se) ** 2, 1)),
            se_log_estimate=model_se, covariates=tuple(covariates), **counts)
    return judged(result, ModelFit(parameters, events, model_se, robust_se, problems))


def _covariate_note(covariates: Sequence[str]) -> str:
    if not covariates:
        return "unadjusted"
    return f"adjusted for {len(covariates)} covariate{'' if len(covariates) == 1 else 's'}"
