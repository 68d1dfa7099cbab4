"""Negative-control outcomes: the study's primary analysis re-estimated for each control with the same design
(persons with the control before their first day at risk left out, as CohortMethod does), the empirical
calibration of the primary estimates on the published control estimates, and the E-value columns."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines.statistics.empirical_calibration import calibrated_confidence_interval, calibrated_p_value, fit_null
from pipelines.statistics.results import EstimateResult
from pipelines.statistics.study_analysis import (MIN_NEGATIVE_CONTROLS, analyse_new_user_study,
                                                 calibrate_primary_analysis, negative_control_estimates,
                                                 negative_control_first_dates, results_frame)
from tests.support.hand_cohort import NEW_USER, HandExtract, make_study

CONTROLS = ["wrist_pain", "presbyopia"]
INDEX = pd.Timestamp("2017-01-01")


def simulated_new_users(persons: int = 3000, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Target (treatment 1) and comparator initiators with age, sex and diabetes, followed 200-2,000 days. Control
    outcomes: wrist pain at 0.10 per year in both arms (no effect); presbyopia at 0.10 per year in the comparator
    and 0.20 in the target (detection bias: HR 2). A tenth of the persons had each control before index."""
    rng = np.random.default_rng(seed)
    age = rng.integers(40, 80, persons)
    diabetes = rng.random(persons) < 0.3
    treatment = (rng.random(persons) < 1 / (1 + np.exp(-(age - 60) / 20 - 0.5 * diabetes))).astype(int)
    index = INDEX + pd.to_timedelta(rng.integers(0, 700, persons), unit="D")
    start = index + pd.Timedelta(days=1)
    end = start + pd.to_timedelta(rng.integers(200, 2000, persons), unit="D")
    population = pd.DataFrame({
        "index_date": index, "age_at_index": age, "sex": np.where(rng.random(persons) < 0.5, "F", "M"),
        "time_at_risk_start": start, "followup_end": end, "outcome_flag": False, "outcome_date": pd.NaT,
        "treatment": treatment, "on_treatment_end": end, "death_date": pd.NaT, "diabetes_mellitus": diabetes})
    dates = {}
    for control, hazard_ratio in (("wrist_pain", 1.0), ("presbyopia", 2.0)):
        rate = 0.10 / 365.25 * np.where(treatment == 1, hazard_ratio, 1.0)
        day = pd.to_timedelta(np.floor(rng.exponential(1 / rate)), unit="D")
        first = start + day
        prior = rng.random(persons) < 0.1
        first = first.where(~prior, index - pd.to_timedelta(rng.integers(0, 3000, persons), unit="D"))
        dates[control] = first
    return population, pd.DataFrame(dates)


def new_user_study(**changes):
    return make_study(index=NEW_USER, covariates=["diabetes_mellitus"], negative_control_outcomes=CONTROLS, seed=7,
                      **changes)


def test_a_control_had_before_the_first_day_at_risk_removes_the_person_and_the_counts_are_the_controls():
    population, dates = simulated_new_users()
    study = new_user_study(primary_analysis="crude_irr")
    rows = negative_control_estimates(population, dates, study, analyse_new_user_study(population, study,
                                                                                        only="crude_irr"))
    assert [(e.split(",")[1].strip()[:4], outcome, r.analysis_id) for e, outcome, r in rows] == [
        ("inte", "wrist_pain", "crude_irr"), ("on t", "wrist_pain", "crude_irr"),
        ("inte", "presbyopia", "crude_irr"), ("on t", "presbyopia", "crude_irr")]
    for _, control, result in rows[::2]:  # intention to treat
        first = dates[control]
        kept = ~(first < population["time_at_risk_start"])
        event = kept & (first <= population["followup_end"])
        treated = population["treatment"] == 1
        assert (result.n_exposed, result.n_unexposed) == (int((kept & treated).sum()), int((kept & ~treated).sum()))
        assert (result.events_exposed, result.events_unexposed) == (int((event & treated).sum()),
                                                                    int((event & ~treated).sum()))
        assert int((~kept).sum()) > 200  # the simulated prior records were there to remove


