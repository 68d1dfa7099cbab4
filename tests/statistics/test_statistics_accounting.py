"""Every person accounted for in every analysis, a queryable results schema, risks only at a horizon, and the
statistics asset checks, on a small generated extract built once (300 patients) and on hand-made cases."""

from __future__ import annotations

import math

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines.disclosure import suppress_estimates
from pipelines.statistics.analysis_attrition import suppress_analysis_attrition
from pipelines.statistics.checks import STUDY_CHECKS, run_checks
from pipelines.statistics.results import ANALYSES, DERIVED_COLUMNS
from pipelines.statistics.risks import risks_at_horizon
from pipelines.statistics.study_analysis import (
    AT_RISK_STEP,
    COHORT_STEP,
    EVER_EXPOSED_COHORT_STEP,
    TIME_VARYING_ANALYSIS_IDS,
    attrition_frame,
    results_frame,
)
from tests.support.disclosure_attacks import small_differences


@pytest.fixture(scope="module")
def published(published_every_study):
    """A generated extract (300 patients, seed 1) through cohorts and statistics, each study's analysis kept (the
    session's shared build)."""
    return published_every_study(300, 1)


# ---------------------------------------------------------------------------------------------------------------
# Accounting per analysis
# ---------------------------------------------------------------------------------------------------------------

def test_each_analysis_starts_at_the_cohort_per_arm_and_ends_at_the_persons_its_estimator_used(published):
    database, studies, analyses = published
    analysis = analyses["leg_cramps"]
    frame = attrition_frame("leg_cramps", analysis)
    assert set(frame["analysis_id"]) >= {"incidence_rate", "crude_irr", "km_risk", "km_risk_ratio", "cox_adjusted"}
    with duckdb.connect(str(database), read_only=True) as con:
        cohort = con.execute("SELECT count(*) FROM cohort.study_population WHERE study_id = 'leg_cramps'").fetchone()[0]
        for (exposure, analysis_id), rows in frame.groupby(["exposure", "analysis_id"]):
            first, last = rows.iloc[0], rows.iloc[-1]
            if analysis_id in TIME_VARYING_ANALYSIS_IDS.values():
                # Time-varying exposure: the arms are persons with any exposed time during follow-up, and the rest.
                assert first["step"] == EVER_EXPOSED_COHORT_STEP
                ever = con.execute(
                    "SELECT count(DISTINCT person_id) FROM cohort.time_varying_exposure "
                    "WHERE study_id = 'leg_cramps' AND variable = ? AND exposed", [exposure]).fetchone()[0]
                assert (first["persons_exposed"], first["persons_unexposed"]) == (ever, cohort - ever)
            else:
                assert first["step"] == COHORT_STEP
                exposed_at_index = con.execute(
                    f"SELECT count(*) FILTER (WHERE {exposure}), count(*) FILTER (WHERE NOT coalesce({exposure}, "
                    "false)) FROM cohort.study_population WHERE study_id = 'leg_cramps'").fetchone()
                assert (first["persons_exposed"], first["persons_unexposed"]) == exposed_at_index
            assert first["persons_exposed"] + first["persons_unexposed"] == cohort
            # every step chains from the one before
            assert (rows["persons_exposed"].shift() - rows["persons_exposed"]).iloc[1:].tolist() == \
                rows["excluded_exposed"].iloc[1:].tolist()
            # (a negative-control exposure's attrition is published beside the exposures', its rows elsewhere)
            used = [r for e, _, r in analysis.results + analysis.exposure_control_results
                    if e == exposure and r.analysis_id == analysis_id]
            assert used
            for result in used:
                if result.n_exposed is not None:
                    assert result.n_exposed == last["persons_exposed"], (exposure, analysis_id)
                if result.n_unexposed is not None:
                    assert result.n_unexposed == last["persons_unexposed"], (exposure, analysis_id)


