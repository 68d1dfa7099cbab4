"""Sequence symmetry analysis: counting rules, the null-effect ratio formula, the CI convention, planted ratios."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from pipelines.statistics import (
    daily_initiation_counts,
    null_effect_sequence_ratio,
    sequence_ratio_from_counts,
    sequence_symmetry_analysis,
)
from pipelines.testing.simulation import observation_period, simulate_initiations
from tests.support.hand_omop import first_dates_warehouse

DAY0 = pd.Timestamp("2010-01-01")


def day(n: int) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(days=n)


def counts(days_and_counts: dict[int, int]) -> pd.Series:
    return pd.Series({day(d): c for d, c in days_and_counts.items()}).sort_index()


def test_counting_rules_window_and_same_day():
    index = 1000
    data = pd.DataFrame(
        {
            "index_date": [day(index)] * 7 + [pd.NaT],
            "marker_date": [
                day(index + 1),  # index first
                day(index + 365),  # index first, last day of the window
                day(index + 366),  # outside the window
                day(index - 365),  # marker first, first day of the window
                day(index - 366),  # outside
                day(index),  # same day: excluded
                pd.NaT,  # never had the marker
                day(index),  # never had the index drug
            ],
        }
    )
    result = sequence_symmetry_analysis(data)
    assert (result.index_first, result.marker_first, result.same_day_excluded) == (2, 1, 1)
    assert result.crude.estimate == pytest.approx(2.0)
    assert result.crude.events_exposed == 2 and result.crude.events_unexposed == 1


def test_null_effect_ratio_is_one_for_flat_marker_incidence():
    markers = counts({d: 1 for d in range(0, 3000)})
    index = counts({1500: 3})
    assert null_effect_sequence_ratio(index, markers) == pytest.approx(1.0)


def test_null_effect_ratio_by_hand():
    # Index drug: 2 initiations on day 10. Marker: 1 on day 5, 3 on day 10 (same day), 2 on day 12,
    # 1 on day 400 (390 days after: outside T = 365).
    # P = 2 * 2 / (2 * (1 + 3 + 2 - 3)) = 2/3, NSR = P / (1 - P) = 2.
    markers = counts({5: 1, 10: 3, 12: 2, 400: 1})
    index = counts({10: 2})
    assert null_effect_sequence_ratio(index, markers, window_days=365) == pytest.approx(2.0)
    # With a 390-day window the marker on day 400 counts after: P = 3/4, NSR = 3.
    assert null_effect_sequence_ratio(index, markers, window_days=390) == pytest.approx(3.0)


def test_null_effect_ratio_counts_every_incident_index_user_not_only_pairs():
    """Tsiropoulos 2009 and CohortSymmetry: a_d are all incident users of the index drug, b_m all of the marker.

    Index users: day 1000 (marker on 1100: index first), day 2000 (no marker), day 3000 (marker on 2900: marker
    first). Marker-only persons on days 900, 1900, 2100, 2200, 3100. T = 365.
      day 1000: markers after 1 (1100), around 2 (900, 1100)
      day 2000: markers after 2 (2100, 2200), around 3 (1900, 2100, 2200)
      day 3000: markers after 1 (3100), around 2 (2900, 3100)
    All index users: P = (1 + 2 + 1) / (2 + 3 + 2) = 4/7, NSR = 4/3, adjusted SR = (1/1) / (4/3) = 0.75.
    Pairs only (the old rule, days 1000 and 3000): P = 2/4, NSR = 1.
    """
    index_days = [1000, 2000, 3000, None, None, None, None, None]
    marker_days = [1100, None, 2900, 900, 1900, 2100, 2200, 3100]
    data = pd.DataFrame({
        "index_date": [day(d) if d is not None else pd.NaT for d in index_days],
        "marker_date": [day(d) if d is not None else pd.NaT for d in marker_days],
    })
    result = sequence_symmetry_analysis(data)
    assert (result.index_first, result.marker_first) == (1, 1)
    assert result.null_effect_ratio == pytest.approx(4 / 3)
    assert result.adjusted.estimate == pytest.approx(0.75)
    # The observation limits apply to the index users of the NSR as to the pairs: with observation ending on day
    # 2500 + 365, the index users of day 3000 leave both, and day 1000 and 2000 remain: P = 3/5, NSR = 1.5.
    limited = sequence_symmetry_analysis(data, observation_start=day(0), observation_end=day(2500 + 365))
    assert limited.null_effect_ratio == pytest.approx(1.5)


def test_null_effect_ratio_tracks_a_rising_trend():
    markers = counts({d: 1 + d // 100 for d in range(0, 3000)})  # rising incidence
    index = counts({1500: 1})
    assert null_effect_sequence_ratio(index, markers) > 1.1


def test_interval_is_cohortsymmetry_beta_convention():
    # CohortSymmetry: qbeta(0.025 / 0.975, index_first + 0.5, marker_first + 0.5) as odds. That is the Jeffreys
    # interval of the index-first share, which statsmodels computes independently.
    result = sequence_ratio_from_counts(30, 20)
    lower_share, upper_share = proportion_confint(30, 50, method="jeffreys")
    assert result.estimate == pytest.approx(1.5)
    assert result.ci_lower == pytest.approx(lower_share / (1 - lower_share), rel=1e-9)
    assert result.ci_upper == pytest.approx(upper_share / (1 - upper_share), rel=1e-9)
    adjusted = sequence_ratio_from_counts(30, 20, null_effect_ratio=1.25)
    assert adjusted.estimate == pytest.approx(1.2)
    assert adjusted.ci_lower == pytest.approx(result.ci_lower / 1.25)
    assert adjusted.ci_upper == pytest.approx(result.ci_upper / 1.25)
    assert "Adjusted" in adjusted.method and "Crude" in result.method


def test_a_zero_count_is_not_estimable_instead_of_zero_or_infinite():
    # CohortSymmetry replaces a zero count by 0.5 for the interval only, so 0 index-first / 1 marker-first pairs gave
    # 0.00 with CI 0.02-10.52 (an estimate outside its own interval), and 1 / 0 gave inf.
    for index_first, marker_first in ((0, 1), (0, 5), (1, 0), (0, 0)):
        for null_effect_ratio in (None, 1.1):
            result = sequence_ratio_from_counts(index_first, marker_first, null_effect_ratio)
            assert (result.estimate, result.ci_lower, result.ci_upper, result.p_value) == (None, None, None, None)
            assert result.not_estimable_reason.startswith("no pairs with the")
            assert (result.events_exposed, result.events_unexposed) == (index_first, marker_first)


def test_daily_initiation_counts_ignores_missing():
    series = daily_initiation_counts(pd.Series([day(1), day(1), pd.NaT, day(3)]))
    assert series.to_dict() == {day(1): 2, day(3): 1}


@pytest.fixture(scope="module")
def planted_no_trend() -> pd.DataFrame:
    return simulate_initiations(2_000_000, rate_ratio=2.42, marker_trend=0.0, seed=31)


@pytest.fixture(scope="module")
def planted_with_trend() -> pd.DataFrame:
    # Marker incidence triples over the 8 years (a linear trend).
    return simulate_initiations(2_000_000, rate_ratio=2.42, marker_trend=2.0, seed=32)


def test_planted_sequence_ratio_is_within_interval(planted_no_trend):
    start, end = observation_period()
    result = sequence_symmetry_analysis(planted_no_trend, observation_start=start, observation_end=end)
    assert result.adjusted.contains(2.42), result
    assert result.null_effect_ratio == pytest.approx(1.0, abs=0.03)


def test_trend_inflates_crude_ratio_and_adjustment_recovers_truth(planted_with_trend):
    start, end = observation_period()
    result = sequence_symmetry_analysis(planted_with_trend, observation_start=start, observation_end=end)
    assert result.null_effect_ratio > 1.08
    assert not result.crude.contains(2.42), result.crude
    assert result.adjusted.contains(2.42), result.adjusted
    assert result.adjusted.p_value < 0.001


def test_null_with_trend_adjusted_ratio_contains_one():
    start, end = observation_period()
    data = simulate_initiations(2_000_000, rate_ratio=1.0, marker_trend=2.0, seed=33)
    result = sequence_symmetry_analysis(data, observation_start=start, observation_end=end)
    assert result.crude.estimate > 1.05  # the trend alone makes the marker look "caused"
    assert result.adjusted.contains(1.0), result.adjusted


def test_null_effect_ratio_accepts_integer_day_numbers():
    markers = pd.Series({5: 1, 10: 3, 12: 2, 400: 1})
    index = pd.Series({10: 2})
    assert null_effect_sequence_ratio(index, markers, window_days=365) == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------------------------
# The pipeline's choice of first dates (study_analysis.sequence_symmetry_for_drugs)
# ---------------------------------------------------------------------------------------------------------------
def _warehouse_with_first_dates(rows: list[tuple[int, str, str]], observation: tuple[str, str]):
    """An in-memory DuckDB with phenotype.person_summary and one observation period per person."""
    return first_dates_warehouse(
        first_dates=rows, person_id_type="BIGINT",
        observation_periods=[(person, *observation) for person in sorted({person for person, _, _ in rows})])


def test_pipeline_counts_only_index_dates_whose_whole_window_is_past_the_washout():
    """Observation 2012-01-01 to 2020-12-31, washout and window 365 days: a marker counts from 2012-12-31 on, so an
    index date counts only from 2013-12-31 on (then a marker anywhere in the year before it could count) and only
    until 2019-12-31 (a year of observation after it)."""
    from pipelines.statistics.study_analysis import sequence_symmetry_for_drugs

    rows = [
        # 1: index 2013-06-01 is past the washout, but half its window before is not: left out. Counting it would
        #    lose its marker-first partner whenever the marker fell in the washout year (here it does not).
        (1, "drug", "2013-06-01"), (1, "leg_cramps", "2013-03-01"),
        (2, "drug", "2015-01-01"), (2, "leg_cramps", "2015-06-01"),  # index first
        (3, "drug", "2016-01-01"), (3, "leg_cramps", "2015-07-01"),  # marker first
        (4, "drug", "2014-06-01"), (4, "leg_cramps", "2013-12-01"),  # marker first, both late enough
        (5, "drug", "2020-06-01"), (5, "leg_cramps", "2020-07-01"),  # less than a year of observation after index
        (6, "drug", "2014-03-01"), (6, "leg_cramps", "2012-06-01"),  # marker in the washout: not incident
    ]
    con = _warehouse_with_first_dates(rows, ("2012-01-01", "2020-12-31"))
    results = sequence_symmetry_for_drugs(con, ["drug"], marker="leg_cramps", window_days=365, washout_days=365)
    crude = next(r for _, _, r in results if r.method.startswith("Crude"))
    assert (crude.events_exposed, crude.events_unexposed) == (1, 2)


def test_pipeline_measures_observation_over_overlapping_periods():
    """Two overlapping periods (a duplicated enrolment record) are one stretch of observation: the index date
    2016-06-01 has observation from 2012 through 2020 around it, although the later period starts only in 2015."""
    from pipelines.statistics.study_analysis import sequence_symmetry_for_drugs

    rows = [(1, "drug", "2016-06-01"), (1, "leg_cramps", "2016-09-01"),
            (2, "drug", "2016-06-01"), (2, "leg_cramps", "2016-03-01")]
    periods = [(1, "2012-01-01", "2016-12-31"), (1, "2015-01-01", "2020-12-31")]  # person 2: one period 2015-2020
    con = _warehouse_with_first_dates([r for r in rows if r[0] == 2], ("2015-01-01", "2020-12-31"))
    con.executemany("INSERT INTO phenotype.person_summary VALUES (?, ?, ?)", [r for r in rows if r[0] == 1])
    con.executemany("INSERT INTO staging.observation_period VALUES (?, ?, ?)", periods)
    results = sequence_symmetry_for_drugs(con, ["drug"], marker="leg_cramps", window_days=365, washout_days=365)
    crude = next(r for _, _, r in results if r.method.startswith("Crude"))
    # Person 1 counts (index first); person 2 is observed only 517 days before the index date: left out.
    assert (crude.events_exposed, crude.events_unexposed) == (1, 0)


# ---------------------------------------------------------------------------------------------------------------
# Garrison 2012's design: quinine starts as the marker, age >= 50, quinine for an infection is no marker
# ---------------------------------------------------------------------------------------------------------------
def test_garrison_design_counts_by_age_and_drops_quinine_given_for_an_infection():
    from pipelines.statistics.sequence_symmetry import garrison_sequence_symmetry

    persons = {  # birth date, drug start, quinine fills, malaria or babesiosis records
        "P1": ("1945-01-01", "2015-06-01", ["2015-09-01"], []),               # 70: drug first, band 65-79
        "P2": ("1960-06-01", "2016-01-01", ["2015-08-01"], []),               # 55: quinine first
        "P3": ("1956-01-01", "2016-03-01", ["2016-05-01"], ["2016-04-01"]),   # infection 30 days before: no marker
        "P4": ("1956-01-01", "2016-03-01", ["2016-05-01"], ["2017-01-01"]),   # infection 8 months after: counts
        "P5": ("1971-01-01", "2016-03-01", ["2016-05-01"], []),               # 45 at the drug start: too young
        "P6": ("1966-03-01", "2016-06-01", ["2016-02-01"], []),               # 50 at the drug, 49 at quinine: counts
        "P7": ("1956-01-01", "2016-03-01", ["2016-05-01"], ["2013-02-01"]),   # infection 3 years before: counts
        "P8": ("1956-01-01", "2016-03-01", ["2016-05-01"], ["2016-05-11"]),   # coded 10 days after: no marker
        # Quinine for malaria in 2013, quinine again in 2016: the 2016 start is the marker (quinine first).
        "P9": ("1956-01-01", "2016-09-01", ["2013-06-01", "2016-05-01"], ["2013-06-01"]),
    }
    # Through the phenotype stage: quinine_start's own rule decides which fills an infection record takes away.
    from pipelines.phenotypes import run_phenotypes
    from tests.support.phenotype_staging import create_staging_tables, insert_rows

    con = duckdb.connect()
    create_staging_tables(con)
    insert_rows(con, "person", [{"person_id": person, "year_of_birth": int(birth[:4]), "birth_date": birth, "sex": "F"}
                                for person, (birth, _, _, _) in persons.items()])
    insert_rows(con, "observation_period", [
        {"observation_period_id": person, "person_id": person, "observation_period_start_date": "2012-01-01",
         "observation_period_end_date": "2020-12-31"} for person in persons])
    insert_rows(con, "drug_exposure", [  # ATC C10AA01 simvastatin (statins), P01BC01 quinine
        {"drug_exposure_id": f"{person}-{code}-{day}", "person_id": person, "drug_vocabulary": "ATC", "drug_code": code,
         "drug_exposure_start_date": day, "drug_exposure_end_date": day}
        for person, (_, drug, fills, _) in persons.items() for code, day in [("C10AA01", drug)]
        + [("P01BC01", fill) for fill in fills]])
    insert_rows(con, "condition_occurrence", [  # ICD-10-CM B54 unspecified malaria
        {"condition_occurrence_id": f"{person}-{day}", "person_id": person, "condition_vocabulary": "ICD10CM",
         "condition_code": "B54", "condition_start_date": day}
        for person, (_, _, _, days) in persons.items() for day in days])
    run_phenotypes(con)
    rows = garrison_sequence_symmetry(con, ["statins"])
    counts = {exposure: (r.events_exposed, r.events_unexposed) for exposure, marker, r in rows
              if r.method.startswith("Crude") and marker == "quinine_start"}
    assert counts == {
        "statins (Garrison 2012 design, age 50+)": (3, 3),    # P1, P4, P7 drug first; P2, P6, P9 quinine first
        "statins (Garrison 2012 design, age 50-64)": (2, 3),  # P4, P7; P2, P6, P9
        "statins (Garrison 2012 design, age 65-79)": (1, 0),  # P1
    }
