"""Crude 2x2 measures, incidence rates and rate ratios against hand-checkable published/exact values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.statistics import (
    RESULT_COLUMNS,
    crude_odds_ratio,
    crude_risk_ratio,
    incidence_rate,
    incidence_rate_from_counts,
    incidence_rate_ratio,
    incidence_rate_ratio_from_counts,
    mantel_haenszel_odds_ratio,
    odds_ratio_from_counts,
    risk_ratio_from_counts,
)

Z = stats.norm.ppf(0.975)


def persons_from_2x2(a: int, b: int, c: int, d: int) -> pd.DataFrame:
    """A per-person frame reproducing the 2x2 table (rows exposure, columns outcome)."""
    exposure = [1] * (a + b) + [0] * (c + d)
    outcome = [1] * a + [0] * b + [1] * c + [0] * d
    return pd.DataFrame({"exposure": exposure, "outcome": outcome})


def test_textbook_2x2_odds_ratio_with_woolf_interval():
    # a=20, b=80 (exposed), c=10, d=90 (unexposed): OR = (20*90)/(80*10) = 2.25.
    result = crude_odds_ratio(persons_from_2x2(20, 80, 10, 90))
    se = math.sqrt(1 / 20 + 1 / 80 + 1 / 10 + 1 / 90)  # Woolf
    assert result.estimate == pytest.approx(2.25, abs=1e-12)
    assert result.ci_lower == pytest.approx(2.25 * math.exp(-Z * se), abs=1e-10)
    assert result.ci_upper == pytest.approx(2.25 * math.exp(Z * se), abs=1e-10)
    assert round(result.ci_lower, 4) == 0.9943
    assert round(result.ci_upper, 4) == 5.0915
    assert round(result.p_value, 4) == 0.0516  # Wald test of log OR: 2 * P(Z > 0.81093 / 0.41667)
    assert (result.n_exposed, result.n_unexposed, result.events_exposed, result.events_unexposed) == (100, 100, 20, 10)
    assert result.person_years_exposed is None


def test_textbook_2x2_risk_ratio_with_log_interval():
    result = crude_risk_ratio(persons_from_2x2(20, 80, 10, 90))
    se = math.sqrt(1 / 20 - 1 / 100 + 1 / 10 - 1 / 100)
    assert result.estimate == pytest.approx(2.0, abs=1e-12)
    assert result.ci_lower == pytest.approx(2.0 * math.exp(-Z * se), abs=1e-10)
    assert result.ci_upper == pytest.approx(2.0 * math.exp(Z * se), abs=1e-10)
    assert round(result.ci_lower, 4) == 0.9866
    assert round(result.ci_upper, 4) == 4.0545


def test_counts_and_per_person_routes_agree():
    from_counts = odds_ratio_from_counts(20, 100, 10, 100)
    from_persons = crude_odds_ratio(persons_from_2x2(20, 80, 10, 90))
    assert from_counts == from_persons
    assert risk_ratio_from_counts(20, 100, 10, 100) == crude_risk_ratio(persons_from_2x2(20, 80, 10, 90))


def test_to_row_has_exactly_the_result_columns():
    row = odds_ratio_from_counts(20, 100, 10, 100).to_row()
    assert tuple(row) == RESULT_COLUMNS


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        odds_ratio_from_counts(120, 100, 10, 100)
    with pytest.raises(ValueError):
        crude_odds_ratio(pd.DataFrame({"exposure": [1, 0, 2], "outcome": [1, 0, 0]}))
    with pytest.raises(ValueError, match="missing column"):
        crude_odds_ratio(pd.DataFrame({"exposure": [1, 0]}))


def test_mantel_haenszel_equals_crude_for_a_single_stratum_and_pools_homogeneous_strata():
    persons = persons_from_2x2(20, 80, 10, 90).assign(stratum=1)
    single = mantel_haenszel_odds_ratio(persons, "stratum")
    assert single.estimate == pytest.approx(2.25)
    # Two strata, each with OR exactly 2.25 but different baseline risks: the pooled OR is 2.25.
    second = persons_from_2x2(45, 20, 20, 20).assign(stratum=2)  # OR = 45*20/(20*20) = 2.25
    pooled = mantel_haenszel_odds_ratio(pd.concat([persons, second]), "stratum")
    assert pooled.estimate == pytest.approx(2.25)
    assert pooled.ci_lower < 2.25 < pooled.ci_upper


def test_incidence_rate_3_events_in_1000_person_years_exact_interval():
    result = incidence_rate_from_counts(events=3, person_years=1000)
    # Independent route: Garwood interval from chi-squared quantiles, per 1,000 person-years.
    assert result.estimate == pytest.approx(3.0)
    assert result.ci_lower == pytest.approx(stats.chi2.ppf(0.025, 2 * 3) / 2, abs=1e-10)
    assert result.ci_upper == pytest.approx(stats.chi2.ppf(0.975, 2 * 3 + 2) / 2, abs=1e-10)
    assert round(result.ci_lower, 4) == 0.6187
    assert round(result.ci_upper, 4) == 8.7673


def test_incidence_rate_from_persons_uses_person_years():
    persons = pd.DataFrame({"outcome": [1, 1, 1, 0], "followup_days": [365.25 * 250] * 4})
    result = incidence_rate(persons)
    assert result.person_years_exposed == pytest.approx(1000)
    assert result.estimate == pytest.approx(3.0)
    assert round(result.ci_upper, 4) == 8.7673


def test_zero_events_has_zero_lower_bound():
    result = incidence_rate_from_counts(0, 500)
    assert result.estimate == 0 and result.ci_lower == 0
    assert result.ci_upper == pytest.approx(stats.chi2.ppf(0.975, 2) / 2 / 500 * 1000)


def test_incidence_rate_ratio_exact_conditional_interval():
    # 10 events in 1,000 PY vs 5 in 2,000 PY: IRR = 4.
    result = incidence_rate_ratio_from_counts(10, 1000.0, 5, 2000.0)
    assert result.estimate == pytest.approx(4.0)
    # Independent route: Clopper-Pearson limits of the exposed share of the 15 events from beta quantiles,
    # converted to the rate ratio (what R's poisson.test reports).
    share_lower = stats.beta.ppf(0.025, 10, 5 + 1)
    share_upper = stats.beta.ppf(0.975, 10 + 1, 5)
    assert result.ci_lower == pytest.approx(share_lower / (1 - share_lower) * 2, rel=1e-9)
    assert result.ci_upper == pytest.approx(share_upper / (1 - share_upper) * 2, rel=1e-9)
    expected_p = stats.binomtest(10, 15, p=1000 / 3000).pvalue
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)


def test_incidence_rate_ratio_from_persons():
    persons = pd.DataFrame(
        {
            "exposure": [1] * 4 + [0] * 4,
            "outcome": [1, 1, 0, 0, 1, 0, 0, 0],
            "followup_days": [365.25] * 8,
        }
    )
    result = incidence_rate_ratio(persons)
    assert result.estimate == pytest.approx(2.0)
    assert result.events_exposed == 2 and result.events_unexposed == 1
    assert result.person_years_exposed == pytest.approx(4.0)
    assert np.isfinite(result.ci_upper) and result.ci_lower < 2.0 < result.ci_upper