def test_persons_with_no_day_at_risk_are_excluded_visibly_with_their_reason(published):
    """An unexposed person who starts the exposure on the first day at risk is censored the day before: zero days.
    They are counted out at the 'at least 1 day at risk' step (CohortMethod minDaysAtRisk = 1), not lost silently;
    the count is computed here in SQL from the cohort, independently of the analysis code."""
    database, studies, analyses = published
    frame = attrition_frame("leg_cramps", analyses["leg_cramps"])
    at_risk = frame[(frame["step"] == AT_RISK_STEP) & (frame["analysis_id"] == "crude_irr")].set_index("exposure")
    assert studies["leg_cramps"].time_at_risk.censor_unexposed_at_exposure_start
    with duckdb.connect(str(database), read_only=True) as con:
        for exposure, row in at_risk.iterrows():
            starting_on_first_day = con.execute(
                f"SELECT count(*) FROM cohort.study_population WHERE study_id = 'leg_cramps' "
                f"AND NOT coalesce({exposure}, false) AND {exposure}_first_date > index_date "
                f"AND {exposure}_first_date <= time_at_risk_start").fetchone()[0]
            assert row["excluded_unexposed"] == starting_on_first_day, exposure
            assert row["excluded_exposed"] == 0
    assert at_risk["excluded_unexposed"].sum() > 0  # the extract has such persons: the test is not vacuous


def test_small_exclusions_are_hidden_with_a_cell_that_would_give_them_away():
    frame = pd.DataFrame([
        {"study_id": "s", "analysis_id": "crude_irr", "exposure": "x", "step_order": 1, "step": COHORT_STEP,
         "reason": None, "persons_exposed": 100, "persons_unexposed": 200, "excluded_exposed": None,
         "excluded_unexposed": None},
        {"study_id": "s", "analysis_id": "crude_irr", "exposure": "x", "step_order": 2, "step": AT_RISK_STEP,
         "reason": "zero days", "persons_exposed": 97, "persons_unexposed": 200, "excluded_exposed": 3,
         "excluded_unexposed": 0},
    ])
    published = suppress_analysis_attrition(frame, threshold=11).set_index("step_order")
    assert published.loc[2, "excluded_exposed"] is None and published.loc[2, "suppressed_columns"] == "excluded_exposed"
    # 100 - 97 would recompute the 3: one of the two is hidden too
    assert (published.loc[2, "persons_exposed"] is None) != (published.loc[1, "persons_exposed"] is None)
    assert published.loc[2, "persons_unexposed"] == 200 and published.loc[2, "excluded_unexposed"] == 0


def test_the_published_attrition_hides_small_cells(published):
    database, studies, _ = published
    threshold = studies["leg_cramps"].threshold
    with duckdb.connect(str(database), read_only=True) as con:
        small = con.execute(
            "SELECT count(*) FROM results.analysis_attrition WHERE "
            + " OR ".join(f"{c} BETWEEN 1 AND {threshold - 1}" for c in
                          ("persons_exposed", "persons_unexposed", "excluded_exposed", "excluded_unexposed"))
        ).fetchone()[0]
        hidden = con.execute("SELECT count(*) FROM results.analysis_attrition WHERE suppressed").fetchone()[0]
    assert small == 0 and hidden > 0


def test_no_small_count_can_be_recomputed_across_the_published_tables(published):
    """The differencing attack (tests/support/disclosure_attacks.py) on every study of the generated run: cohort size
    minus an analysis's persons, crude minus matched or sampled persons and events, follow-up minus horizon events,
    intention to treat minus on treatment. Before the cross-table rule the 300-patient run gave counts away."""
    database, studies, analyses = published
    with duckdb.connect(str(database), read_only=True) as con:
        for study in studies.values():
            nested = analyses[study.id].nested_exposures
            assert (len(nested) == 1) == (study.index.rule == "new_user"), study.id
            assert small_differences(con, study.id, study.threshold, nested) == [], study.id


# ---------------------------------------------------------------------------------------------------------------
# Results schema
# ---------------------------------------------------------------------------------------------------------------