def test_the_primary_ps_matched_analysis_recovers_a_null_control_and_a_planted_detection_bias():
    population, dates = simulated_new_users()
    study = new_user_study()
    analysis = analyse_new_user_study(population, study, only="ps_matched_cox")
    assert set(analysis.ps_models) == {"intention to treat",
                                       "on treatment (censored 30 days after discontinuation or at a switch)"}
    rows = negative_control_estimates(population, dates, study, analysis)
    by_control = {(control, exposure.endswith("intention to treat")): result for exposure, control, result in rows}
    assert {r.analysis_id for r in by_control.values()} == {"ps_matched_cox"}
    null, biased = by_control[("wrist_pain", True)], by_control[("presbyopia", True)]
    assert null.ci_lower < 1 < null.ci_upper
    assert biased.ci_lower < 2 < biased.ci_upper and biased.ci_lower > 1.3


def test_a_control_whose_prior_records_leave_a_covariate_without_variation_is_still_estimated():
    """The study's propensity model is reused for each control's population (the study's less the persons with the
    control before follow-up); when that removes every person with a covariate, the model still scores with it."""
    population, dates = simulated_new_users()
    study = new_user_study()
    analysis = analyse_new_user_study(population, study, only="ps_matched_cox")
    assert "diabetes_mellitus" in next(iter(analysis.ps_models.values())).covariates
    diabetic = population["diabetes_mellitus"].to_numpy()
    before = population["index_date"] - pd.Timedelta(days=30)
    dates = dates.assign(wrist_pain=dates["wrist_pain"].where(~diabetic, before))  # every diabetic had it before
    rows = negative_control_estimates(population, dates, study, analysis)
    wrist = [result for _, control, result in rows if control == "wrist_pain"]
    assert len(wrist) == 2
    for result in wrist:
        assert result.not_estimable_reason is None, result.not_estimable_reason
        assert result.n_exposed + result.n_unexposed <= int((~diabetic).sum())
        assert result.ci_lower < 1 < result.ci_upper


def test_first_dates_are_pivoted_per_person_in_study_population_order():
    extract = HandExtract()
    for person in ("P1", "P2", "P3"):
        extract.person(person)
    extract.event("P1", "wrist_pain", "2018-03-01").event("P1", "wrist_pain", "2016-02-01")
    extract.event("P3", "presbyopia", "2019-05-05").event("P2", "leg_cramps", "2019-01-01")
    con = extract.connect()
    con.execute("CREATE SCHEMA IF NOT EXISTS cohort")
    con.execute("CREATE TABLE cohort.study_population (study_id VARCHAR, person_id VARCHAR)")
    con.execute("INSERT INTO cohort.study_population VALUES ('test_study', 'P3'), ('test_study', 'P1'), "
                "('test_study', 'P2'), ('other', 'P1')")
    dates = negative_control_first_dates(con, new_user_study())
    assert list(dates.columns) == CONTROLS
    assert dates["wrist_pain"].tolist()[0] == pd.Timestamp("2016-02-01")
    assert dates["wrist_pain"].isna().tolist() == [False, True, True]
    assert dates["presbyopia"].isna().tolist() == [True, True, False]


def _control_rows(logs, ses, exposure="t vs c, intention to treat"):
    return pd.DataFrame({"exposure": exposure, "log_estimate": logs, "se_log_estimate": ses})


def test_calibration_needs_the_minimum_of_published_controls_and_says_why_not():
    logs = [0.3, 0.2, None, 0.25, 0.35]  # one hidden (small cell) or not estimable
    published = _control_rows(logs, [0.1, 0.1, None, 0.1, 0.1])
    calibration = calibrate_primary_analysis(published, ["t vs c, intention to treat", "t vs c, on treatment"],
                                             "ps_matched_cox", 5)
    assert MIN_NEGATIVE_CONTROLS == 5
    columns = calibration["t vs c, intention to treat"].columns(math.log(2), 0.1)
    assert columns["calibrated_p_value"] is None and columns["calibrated_ci_lower"] is None
    assert columns["calibration_note"] == (
        "not calibrated: 4 of 5 negative controls have a published estimate; at least 5 are needed (the "
        "others are not estimable or hidden as small cells)")
    assert calibration["t vs c, on treatment"].columns(0.1, 0.1)["calibration_note"].startswith(
        "not calibrated: 0 of 5")


