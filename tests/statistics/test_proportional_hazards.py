"""The proportional-hazards check of every Cox model (pipelines/statistics/proportional_hazards.py): the scaled
Schoenfeld residual test against lifelines' own, and a hand-built cohort (tests/support/hand_cohort.py) whose
planted crossing hazards are flagged in results while proportional ones are not."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.statistics import proportional_hazard_test

from pipelines.cohorts import build_study
from pipelines.statistics.proportional_hazards import PROPORTIONAL_HAZARDS_ALPHA, schoenfeld_test
from pipelines.statistics.study_analysis import analyse_study
from pipelines.statistics.survival import cox_hazard_ratio
from tests.support.hand_cohort import HandExtract, make_study

INDEX = date(2016, 1, 4)  # everybody's first visit; the first day at risk is the day after


@pytest.mark.parametrize("transform", ["identity", "rank"])
def test_schoenfeld_test_equals_lifelines_without_tied_event_times(transform):
    rng = np.random.default_rng(3)
    n = 400
    exposure, covariate = rng.integers(0, 2, n).astype(float), rng.normal(size=n)
    event_times = rng.exponential(1 / np.exp(0.5 * exposure + 0.3 * covariate))
    censoring = rng.uniform(0, 2, n)
    frame = pd.DataFrame({"exposure": exposure, "z": covariate, "years": np.minimum(event_times, censoring),
                          "event": (event_times < censoring).astype(float)})
    fitter = CoxPHFitter().fit(frame, "years", "event")
    expected = proportional_hazard_test(fitter, frame, time_transform=transform).summary.loc["exposure"]
    statistic, p_value = schoenfeld_test(frame[["exposure", "z"]].to_numpy(), frame["years"].to_numpy(),
                                         frame["event"].to_numpy(), fitter.params_.to_numpy(),
                                         fitter.variance_matrix_.to_numpy(), 0, transform=transform)
    assert statistic == pytest.approx(expected["test_statistic"], rel=1e-9)
    assert p_value == pytest.approx(expected["p"], rel=1e-9)


def _cohort(exposed_event_days: list[int], unexposed_event_days: list[int], persons_per_arm: int = 120):
    """A screening study on a hand-written extract: `persons_per_arm` persons with diabetes before their first
    visit and as many without; the i-th person of an arm has a first leg cramp on day exposed_event_days[i] (or
    unexposed_...) after index, the others none (followed to the end of observation, 2022-12-31)."""
    extract = HandExtract()
    for arm, days in (("exp", exposed_event_days), ("unexp", unexposed_event_days)):
        for i in range(persons_per_arm):
            person = f"{arm}{i:03d}"
            extract.person(person, year_of_birth=1950 + i % 20, sex="F" if i % 2 else "M", visits=[str(INDEX)])
            if arm == "exp":
                extract.event(person, "diabetes_mellitus", "2015-06-01")
            if i < len(days):
                extract.event(person, "leg_cramps", str(INDEX + timedelta(days=days[i])))
    con = extract.connect()
    study = make_study(exposures=["diabetes_mellitus"])
    build_study(con, study)
    return con, study


def _cox_rows(con, study):
    return [result for exposure, _, result in analyse_study(con, study).results
            if exposure == "diabetes_mellitus" and result.analysis_id == "cox_adjusted"]


def test_a_crossing_hazard_is_flagged_and_a_proportional_one_is_not():
    # Crossing: the exposed have their cramps in the first months, the unexposed theirs from the fourth year.
    early = [5 + 4 * i for i in range(60)]
    late = [1100 + 20 * i for i in range(60)]
    con, study = _cohort(early, late)
    [crossing] = _cox_rows(con, study)
    assert crossing.estimable
    assert crossing.proportional_hazards_p_value < 1e-6
    assert crossing.proportional_hazards_violated is True

    # Proportional: both arms' cramps spread over the same years, twice as many among the exposed.
    spread = [10 + 40 * i for i in range(60)]
    con, study = _cohort(spread, spread[::2])
    [proportional] = _cox_rows(con, study)
    assert proportional.estimable and proportional.estimate > 1.5
    assert proportional.proportional_hazards_p_value > 0.5
    assert proportional.proportional_hazards_violated is False


def test_every_propensity_score_cox_model_and_weighted_fit_is_checked():
    rng = np.random.default_rng(7)
    n = 600
    exposure = rng.integers(0, 2, n)
    # Exposed: hazard 4 in the first half year, then 0.25; unexposed 1 throughout: a crossing hazard.
    early = rng.exponential(1 / 4.0, n)
    late_exposed = 0.5 + rng.exponential(1 / 0.25, n)
    exposed_times = np.where(early < 0.5, early, late_exposed)
    times = np.where(exposure == 1, exposed_times, rng.exponential(1.0, n))
    follow = np.minimum(times, 3.0)
    frame = pd.DataFrame({"exposure": exposure, "outcome": (times < 3.0).astype(int),
                          "followup_days": np.ceil(follow * 365.25).astype(int),
                          "weight": rng.uniform(0.5, 2.0, n), "stratum": rng.integers(0, 4, n)})
    for options in ({}, {"weights": "weight"}, {"strata": "stratum"}):
        result = cox_hazard_ratio(frame, **options)
        assert result.proportional_hazards_violated is True, options
        assert result.proportional_hazards_p_value < PROPORTIONAL_HAZARDS_ALPHA
