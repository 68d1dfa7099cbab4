"""E-values (VanderWeele & Ding, Ann Intern Med 2017) against hand-computed values."""

import math

import pytest

from pipelines.statistics.evalues import (e_value_of_interval, e_value_of_risk_ratio, e_values,
                                          hazard_ratio_as_risk_ratio)

HR = "hazard ratio of first outcome, exposed vs unexposed"


def test_the_papers_example_risk_ratio_3_9_with_ci_1_8_to_8_7():
    # VanderWeele & Ding 2017: RR 3.9 (1.8-8.7) -> E-value 7.26 for the estimate, 3.0 for the lower limit.
    assert e_value_of_risk_ratio(3.9) == pytest.approx(3.9 + math.sqrt(3.9 * 2.9))
    assert e_value_of_risk_ratio(3.9) == pytest.approx(7.26, abs=0.005)
    assert e_value_of_interval(3.9, 1.8, 8.7) == pytest.approx(3.0)


def test_a_protective_ratio_is_inverted_and_its_interval_uses_the_upper_limit():
    # RR 0.5 -> 1/0.5 = 2 -> 2 + sqrt(2) = 3.414; upper limit 0.8 -> 1.25 + sqrt(1.25 * 0.25) = 1.809.
    assert e_value_of_risk_ratio(0.5) == pytest.approx(2 + math.sqrt(2))
    assert e_value_of_interval(0.5, 0.3, 0.8) == pytest.approx(1.25 + math.sqrt(1.25 * 0.25))


def test_an_interval_that_includes_1_has_e_value_1():
    assert e_value_of_interval(1.4, 0.9, 2.2) == 1.0
    assert e_values(HR, 0.7, 0.45, 1.05)[1] == 1.0


def test_a_rare_outcome_uses_the_hazard_ratio_as_it_is():
    assert e_values(HR, 3.9, 1.8, 8.7, outcome_share=0.05) == pytest.approx((7.263, 3.0), abs=0.001)


def test_a_common_outcome_takes_the_square_root_transform_first():
    # HR 2 with 30% of persons having the outcome: RR = (1 - 0.5^sqrt 2) / (1 - 0.5^sqrt 0.5) = 0.62479 / 0.38746 = 1.6125.
    rr = (1 - 0.5 ** math.sqrt(2)) / (1 - 0.5 ** math.sqrt(0.5))
    assert hazard_ratio_as_risk_ratio(2.0) == pytest.approx(rr)
    assert rr == pytest.approx(1.6125, abs=1e-4)
    point, interval = e_values(HR, 2.0, 1.5, 2.7, outcome_share=0.30)
    assert point == pytest.approx(rr + math.sqrt(rr * (rr - 1)))
    lower = hazard_ratio_as_risk_ratio(1.5)
    assert interval == pytest.approx(lower + math.sqrt(lower * (lower - 1)))
    # The same hazard ratio of a rare outcome has the larger E-value of the untransformed ratio.
    assert e_values(HR, 2.0, 1.5, 2.7, outcome_share=0.05)[0] == pytest.approx(2 + math.sqrt(2))


def test_sequence_ratios_and_rates_get_no_e_value():
    with pytest.raises(ValueError):
        e_values("adjusted sequence ratio", 2.0, 1.5, 2.7)
    with pytest.raises(ValueError):
        e_values("incidence rate per 1,000 person-years, exposed", 2.0, 1.5, 2.7)
