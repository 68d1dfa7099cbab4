"""Empirical calibration on the generator's negative-control outcomes, through the real ingest, phenotype, cohort
and statistics stages: with no planted bias the controls centre on HR 1 and the primary rows are calibrated
without being moved; with a planted detection bias of log-HR b the fitted null finds b, and calibration takes the
false positives of null exposure-outcome pairs away.

The study is a new-user comparison of thiazide or thiazide-like diuretics (the generator's bias exposures) with
dihydropyridine calcium channel blockers, on 5,000 generated persons: wider than the bundled thiazide_vs_ccb (whole
data window, 180 days of washout and prior observation, no indication) so that the most frequent controls have
enough events at this size, and without small-cell suppression (the small-cell rule is tested elsewhere).
"""

from __future__ import annotations

import math
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines.statistics.empirical_calibration import calibrated_p_value, fit_null
from tests.support.hand_cohort import make_study

# Ingest, phenotypes, cohort and statistics of 5,000 persons: about 25 s per test on the shared 2-core machine.
pytestmark = pytest.mark.slow

PATIENTS, SEED = 5000, 5
CONTROLS = ["impacted_cerumen", "seborrheic_keratosis", "presbyopia", "dry_eye_syndrome", "onychomycosis",
            "contact_dermatitis", "acute_conjunctivitis", "wrist_pain"]
PLANTED_LOG_HR, PLANTED_SD = math.log(2.5), 0.1


def calibration_study():
    return make_study(
        id="calibration_check",
        index={"rule": "new_user", "target": "thiazide_or_thiazide_like_diuretics",
               "comparator": "dihydropyridine_calcium_channel_blockers", "washout_days": 180},
        study_period={"start": "2012-01-01", "end": "2023-12-31"}, prior_observation_days=180,
        covariates=["diabetes_mellitus", "hypothyroidism", "osteoarthritis"], negative_control_outcomes=CONTROLS,
        seed=7)


def run_study(extract, tmp_path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the published control estimates, the primary rows of results.associations) of the study on the extract."""
    from pipelines.cohorts.build import build_study
    from pipelines.ingest.loader import load_extract
    from pipelines.phenotypes import run_phenotypes
    from pipelines.statistics.assets import publish_study_results
    from pipelines.statistics.study_analysis import analyse_study

    study = calibration_study()
    with duckdb.connect(str(tmp_path / "study.duckdb")) as con, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' overflow warnings on the propensity fits of tiny strata
        load_extract(con, extract.path)
        run_phenotypes(con)
        build_study(con, study)
        publish_study_results(con, study, analyse_study(con, study))
        controls = con.execute("SELECT exposure, outcome, analysis_id, log_estimate, se_log_estimate, p_value, "
                               "not_estimable_reason FROM results.negative_control_estimates WHERE study_id = ?",
                               [study.id]).df()
        primary = con.execute("SELECT exposure, analysis_id, estimate, log_estimate, se_log_estimate, p_value, "
                              "calibrated_estimate, calibrated_ci_lower, calibrated_ci_upper, calibrated_p_value, "
                              "calibration_note FROM results.associations WHERE study_id = ? "
                              "AND calibration_note IS NOT NULL ORDER BY exposure", [study.id]).df()
    return controls, primary


def published(controls: pd.DataFrame, exposure: str) -> pd.DataFrame:
    """The published control estimates of one exposure row (comparison and time at risk)."""
    rows = controls[(controls["exposure"] == exposure) & controls["log_estimate"].notna()]
    assert (rows["analysis_id"] == "ps_matched_cox").all()
    return rows


def tolerance(rows: pd.DataFrame, sd: float) -> float:
    """Three standard errors of the null's mean: the inverse-variance pooled SE of the controls' estimates, each
    widened by the fitted systematic-error SD (the sample size enters through the controls' SEs)."""
    return 3 / math.sqrt(float(np.sum(1 / (rows["se_log_estimate"] ** 2 + sd ** 2))))


def test_without_a_planted_bias_the_controls_centre_on_hr_1_and_the_primary_rows_are_calibrated(
        generated_extract, tmp_path):
    extract = generated_extract(PATIENTS, SEED)
    assert not extract.truth["negative_controls"]["bias"]["planted"]
    controls, primary = run_study(extract, tmp_path)
    assert len(primary) == 2 and (primary["analysis_id"] == "ps_matched_cox").all()
    for _, row in primary.iterrows():
        rows = published(controls, row["exposure"])
        assert len(rows) >= 5, rows
        null = fit_null(rows["log_estimate"], rows["se_log_estimate"])
        assert abs(null.mean) < tolerance(rows, null.sd), (row["exposure"], null)
        assert row["calibration_note"].startswith("calibrated on ") and "not calibrated" not in row["calibration_note"]
        assert row["calibrated_ci_lower"] < row["calibrated_estimate"] < row["calibrated_ci_upper"]
        assert 0 < row["calibrated_p_value"] <= 1
        # A null near 0 moves the estimate by little: by exp(-mean), within the tolerance of the null's mean.
        assert abs(math.log(row["calibrated_estimate"] / row["estimate"])) < tolerance(rows, null.sd)


def test_a_planted_bias_is_found_by_the_null_and_calibration_removes_its_false_positives(
        generated_extract, tmp_path):
    """Bias exp(b_c), b_c ~ N(log 2.5, 0.1^2), on every control from the first diuretic fill on. On treatment
    (comparator persons are censored before they start a diuretic) the controls' estimates target exp(b_c) exactly,
    so the fitted null's mean is near log 2.5. Each control is a null exposure-outcome pair: its raw p-value is
    mostly small (the bias alone), its p-value calibrated on the other controls (leave one out, as Schuemie 2014
    evaluates calibration) is larger, and fewer calibrated p-values fall below 0.05."""
    extract = generated_extract(PATIENTS, SEED, negative_control_bias=PLANTED_LOG_HR,
                                negative_control_bias_sd=PLANTED_SD)
    bias = extract.truth["negative_controls"]["bias"]
    assert bias["planted"] and bias["log_hr"] == PLANTED_LOG_HR
    controls, primary = run_study(extract, tmp_path)
    on_treatment = [exposure for exposure in primary["exposure"] if ", on treatment" in exposure]
    rows = published(controls, on_treatment[0])
    assert len(rows) >= 5, rows
    null = fit_null(rows["log_estimate"], rows["se_log_estimate"])
    assert abs(null.mean - PLANTED_LOG_HR) < tolerance(rows, null.sd), null
    assert null.mean > tolerance(rows, null.sd)  # and distinguishable from no bias
    raw, calibrated = [], []
    for position in range(len(rows)):
        others = rows.drop(rows.index[position])
        held_out = rows.iloc[position]
        raw.append(held_out["p_value"])
        calibrated.append(calibrated_p_value(fit_null(others["log_estimate"], others["se_log_estimate"]),
                                             held_out["log_estimate"], held_out["se_log_estimate"]))
    raw, calibrated = np.array(raw), np.array(calibrated)
    assert np.median(calibrated) > np.median(raw)
    assert (calibrated < 0.05).sum() < max((raw < 0.05).sum(), 1)
    # The primary rows are calibrated on the biased controls: the estimate moves down by exp(-mean) of its row.
    for _, row in primary.iterrows():
        assert row["calibration_note"].startswith("calibrated on ")
        assert row["calibrated_estimate"] < row["estimate"]
