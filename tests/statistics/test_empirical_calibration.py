"""Empirical calibration (OHDSI EmpiricalCalibration: Schuemie et al. Stat Med 2014, PNAS 2018) on hand-checkable
negative controls and on simulated controls with a planted systematic error."""

import math

import numpy as np
import pytest
from scipy import stats

from pipelines.statistics.empirical_calibration import (NullDistribution, calibrated_confidence_interval,
                                                        calibrated_p_value, fit_null, null_log_likelihood)


def test_controls_exactly_at_the_null_give_no_systematic_error_and_leave_p_unchanged():
    null = fit_null(np.zeros(20), np.full(20, 0.05))
    assert null.mean == pytest.approx(0, abs=1e-6)
    assert null.sd == pytest.approx(0, abs=1e-3)
    # An estimate HR 1.5 with SE 0.2: traditional p = 2 (1 - Phi(log 1.5 / 0.2)).
    raw = 2 * stats.norm.sf(math.log(1.5) / 0.2)
    assert calibrated_p_value(null, math.log(1.5), 0.2) == pytest.approx(raw, rel=1e-3)
    estimate, lower, upper = calibrated_confidence_interval(null, math.log(1.5), 0.2)
    assert (estimate, lower, upper) == pytest.approx(
        (1.5, 1.5 * math.exp(-1.959964 * 0.2), 1.5 * math.exp(1.959964 * 0.2)), rel=1e-3)


def test_controls_centred_at_hr_2_make_an_hr_of_2_null():
    log2 = math.log(2)
    null = fit_null(np.full(15, log2) + np.linspace(-0.01, 0.01, 15), np.full(15, 0.05))
    assert null.mean == pytest.approx(log2, abs=1e-3)
    assert calibrated_p_value(null, log2, 0.1) == pytest.approx(1.0, abs=0.01)
    # The raw p-value of the same estimate is tiny; the calibrated interval is centred on 1.
    assert 2 * stats.norm.sf(log2 / 0.1) < 1e-10
    estimate, lower, upper = calibrated_confidence_interval(null, log2, 0.1)
    assert estimate == pytest.approx(1.0, abs=1e-3) and lower < 1 < upper


def test_the_fit_maximises_the_likelihood_with_each_controls_standard_error():
    # Hand-made: two controls, log estimates -0.1 and 0.3 with SEs 0.1 and 0.3. The ML mean is the precision-
    # weighted mean with weights 1 / (sd^2 + se^2); for sd = 0, (-0.1 * 100 + 0.3 * 11.1) / 111.1 = -0.06.
    logs, ses = np.array([-0.1, 0.3]), np.array([0.1, 0.3])
    null = fit_null(logs, ses)
    weights = 1 / (null.sd ** 2 + ses ** 2)
    assert null.mean == pytest.approx(float(np.sum(weights * logs) / np.sum(weights)), abs=1e-4)
    best = null_log_likelihood(null.mean, null.sd, logs, ses)
    for mean, sd in ((null.mean + 0.02, null.sd), (null.mean, null.sd + 0.05), (0.0, 0.2)):
        assert null_log_likelihood(mean, sd, logs, ses) < best


def test_a_planted_systematic_error_is_recovered_from_simulated_controls():
    # EmpiricalCalibration's simulateControls: true log RR 0, systematic error N(0.25, 0.2^2), SE ~ U(0.05, 0.3).
    rng = np.random.default_rng(7)
    n = 2000
    ses = rng.uniform(0.05, 0.3, n)
    logs = rng.normal(0.25, 0.2, n) + rng.normal(0, ses)
    null = fit_null(logs, ses)
    assert null.mean == pytest.approx(0.25, abs=0.02)
    assert null.sd == pytest.approx(0.2, abs=0.02)
    assert null.controls == n
    # Calibrated intervals of new null estimates with the same error cover log RR 0 about 95% of the time; the
    # raw intervals far less often.
    ses_new = rng.uniform(0.05, 0.3, n)
    new = rng.normal(0.25, 0.2, n) + rng.normal(0, ses_new)
    covered = [lo <= 1 <= hi for lo, hi in (calibrated_confidence_interval(null, b, s)[1:] for b, s in zip(new, ses_new))]
    raw = np.abs(new / ses_new) < 1.959964
    assert np.mean(covered) == pytest.approx(0.95, abs=0.015)
    assert np.mean(raw) < 0.6


def test_controls_without_a_finite_estimate_are_left_out_and_none_left_is_an_error():
    null = fit_null([0.1, np.nan, np.inf, 0.1], [0.1, 0.1, 0.1, np.nan])
    assert null.controls == 1
    with pytest.raises(ValueError):
        fit_null([np.nan], [0.1])


def test_calibrated_p_of_a_known_null():
    # mean 0.2, sd 0.1; estimate log 0.5 with SE 0.2: z = (0.5 - 0.2) / sqrt(0.01 + 0.04) = 1.3416.
    p = calibrated_p_value(NullDistribution(0.2, 0.1, 10), 0.5, 0.2)
    assert p == pytest.approx(2 * stats.norm.sf(0.3 / math.sqrt(0.05)))
