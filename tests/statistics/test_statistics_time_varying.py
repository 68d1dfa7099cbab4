"""The counting-process Cox model of time-varying exposures (pipelines/statistics/time_varying.py) against lifelines,
on simulated rows without tied event times (where Breslow's and lifelines' Efron partial likelihoods coincide)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, CoxTimeVaryingFitter

from pipelines.statistics.time_varying import counting_process_cox, fit_counting_process_cox


def _switching_rows(persons: int = 400, seed: int = 3) -> pd.DataFrame:
    """Each person: unexposed from 0, exposed from a random switch time (or never), hazard ratio 2 while exposed,
    age as a time-fixed covariate; continuous times, so no two events tie."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, persons)
    switch = np.where(rng.random(persons) < 0.5, rng.uniform(0, 2, persons), 1e9)  # 1e9: never
    base = 0.3 * np.exp(0.03 * (age - 60))
    # Time to event under a hazard that doubles after the switch, censored at 3.
    draw = rng.exponential(1, persons)
    before = draw / base
    event_time = np.where(before <= switch, before, switch + (draw - base * switch) / (2 * base))
    end = np.minimum(event_time, 3.0)
    event = (event_time <= 3.0).astype(int)
    rows = []
    for i in range(persons):
        if switch[i] < end[i]:
            rows.append((i, 0.0, switch[i], 0, 0, age[i]))
            rows.append((i, switch[i], end[i], 1, event[i], age[i]))
        else:
            rows.append((i, 0.0, end[i], 0, event[i], age[i]))
    return pd.DataFrame(rows, columns=["person", "start_day", "stop_day", "exposed", "outcome", "age"])


def test_coefficients_and_model_standard_errors_equal_lifelines_time_varying_fitter():
    rows = _switching_rows()
    result = counting_process_cox(rows, ["age"])
    fitter = CoxTimeVaryingFitter().fit(rows, id_col="person", event_col="outcome", start_col="start_day",
                                        stop_col="stop_day")
    assert np.log(result.estimate) == pytest.approx(fitter.params_["exposed"], abs=1e-6)
    assert result.se_log_estimate == pytest.approx(fitter.standard_errors_["exposed"], rel=1e-5)
    assert result.events_exposed + result.events_unexposed == rows.outcome.sum()
    assert result.n_exposed + result.n_unexposed == rows.person.nunique()
    assert result.person_years_exposed == pytest.approx(
        ((rows.stop_day - rows.start_day) * rows.exposed).sum() / 365.25)


def test_one_row_per_person_gives_lifelines_coxph_with_its_robust_variance():
    rows = _switching_rows()
    # Time-fixed: one row (0, end] per person, exposed = ever switched.
    first = rows.groupby("person").agg(start_day=("start_day", "min"), stop_day=("stop_day", "max"),
                                       outcome=("outcome", "max"), exposed=("exposed", "max"),
                                       age=("age", "first")).reset_index()
    x = first[["exposed", "age"]].to_numpy(float)
    fit = fit_counting_process_cox(x, first.start_day.to_numpy(), first.stop_day.to_numpy(),
                                   first.outcome.to_numpy(float), first.person.to_numpy())
    fitter = CoxPHFitter().fit(first[["stop_day", "outcome", "exposed", "age"]], duration_col="stop_day",
                               event_col="outcome", robust=True)
    assert fit.coefficients == pytest.approx(fitter.params_[["exposed", "age"]].to_numpy(), abs=1e-6)
    assert np.sqrt(np.diag(fit.robust_covariance)) == pytest.approx(
        fitter.standard_errors_[["exposed", "age"]].to_numpy(), rel=1e-5)


def test_splitting_a_persons_time_changes_nothing():
    """Cutting a row in two (same covariates, the event on the later part) leaves the partial likelihood, its
    information and the person-clustered robust variance as they were."""
    rows = _switching_rows()
    cut = rows.copy()
    cut["middle"] = (cut.start_day + cut.stop_day) / 2
    early = cut.assign(stop_day=cut.middle, outcome=0)
    late = cut.assign(start_day=cut.middle)
    split = pd.concat([early, late]).drop(columns="middle").sort_values(["person", "start_day"])

    def fitted(frame: pd.DataFrame):
        return fit_counting_process_cox(frame[["exposed", "age"]].to_numpy(float), frame.start_day.to_numpy(),
                                        frame.stop_day.to_numpy(), frame.outcome.to_numpy(float),
                                        frame.person.to_numpy())

    whole, halves = fitted(rows), fitted(split)
    assert halves.coefficients == pytest.approx(whole.coefficients, abs=1e-9)
    assert halves.covariance == pytest.approx(whole.covariance, rel=1e-9)
    assert halves.robust_covariance == pytest.approx(whole.robust_covariance, rel=1e-9)


def test_no_exposed_events_is_not_estimable():
    rows = _switching_rows()
    rows.loc[rows.exposed == 1, "outcome"] = 0
    result = counting_process_cox(rows, ["age"])
    assert result.estimate is None and "no events among the exposed" in result.not_estimable_reason