def test_rows_carry_an_analysis_id_and_short_name_and_are_identified_by_it(published):
    database, _, _ = published
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("SELECT study_id, exposure, outcome, analysis_id, method_name, method, estimand "
                           "FROM results.associations").df()
    assert not rows.empty and rows["analysis_id"].notna().all()
    assert set(rows["analysis_id"]) <= set(ANALYSES)
    assert (rows["method_name"] == rows["analysis_id"].map(ANALYSES)).all()
    assert not rows.duplicated(["study_id", "exposure", "outcome", "analysis_id", "estimand"]).any()
    # The covariate list is in its own table (results.analysis_covariates), not in `method`.
    assert rows["analysis_id"].eq("cox_adjusted").any()
    assert not rows["method"].str.contains("female").any()


def test_no_crude_odds_or_risk_ratio_and_no_logistic_odds_ratio_only_risks_at_the_horizon(published):
    database, studies, _ = published
    with duckdb.connect(str(database), read_only=True) as con:
        estimands = [e for (e,) in con.execute("SELECT DISTINCT estimand FROM results.associations").fetchall()]
    assert not any("odds ratio" in e for e in estimands)
    horizon = studies["leg_cramps"].risk_horizon_days
    risk_estimands = [e for e in estimands if e.startswith("risk")]
    assert risk_estimands and all(f"at {horizon} days" in e for e in risk_estimands)


def test_covariate_sets_are_published_per_analysis(published):
    database, _, analyses = published
    with duckdb.connect(str(database), read_only=True) as con:
        for exposure, _, result in analyses["leg_cramps"].results:
            if result.analysis_id != "cox_adjusted":
                continue
            covariates = [c for (c,) in con.execute(
                "SELECT covariate FROM results.analysis_covariates WHERE study_id = 'leg_cramps' "
                "AND analysis_id = 'cox_adjusted' AND exposure = ? ORDER BY covariate_order", [exposure]).fetchall()]
            assert covariates == list(result.covariates) and covariates[:2] == ["age", "female"]


def test_log_estimate_and_its_standard_error_follow_the_estimate(published):
    """On the rows before disclosure control (at 300 patients most published ratios are hidden as small cells)."""
    _, studies, analyses = published
    rows = results_frame("leg_cramps", analyses["leg_cramps"].results, studies["leg_cramps"].seed)
    rows = rows.astype(object).where(rows.notna(), np.nan)
    ratios = rows[rows["estimand"].str.contains(" ratio") & rows["estimate"].notna()]
    assert len(ratios) > 0
    assert np.allclose(ratios["log_estimate"].astype(float), np.log(ratios["estimate"].astype(float)))
    assert (ratios["se_log_estimate"].astype(float) > 0).all()
    irr = ratios[ratios["analysis_id"] == "crude_irr"]
    assert len(irr) > 0
    assert np.allclose(irr["se_log_estimate"].astype(float),
                       np.sqrt(1 / irr["events_exposed"].astype(float) + 1 / irr["events_unexposed"].astype(float)))
    cox = ratios[ratios["analysis_id"] == "cox_adjusted"]
    if len(cox):  # a Wald interval: the SE is its half-width on the log scale / 1.96
        half_width = (np.log(cox["ci_upper"].astype(float)) - np.log(cox["ci_lower"].astype(float))) / 2
        assert np.allclose(cox["se_log_estimate"].astype(float) * 1.959963984540054, half_width)
    withheld = rows[rows["estimate"].isna()]
    assert len(withheld) > 0
    assert withheld["log_estimate"].isna().all() and withheld["se_log_estimate"].isna().all()
    rates = rows[rows["analysis_id"].isin(["incidence_rate", "km_risk", "km_risk_difference"])]
    assert rates["log_estimate"].isna().all()


def test_the_log_scale_columns_are_hidden_with_the_estimate():
    assert {"log_estimate", "se_log_estimate"} <= set(DERIVED_COLUMNS)
    frame = pd.DataFrame([{"study_id": "s", "exposure": "x", "outcome": "o", "n_exposed": 5, "n_unexposed": 500,
                           "events_exposed": 2, "events_unexposed": 40, "estimate": 1.5, "log_estimate": 0.405,
                           "se_log_estimate": 0.7}])
    hidden = suppress_estimates(frame, 11, DERIVED_COLUMNS).iloc[0]
    assert hidden["log_estimate"] is None and hidden["se_log_estimate"] is None and hidden["estimate"] is None


