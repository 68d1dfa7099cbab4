"""Negative-control exposures: drugs the outcome is believed not to depend on, estimated with the screening study's
primary analysis and design, published in results.negative_control_estimates (control_type exposure) and used to
calibrate every exposure's primary estimate (OHDSI EmpiricalCalibration)."""

from __future__ import annotations

import math
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines.cohorts.study import StudyDefinitionError
from pipelines.statistics.empirical_calibration import fit_null
from pipelines.statistics.study_analysis import (EXPOSURE_CONTROL, OUTCOME_CONTROL, calibrate_primary_analysis)
from tests.support.hand_cohort import NEW_USER, make_study

CONTROL_DRUGS = ["tamsulosin", "latanoprost", "tolterodine", "darifenacin", "terbinafine"]
Z = 1.959963984540054


def test_exposure_controls_calibrate_every_exposure_and_outcome_controls_only_their_own():
    """Five exposure-control rows (a control drug against the study outcome) apply to every exposure; an
    outcome-control row counts only for its own exposure. Hand check of one calibrated interval: the null fitted on
    exactly the rows that apply, then exp(log - mu -/+ 1.96 sqrt(sd^2 + se^2))."""
    exposure_rows = pd.DataFrame({
        "exposure": CONTROL_DRUGS, "control_type": EXPOSURE_CONTROL,
        "log_estimate": [0.10, -0.05, 0.30, 0.22, -0.12], "se_log_estimate": [0.10, 0.15, 0.12, 0.20, 0.18]})
    outcome_row = pd.DataFrame({"exposure": ["statins"], "control_type": OUTCOME_CONTROL,
                                "log_estimate": [1.5], "se_log_estimate": [0.1]})
    controls = pd.concat([exposure_rows, outcome_row], ignore_index=True)
    calibrations = calibrate_primary_analysis(controls, ["statins", "insulin"], "cox_adjusted", 6)
    insulin, statins = calibrations["insulin"], calibrations["statins"]
    assert insulin.null.controls == 5 and statins.null.controls == 6  # statins: its own outcome control too
    expected = fit_null(exposure_rows["log_estimate"], exposure_rows["se_log_estimate"])
    assert (insulin.null.mean, insulin.null.sd) == pytest.approx((expected.mean, expected.sd), abs=1e-9)
    assert statins.null.mean > insulin.null.mean + 0.05  # the outcome control at log 1.5 pulls statins' null up
    log_hr, se = math.log(1.8), 0.2
    columns = insulin.columns(log_hr, se)
    half = Z * math.sqrt(expected.sd ** 2 + se ** 2)
    assert columns["calibrated_estimate"] == pytest.approx(math.exp(log_hr - expected.mean), rel=1e-6)
    assert columns["calibrated_ci_lower"] == pytest.approx(math.exp(log_hr - expected.mean - half), rel=1e-6)
    assert columns["calibrated_ci_upper"] == pytest.approx(math.exp(log_hr - expected.mean + half), rel=1e-6)
    assert columns["calibration_note"].startswith("calibrated on 5 of 6 negative controls")
    # Four usable exposure controls (one hidden: no estimate) are too few for an exposure with no outcome control.
    hidden = controls.assign(log_estimate=controls["log_estimate"].where(controls.index != 0))
    assert calibrate_primary_analysis(hidden, ["insulin"], "cox_adjusted", 6)["insulin"].null is None


@pytest.mark.parametrize("changes, message", [
    ({"negative_control_exposures": ["hypertension"]}, "must be a drug phenotype"),
    ({"negative_control_exposures": ["tamsulosin", "tamsulosin"]}, "listed twice"),
    ({"exposures": [{"phenotype": "tamsulosin", "window": "current_use"}],
      "negative_control_exposures": ["tamsulosin"]}, "also the outcome, an exposure"),
    ({"index": NEW_USER, "negative_control_exposures": ["tamsulosin"]}, "new_user study"),
])
def test_the_study_file_rejects_controls_that_cannot_be_negative_control_exposures(changes, message):
    with pytest.raises((ValueError, StudyDefinitionError), match=message):
        make_study(**changes)


def test_a_listed_control_is_recorded_as_current_use_at_index_and_stays_out_of_table1_and_the_exposures():
    study = make_study(exposures=[{"phenotype": "statins", "window": "current_use"}],
                       negative_control_exposures=["tamsulosin"])
    variable = [v for v in study.variables if v.variable == "tamsulosin"][0]
    assert (variable.role, variable.window.kind) == ("negative_control_exposure", "current_use")
    assert "tamsulosin" in study.phenotype_ids and [r.phenotype for r in study.exposures] == ["statins"]
    assert all(d.phenotype_id != "tamsulosin" for d in study.cohort_definitions())


# ---------------------------------------------------------------------------------------------------------------
# On a generated extract, through the real ingest, phenotype, cohort and statistics stages
# ---------------------------------------------------------------------------------------------------------------
PATIENTS, SEED = 5000, 5
SCREENED = ["statins", "thiazide_diuretics", "calcium_channel_blockers", "ace_inhibitors", "beta_blockers"]


def screening_study():
    return make_study(
        id="exposure_control_check", study_period={"start": "2013-01-01", "end": "2023-12-31"},
        exposures=[{"phenotype": drug, "window": "current_use"} for drug in SCREENED],
        covariates=["diabetes_mellitus"], negative_control_exposures=CONTROL_DRUGS, seed=11)