def test_the_primary_row_gets_calibrated_columns_from_its_own_exposures_controls():
    logs, ses = [0.3, 0.2, 0.28, 0.25, 0.35, 0.31], [0.1, 0.12, 0.1, 0.08, 0.1, 0.2]
    exposure = "t vs c, intention to treat"
    calibration = calibrate_primary_analysis(_control_rows(logs, ses), [exposure], "ps_matched_cox", 6)
    primary = EstimateResult(method="Cox PH in 1:1 PS-matched", estimand="hazard ratio of first outcome, exposed vs "
                             "unexposed", estimate=2.0, ci_lower=2.0 * math.exp(-1.959964 * 0.1),
                             ci_upper=2.0 * math.exp(1.959964 * 0.1), p_value=1e-11, n_exposed=500,
                             n_unexposed=500, events_exposed=200, events_unexposed=100, se_log_estimate=0.1,
                             covariates=("age", "female"), analysis_id="ps_matched_cox")
    other = EstimateResult(method="Incidence rate ratio, exact", estimand="incidence rate ratio, exposed vs "
                           "unexposed", estimate=2.0, ci_lower=1.6, ci_upper=2.5, p_value=1e-9, n_exposed=500,
                           n_unexposed=500, events_exposed=200, events_unexposed=100, analysis_id="crude_irr")
    frame = results_frame("s", [(exposure, "leg_cramps", primary), (exposure, "leg_cramps", other)], 1, calibration)
    null = fit_null(logs, ses)
    row = frame.iloc[0]
    expected = calibrated_confidence_interval(null, math.log(2.0), 0.1)
    assert (row["calibrated_estimate"], row["calibrated_ci_lower"], row["calibrated_ci_upper"]) == pytest.approx(
        expected)
    assert row["calibrated_p_value"] == pytest.approx(calibrated_p_value(null, math.log(2.0), 0.1))
    assert row["calibrated_p_value"] > 1e-6  # the controls sit near HR 1.3: most of the raw signal is bias
    assert row["calibration_note"].startswith("calibrated on 6 of 6 negative controls")
    # The E-value of the adjusted row: outcome share 300/1000 >= 15%, so the HR is transformed first.
    rr = (1 - 0.5 ** math.sqrt(2)) / (1 - 0.5 ** math.sqrt(0.5))
    assert row["e_value"] == pytest.approx(rr + math.sqrt(rr * (rr - 1)))
    # The crude rate ratio has no adjustment set: no E-value, no calibration.
    crude = frame.iloc[1]
    assert crude["e_value"] is None and crude["calibrated_p_value"] is None and crude["calibration_note"] is None


def test_calibration_on_controls_with_a_planted_detection_bias_brings_a_null_exposure_back_to_1():
    """Target users are seen more often, so every condition is recorded 1.6 times as often in them (detection bias),
    leg cramps included, while the drug has no effect on anything. The raw hazard ratio of cramps excludes 1; the
    estimate calibrated on six negative controls with the same bias includes it."""
    rng = np.random.default_rng(11)
    population, _ = simulated_new_users(persons=2500, seed=5)
    treated = population["treatment"].to_numpy() == 1
    start = population["time_at_risk_start"]

    def biased_first_dates(rate_per_year: float) -> pd.Series:
        rate = rate_per_year / 365.25 * np.where(treated, 1.6, 1.0)
        return start + pd.to_timedelta(np.floor(rng.exponential(1 / rate)), unit="D")

    cramps = biased_first_dates(0.08)
    population = population.assign(outcome_flag=cramps <= population["followup_end"], outcome_date=cramps)
    controls = [f"control_{i}" for i in range(6)]
    dates = pd.DataFrame({c: biased_first_dates(rate) for c, rate in zip(controls, np.linspace(0.06, 0.16, 6))})
    study = new_user_study(primary_analysis="cox_adjusted").model_copy(update={"negative_control_outcomes": controls})
    analysis = analyse_new_user_study(population, study, only="cox_adjusted")
    primary = [(e, o, r) for e, o, r in analysis.results if e.endswith("intention to treat")]
    raw = primary[0][2]
    assert raw.ci_lower > 1.2  # the bias alone makes the null drug look harmful
    control_rows = [row for row in negative_control_estimates(population, dates, study, analysis)
                    if row[0].endswith("intention to treat")]
    published = results_frame(study.id, control_rows, study.seed)
    calibration = calibrate_primary_analysis(published, [primary[0][0]], "cox_adjusted", len(controls))
    row = results_frame(study.id, primary, study.seed, calibration).iloc[0]
    assert row["calibrated_ci_lower"] < 1 < row["calibrated_ci_upper"]
    assert row["calibrated_p_value"] > 0.05 > row["p_value"]