# ---------------------------------------------------------------------------------------------------------------
# Risks at a horizon (Kaplan-Meier), hand-computed
# ---------------------------------------------------------------------------------------------------------------

def test_kaplan_meier_risks_difference_and_ratio_match_a_hand_computation():
    # Exposed: 10 persons with events on days 1..10; by day 5, S = 9/10 * 8/9 * 7/8 * 6/7 * 5/6 = 0.5, and
    # Greenwood's sum is sum_{n=6..10} 1/(n(n-1)) = 1/5 - 1/10 = 0.1. Unexposed: 20 persons, events on days 2 and
    # 4 and the rest censored on day 30: S = 19/20 * 18/19 = 0.9, sum = 1/(20*19) + 1/(19*18).
    exposed = pd.DataFrame({"exposure": 1, "outcome": 1, "followup_days": range(1, 11)})
    unexposed = pd.DataFrame({"exposure": 0, "outcome": [1, 1] + [0] * 18, "followup_days": [2, 4] + [30] * 18})
    risk_exposed, risk_unexposed, difference, ratio = risks_at_horizon(pd.concat([exposed, unexposed]), 5)
    variance_exposed = 0.5 ** 2 * 0.1
    variance_unexposed = 0.9 ** 2 * (1 / 380 + 1 / 342)
    assert risk_exposed.estimate == pytest.approx(0.5) and risk_unexposed.estimate == pytest.approx(0.1)
    assert risk_exposed.estimand == "risk at 5 days, exposed" and risk_exposed.events_exposed == 5
    assert risk_unexposed.events_unexposed == 2 and risk_unexposed.n_unexposed == 20
    assert risk_exposed.ci_lower < 0.5 < risk_exposed.ci_upper
    assert difference.estimate == pytest.approx(0.4)
    assert difference.ci_upper - difference.estimate == pytest.approx(
        1.959963984540054 * math.sqrt(variance_exposed + variance_unexposed))
    assert ratio.estimate == pytest.approx(5.0)
    assert ratio.se_log_estimate == pytest.approx(math.sqrt(variance_exposed / 0.25 + variance_unexposed / 0.01))


def test_a_group_not_followed_to_the_horizon_has_no_risk():
    data = pd.DataFrame({"exposure": [1] * 20 + [0] * 20, "outcome": [1, 0] * 20,
                         "followup_days": [100] * 20 + [400] * 20})
    risk_exposed, _, difference, ratio = risks_at_horizon(data, 365)
    assert risk_exposed.estimate is None and "followed to 365 days" in risk_exposed.not_estimable_reason
    assert difference.estimate is None and ratio.estimate is None


# ---------------------------------------------------------------------------------------------------------------
# Asset checks
# ---------------------------------------------------------------------------------------------------------------

def test_the_statistics_checks_pass_on_published_rows_and_each_catches_its_fault(published, tmp_path):
    database, studies, analyses = published
    threshold = studies["leg_cramps"].threshold
    ledger = analyses["leg_cramps"].disclosure_ledger
    copy = tmp_path / "faulty.duckdb"
    copy.write_bytes(database.read_bytes())
    with duckdb.connect(str(copy)) as con:
        passing = run_checks(con, "leg_cramps", threshold, STUDY_CHECKS, ledger=ledger)
        assert all(v.passed for v in passing)
        exposure = con.execute("SELECT min(exposure) FROM results.associations WHERE study_id = 'leg_cramps'"
                               ).fetchone()[0]
        key = "study_id = 'leg_cramps' AND analysis_id = 'crude_irr' AND exposure = ?"
        con.execute(f"INSERT INTO results.associations SELECT * FROM results.associations WHERE {key}", [exposure])
        con.execute(f"UPDATE results.associations SET estimate = 2, ci_lower = 0.5, ci_upper = 1.5, "
                    f"events_unexposed = 3 WHERE {key}", [exposure])
        con.execute("UPDATE results.analysis_attrition SET persons_exposed = persons_exposed + 20 "
                    "WHERE study_id = 'leg_cramps' AND step_order = 1 AND persons_exposed IS NOT NULL "
                    "AND persons_unexposed IS NOT NULL")
        verdicts = run_checks(con, "leg_cramps", threshold, STUDY_CHECKS, ledger=ledger)
    assert {v.name for v in verdicts if not v.passed} == set(STUDY_CHECKS)
    # A failed check says what to do in the Dagster UI; a passed one does not.
    key = dg.AssetKey(["results", "associations", "leg_cramps"])
    assert all("report the run id" in v.check_result(key).metadata["what to do"].text for v in verdicts)
    assert not any("what to do" in v.check_result(key).metadata for v in passing)