@pytest.fixture(scope="module")
def published(generated_extract, tmp_path_factory):
    from pipelines.cohorts.build import build_study
    from pipelines.ingest.loader import load_extract
    from pipelines.phenotypes import run_phenotypes
    from pipelines.statistics.assets import publish_study_results
    from pipelines.statistics.checks import STUDY_CHECKS, run_checks
    from pipelines.statistics.study_analysis import analyse_study

    extract = generated_extract(PATIENTS, SEED)
    study = screening_study()
    path = tmp_path_factory.mktemp("exposure_controls") / "study.duckdb"
    with duckdb.connect(str(path)) as con, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_extract(con, extract.path)
        run_phenotypes(con)
        build_study(con, study)
        analysis = analyse_study(con, study)
        publish_study_results(con, study, analysis)
        queries = {
            "controls": "SELECT * FROM results.negative_control_estimates WHERE study_id = ?",
            "primary": "SELECT * FROM results.associations WHERE study_id = ? AND analysis_id = 'cox_adjusted' "
                       "ORDER BY exposure",
            "attrition": "SELECT * FROM results.analysis_attrition WHERE study_id = ?"}
        tables = {name: con.execute(sql, [study.id]).df() for name, sql in queries.items()}
        # Published again with a small-cell threshold just above the smallest control's exposed events: that
        # control's count is a small cell, hidden with what recomputes it, and the calibration no longer uses it.
        threshold = int(tables["controls"]["events_exposed"].min()) + 1
        strict = study.model_copy(update={"small_cell_threshold": threshold})
        publish_study_results(con, strict, analysis)
        tables.update({f"strict {name}": con.execute(sql, [study.id]).df() for name, sql in queries.items()})
        tables["strict checks"] = run_checks(con, study.id, threshold, STUDY_CHECKS,
                                             ledger=analysis.disclosure_ledger)
        tables["strict threshold"] = threshold
    return extract, tables


@pytest.mark.slow
def test_on_a_generated_extract_the_control_drugs_centre_on_hr_1_and_calibrate_the_screening_estimates(published):
    """The generator gives the control drugs no effect on cramps and no planted bias: their adjusted HRs scatter
    around 1, so the empirical null fitted on them has a mean within three standard errors of 0. Each screening
    exposure's calibrated interval is computed from exactly the published control-exposure rows (hand check)."""
    extract, tables = published
    assert all(e["causal_hazard_ratio"] == 1.0 for e in extract.truth["negative_control_exposures"]["exposures"])
    controls = tables["controls"]
    assert set(controls["control_type"]) == {EXPOSURE_CONTROL}
    assert set(controls["exposure"]) == set(CONTROL_DRUGS) and (controls["outcome"] == "leg_cramps").all()
    assert (controls["analysis_id"] == "cox_adjusted").all()
    usable = controls[controls["log_estimate"].notna()]
    assert len(usable) >= 5, controls[["exposure", "n_exposed", "events_exposed", "not_estimable_reason"]]
    null = fit_null(usable["log_estimate"], usable["se_log_estimate"])
    pooled_se = 1 / math.sqrt(float(np.sum(1 / (usable["se_log_estimate"] ** 2 + null.sd ** 2))))
    assert abs(null.mean) < 3 * pooled_se, (null, pooled_se)
    # Each control's attrition is published beside the exposures', from the same cohort.
    attrition = tables["attrition"]
    first = attrition[attrition["step_order"] == 1]
    cohort = first.loc[first["exposure"] == SCREENED[0], ["persons_exposed", "persons_unexposed"]].sum(axis=1).iloc[0]
    for drug in CONTROL_DRUGS:
        rows = first[first["exposure"] == drug]
        assert len(rows) == 1 and int(rows["persons_exposed"].iloc[0] + rows["persons_unexposed"].iloc[0]) == cohort
    primary = tables["primary"]
    assert list(primary["exposure"]) == sorted(SCREENED)
    row = primary[primary["exposure"] == "statins"].iloc[0]
    half = Z * math.sqrt(null.sd ** 2 + row["se_log_estimate"] ** 2)
    assert row["calibrated_estimate"] == pytest.approx(math.exp(row["log_estimate"] - null.mean), rel=1e-5)
    assert row["calibrated_ci_lower"] == pytest.approx(math.exp(row["log_estimate"] - null.mean - half), rel=1e-5)
    assert row["calibrated_ci_upper"] == pytest.approx(math.exp(row["log_estimate"] - null.mean + half), rel=1e-5)
    assert row["calibration_note"].startswith(f"calibrated on {len(usable)} of 5 negative controls")
    assert primary["calibrated_estimate"].notna().all()


@pytest.mark.slow
def test_a_control_drug_s_small_count_is_hidden_by_the_study_ledger_and_leaves_the_calibration(published):
    """The control drugs' rows go through the study's one disclosure ledger: with the threshold above the smallest
    control's exposed events, that count is printed nowhere (its row's estimates hidden with it), every blocking
    check passes, and the calibration is fitted on the controls still published only."""
    _, tables = published
    threshold, controls = tables["strict threshold"], tables["strict controls"]
    assert all(verdict.passed for verdict in tables["strict checks"]), tables["strict checks"]
    small = tables["controls"]["events_exposed"] < threshold
    assert small.sum() >= 1
    hidden = controls[controls["exposure"].isin(tables["controls"].loc[small, "exposure"])]
    assert hidden["events_exposed"].isna().all() and hidden["estimate"].isna().all()
    assert hidden["suppressed_columns"].str.contains("events_exposed").all()
    usable = controls[controls["log_estimate"].notna()]
    notes = tables["strict primary"]["calibration_note"].dropna().unique()
    assert len(usable) <= 4  # at least one control hidden
    assert len(notes) == 1 and notes[0].startswith(f"not calibrated: {len(usable)} of 5 negative controls"), notes