def test_a_study_with_negative_controls_publishes_their_estimates_and_a_reason_when_not_calibrated(
        study_database, tmp_path):
    """thiazide_vs_ccb on a small generated extract (300 patients: a handful of new users, so the controls'
    records are too few to estimate): one row per control and time at risk in results.negative_control_estimates,
    through the small-cell rule, and primary rows that say why they are not calibrated."""
    import shutil

    from pipelines.cohorts import load_studies
    from pipelines.statistics.assets import publish_study_results
    from pipelines.statistics.report import write_study_reports
    from pipelines.statistics.study_analysis import analyse_study

    study = load_studies()["thiazide_vs_ccb"]
    assert len(study.negative_control_outcomes) == 22
    shutil.copy(study_database(300, 1), tmp_path / "study.duckdb")  # ingested, phenotyped, cohorts built
    with duckdb.connect(str(tmp_path / "study.duckdb")) as con:
        analysis = analyse_study(con, study)
        published = publish_study_results(con, study, analysis)
        report = write_study_reports(con, study, analysis, published, {}, tmp_path / "outputs").markdown.read_text()
        controls = con.execute("SELECT outcome, analysis_id, estimate, suppressed, n_exposed, events_exposed, "
                               "not_estimable_reason "
                               "FROM results.negative_control_estimates WHERE study_id = ?", [study.id]).df()
        primary = con.execute("SELECT exposure, calibration_note, calibrated_p_value FROM results.associations "
                              "WHERE study_id = ? AND analysis_id = 'ps_matched_cox'", [study.id]).df()
    assert len(controls) == 2 * 22
    assert sorted(set(controls["outcome"])) == sorted(study.negative_control_outcomes)
    assert set(controls["analysis_id"]) == {"ps_matched_cox"}
    small = controls["n_exposed"].isna() | controls["events_exposed"].isna()
    # A row without its counts is hidden as a small cell or not estimable (no counts to show), never a bare gap.
    assert controls.loc[controls["suppressed"], "estimate"].isna().all()
    assert (controls["suppressed"] | controls["not_estimable_reason"].notna())[small].all()
    assert len(primary) == 2 and primary["calibrated_p_value"].isna().all()
    for note in primary["calibration_note"]:
        assert note.startswith("not calibrated: ") and " of 22 negative controls have a published " in note
    # The report's summary has the E-value and calibrated columns and says why the estimates are not calibrated.
    assert "| p | q (FDR) | E-value (CI) | calibrated (95% CI) | calibrated p |" in report
    assert f"Empirical calibration: {primary['calibration_note'].iloc[0]}." in report


def test_e_values_and_calibrated_values_are_hidden_with_the_estimate_they_recompute():
    from pipelines.disclosure import suppress_estimates
    from pipelines.statistics.results import DERIVED_COLUMNS

    frame = pd.DataFrame([{"study_id": "s", "exposure": "x", "outcome": "o", "n_exposed": 5, "n_unexposed": 500,
                           "events_exposed": 2, "events_unexposed": 40, "estimate": 1.5, "e_value": 2.37,
                           "e_value_ci": 1.0, "calibrated_estimate": 1.2, "calibrated_ci_lower": 0.7,
                           "calibrated_ci_upper": 2.1, "calibrated_p_value": 0.4, "calibration_note": "calibrated"}])
    hidden = suppress_estimates(frame, 11, DERIVED_COLUMNS).iloc[0]
    for column in ("estimate", "e_value", "e_value_ci", "calibrated_estimate", "calibrated_ci_lower",
                   "calibrated_ci_upper", "calibrated_p_value"):
        assert hidden[column] is None, column
    assert hidden["calibration_note"] == "calibrated"


@pytest.mark.parametrize("controls, message", [
    (["statins"], "a negative-control outcome must be a condition phenotype; 'statins' is a drug phenotype"),
    (["leg_cramps"], "'leg_cramps' is also the outcome, an exposure or a covariate"),
    (["diabetes_mellitus"], "'diabetes_mellitus' is also the outcome, an exposure or a covariate"),
    (["wrist_pain", "wrist_pain"], "'wrist_pain' is listed twice"),
])
def test_the_study_option_takes_condition_phenotypes_that_are_not_already_in_the_study(controls, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_study(index=NEW_USER, covariates=["diabetes_mellitus"], negative_control_outcomes=controls)