def test_a_small_count_of_events_by_the_horizon_hides_the_risks_but_not_the_rate_ratio():
    """Events up to the horizon are another count than events over all follow-up: the risk rows are their own
    disclosure group, so five events in the first year do not withhold a rate ratio of 40 vs 60 events."""
    from pipelines.statistics.assets import PUBLISHED_RESULT_COLUMNS, publish_associations

    base = {"study_id": "s", "exposure": "x", "outcome": "o", "seed": 1, "n_exposed": 500, "n_unexposed": 500,
            "estimate": 0.67, "ci_lower": 0.4, "ci_upper": 1.1, "log_estimate": -0.4, "se_log_estimate": 0.2}
    frame = pd.DataFrame([
        {**base, "analysis_id": "crude_irr", "estimand": "incidence rate ratio", "events_exposed": 40,
         "events_unexposed": 60},
        {**base, "analysis_id": "km_risk_ratio", "estimand": "risk ratio at 365 days", "events_exposed": 5,
         "events_unexposed": 12},
    ])
    frame = frame.reindex(columns=["study_id", "exposure", "outcome", *PUBLISHED_RESULT_COLUMNS, "seed"])
    frame = frame.astype(object).where(frame.notna(), None)
    with duckdb.connect() as con:
        publish_associations(con, "s", frame, 11)
        rows = dict(con.execute("SELECT analysis_id, estimate FROM results.associations").fetchall())
    assert rows == {"crude_irr": 0.67, "km_risk_ratio": None}


def test_the_statistics_asset_runs_its_blocking_checks_and_references_plots_by_path(published, tmp_path):
    """The leg_cramps statistics asset in a real Dagster run on the fixture's cohort: its four checks run (and
    pass), they are blocking for the publish step downstream, and plots are metadata paths to files, not images
    embedded in the event log."""

    from pipelines.cohorts.settings import StudySettings
    from pipelines.definitions import defs
    from pipelines.statistics.assets import associations_key, build_study_statistics_asset
    from pipelines.warehouse import Warehouse

    database, studies, _ = published
    key = associations_key("leg_cramps")
    checks = [spec for spec in defs.resolve_assets_def(key).check_specs]
    assert {spec.name for spec in checks} == set(STUDY_CHECKS) and all(spec.blocking for spec in checks)
    assert key in defs.resolve_assets_def(dg.AssetKey(["published_database"])).dependency_keys

    warehouse = Warehouse(database_path=str(tmp_path / "published" / "study.duckdb"))
    run_id = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    warehouse.build_path(run_id).parent.mkdir(parents=True)
    warehouse.build_path(run_id).write_bytes(database.read_bytes())
    job = dg.Definitions(assets=[build_study_statistics_asset(studies["leg_cramps"])],
                         resources={"warehouse": warehouse, StudySettings.resource_key: StudySettings()},
                         jobs=[dg.define_asset_job("statistics_only")]).resolve_job_def("statistics_only")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, run_id=run_id)
        assert result.success
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == set(STUDY_CHECKS) and all(e.passed for e in evaluations)
        metadata = result.asset_materializations_for_node("results__associations__leg_cramps")[0].metadata
    plots = {title: value for title, value in metadata.items() if isinstance(value, dg.PathMetadataValue)
             and value.path.endswith(".png")}
    assert plots, "no plot referenced"
    for value in plots.values():
        assert (warehouse.build_outputs_dir(run_id) / "leg_cramps" / value.path.rsplit("/", 1)[-1]).is_file()
    assert not any("base64" in str(getattr(value, "value", value)) for value in metadata.values())
