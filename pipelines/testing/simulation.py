"""Simulated data with planted effects, for the tests and bench/validate_estimators.py.

Nothing here touches real data. Two generators:

`simulate_cohort`: an active-comparator new-user cohort, one row per person.
- covariates: `age` (years, mean 65, SD 10), `female` (0/1), `diabetes` (0/1, more common with age);
- `exposure` (target drug = 1, comparator = 0) depends on age with log-odds `age_confounding` per 10 years,
  on diabetes (`diabetes_confounding`) and a little on sex: age and diabetes are the confounders;
- time to first cramp is exponential with rate base_rate * exp(log(hazard_ratio) * exposure +
  age_on_outcome per 10 years + 0.3 * diabetes) (a proportional-hazards model, so the planted hazard ratio is
  the conditional HR a Cox model with age and diabetes estimates);
- follow-up is censored administratively after 0.5-3 years (uniform): `outcome` (0/1) and `followup_days`;
- `outcome_binary`: a separate 0/1 outcome from a logistic model with the planted `odds_ratio`, for the
  odds-ratio estimators (a first-event indicator from the survival model has no single true odds ratio).

`simulate_initiations`: first-initiation dates of an index drug and a marker for a population, with a linear
trend in marker incidence and a planted rate ratio in the year after the index drug; for sequence symmetry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from pipelines.statistics.results import DAYS_PER_YEAR

COHORT_COVARIATES = ["age", "female", "diabetes"]


def simulate_cohort(
    persons: int,
    hazard_ratio: float = 1.0,
    odds_ratio: float = 1.0,
    age_confounding: float = 0.8,
    diabetes_confounding: float = 0.4,
    age_on_outcome: float = 0.5,
    base_rate: float = 0.04,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per person: exposure, outcome, followup_days, outcome_binary, age, female, diabetes.

    `age_confounding` is the log-odds of exposure per 10 years of age and `diabetes_confounding` the log-odds
    of exposure for diabetes (both 0 = no confounding: sex affects exposure but not the outcome);
    `age_on_outcome` the log hazard (and log odds) of the outcome per 10 years of age. `base_rate` is the outcome rate per
    person-year at age 65 without diabetes in the comparator group.
    """
    rng = np.random.default_rng(seed)
    age_decades = rng.normal(0.0, 1.0, persons)  # (age - 65) / 10
    female = rng.binomial(1, 0.55, persons)
    diabetes = rng.binomial(1, expit(-1.2 + 0.4 * age_decades))
    exposure = rng.binomial(
        1, expit(-0.2 + age_confounding * age_decades + 0.2 * female + diabetes_confounding * diabetes)
    )

    rate = base_rate * np.exp(np.log(hazard_ratio) * exposure + age_on_outcome * age_decades + 0.3 * diabetes)
    event_years = rng.exponential(1 / rate)
    censor_years = rng.uniform(0.5, 3.0, persons)
    outcome = (event_years <= censor_years).astype(int)
    followup_years = np.minimum(event_years, censor_years)

    log_odds = -2.5 + np.log(odds_ratio) * exposure + age_on_outcome * age_decades + 0.3 * diabetes
    outcome_binary = rng.binomial(1, expit(log_odds))

    return pd.DataFrame(
        {
            "person_id": np.arange(persons),
            "exposure": exposure,
            "outcome": outcome,
            "followup_days": followup_years * DAYS_PER_YEAR,
            "outcome_binary": outcome_binary,
            "age": 65 + 10 * age_decades,
            "female": female,
            "diabetes": diabetes,
        }
    )


def simulate_initiations(
    persons: int,
    rate_ratio: float = 1.0,
    marker_rate_per_year: float = 0.002,
    marker_trend: float = 0.0,
    index_drug_share: float = 0.3,
    years: int = 8,
    start: str = "2001-01-01",
    effect_window_days: int = 365,
    seed: int = 0,
) -> pd.DataFrame:
    """First-initiation dates of an index drug and a marker (NaT when never), one row per person.

    - A share `index_drug_share` of persons starts the index drug, on a day uniform over the period.
    - Marker (first cramp / quinine start) incidence at day t is marker_rate * (1 + marker_trend * t / period):
      marker_trend = 2 triples it over the period (a linear trend, as in rising quinine prescribing).
    - In the `effect_window_days` after starting the index drug, the marker rate is multiplied by `rate_ratio`.
    Marker times are drawn by inverting the cumulative hazard, which is quadratic in time on each piece.
    """
    rng = np.random.default_rng(seed)
    period = years * 365.0
    base = marker_rate_per_year / 365.0

    def cumulative(t):  # baseline cumulative hazard from day 0 to day t
        return base * (t + marker_trend * t * t / (2 * period))

    def inverse(h):  # the day t at which the baseline cumulative hazard reaches h
        if marker_trend == 0:
            return h / base
        with np.errstate(invalid="ignore"):  # a falling trend may never reach h: NaN = no marker
                return (np.sqrt(1 + 2 * marker_trend * h / (base * period)) - 1) * period / marker_trend

    takes_index = rng.random(persons) < index_drug_share
    index_day = np.where(takes_index, np.floor(rng.random(persons) * period), np.nan)
    target = rng.exponential(size=persons)  # each person's marker occurs when the cumulative hazard reaches this

    # Piecewise cumulative hazard for index users: baseline before the index day d, rate_ratio x baseline in
    # (d, d + window], baseline again afterwards.
    d = np.nan_to_num(index_day, nan=0.0)
    at_start = cumulative(d)
    at_end = cumulative(d + effect_window_days)
    hazard_at_window_end = at_start + rate_ratio * (at_end - at_start)
    before = target <= at_start
    inside = (target > at_start) & (target <= hazard_at_window_end)
    marker_day = np.where(
        before,
        inverse(target),
        np.where(
            inside,
            inverse(at_start + (target - at_start) / rate_ratio),
            inverse(target - (rate_ratio - 1) * (at_end - at_start)),
        ),
    )
    marker_day = np.where(takes_index, marker_day, inverse(target))
    marker_day = np.where(marker_day < period, np.floor(marker_day), np.nan)

    origin = pd.Timestamp(start)
    return pd.DataFrame(
        {
            "person_id": np.arange(persons),
            "index_date": origin + pd.to_timedelta(index_day, unit="D"),
            "marker_date": origin + pd.to_timedelta(marker_day, unit="D"),
        }
    )


def observation_period(years: int = 8, start: str = "2001-01-01") -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day covered by `simulate_initiations` data with the same arguments."""
    first = pd.Timestamp(start)
    return first, first + pd.Timedelta(days=years * 365 - 1)
