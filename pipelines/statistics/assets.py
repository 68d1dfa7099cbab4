"""Statistics assets: results.associations per study, with plots and a study report beside the database.

    ["results", "associations", <study_id>]     estimates of every exposure of the study against its outcome
    ["results", "associations", "sequence_symmetry"]   drug classes against incident leg cramps, whole extract

Published counts below the small-cell threshold are NULL with `suppressed` set, never zero, and so is every cell
that would recompute one (pipelines/disclosure.py). Plots and the
Markdown report go to the run's outputs folder, which the publish step moves beside the published database.
No `from __future__ import annotations` here: Dagster inspects the real annotation of `context`.
"""

import dagster as dg
import duckdb
import pandas as pd

from pipelines import tables
from pipelines.asset_keys import associations_key, cohort_key
from pipelines.asset_keys import phenotype_key as phenotype_asset_key
from pipelines.cohorts.attrition import cohort_counts
from pipelines.cohorts.settings import StudySettings
from pipelines.cohorts.study import StudyDefinition, load_studies
from pipelines.cohorts.table1 import hidden_cohort_arms
from pipelines.disclosure import (ESTIMATE_GROUP_COLUMNS, SUPPRESSION_COLUMNS, count_text, site_floor,
                                  suppress_estimates)
from pipelines.statistics.multiplicity import with_false_discovery_rate
from pipelines.statistics.presentation import results_browser_url
from pipelines.statistics.report import (
    estimates_markdown,
    notes_markdown,
    primary_analysis_of,
    summary_markdown,
    write_study_plots,
    write_study_reports,
)
from pipelines.statistics.sequence_symmetry import GARRISON_MARKER, garrison_sequence_symmetry
from pipelines.statistics.analysis_attrition import (create_analysis_attrition_table, publish_outcome_count,
                                                     published_outcome_count_text,
                                                     suppress_study_counts_sparing_main, write_analysis_attrition)
from pipelines.statistics.checks import SEQUENCE_SYMMETRY_CHECKS, STUDY_CHECKS, check_specs, run_checks
from pipelines.statistics.disclosure_audit import StudyLedger, protect_derivable_counts, table1_cells_of
from pipelines.statistics.results import (
    ANALYSIS_COLUMNS,
    CALIBRATION_COLUMNS,
    CALIBRATION_NOTE_COLUMN,
    COUNT_COLUMNS,
    DERIVED_COLUMNS,
    E_VALUE_COLUMNS,
    LOG_SCALE_COLUMNS,
    MULTIPLICITY_COLUMNS,
    RESULT_COLUMNS,
)
from pipelines.statistics.study_analysis import (
    COHORT_STEP,
    EXPOSURE_CONTROL,
    OUTCOME_CONTROL,
    StudyAnalysis,
    analyse_study,
    calibrate_primary_analysis,
    attrition_frame,
    covariates_frame,
    drug_exposures,
    results_frame,
    sequence_symmetry_for_drugs,
)
from pipelines.warehouse import ENGINE_KINDS, Warehouse

STATISTICS_GROUP = "statistics"
SEQUENCE_SYMMETRY_ID = "sequence_symmetry"
ASSOCIATIONS_TABLE = tables.ASSOCIATIONS
ANALYSIS_COVARIATES_TABLE = tables.ANALYSIS_COVARIATES
NEGATIVE_CONTROLS_TABLE = tables.NEGATIVE_CONTROL_ESTIMATES


# Result columns that are not numbers (the others are DOUBLE, counts BIGINT).
TEXT_RESULT_COLUMNS = ("method", "estimand", "not_estimable_reason", "imbalanced_covariates", *ANALYSIS_COLUMNS,
                       CALIBRATION_NOTE_COLUMN)
# The published columns after study_id, exposure and outcome, in order.
PUBLISHED_RESULT_COLUMNS = (*ANALYSIS_COLUMNS, *RESULT_COLUMNS, *LOG_SCALE_COLUMNS, *E_VALUE_COLUMNS,
                            *CALIBRATION_COLUMNS, CALIBRATION_NOTE_COLUMN, *MULTIPLICITY_COLUMNS)
BOOLEAN_RESULT_COLUMNS = ("covariates_balanced", "proportional_hazards_violated")


def _column_type(name: str) -> str:
    if name in COUNT_COLUMNS:
        return "BIGINT"
    if name in TEXT_RESULT_COLUMNS:
        return "VARCHAR"
    if name in BOOLEAN_RESULT_COLUMNS:
        return "BOOLEAN"
    return "DOUBLE"


def create_associations_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS results")
    columns = ", ".join(f"{name} {_column_type(name)}" for name in PUBLISHED_RESULT_COLUMNS)
    con.execute(f"""CREATE TABLE IF NOT EXISTS {ASSOCIATIONS_TABLE} (
        study_id VARCHAR, exposure VARCHAR, outcome VARCHAR, {columns},
        suppressed BOOLEAN, suppressed_columns VARCHAR, complementary_columns VARCHAR, seed BIGINT,
        sensitivity_analysis VARCHAR)""")
    con.execute(f"COMMENT ON TABLE {ASSOCIATIONS_TABLE} IS 'One row per study, exposure, outcome, analysis and "
                "estimand: estimate with 95% CI. Counts of 1-10 persons (below the small-cell threshold) are NULL "
                "with suppressed = true, never shown as zero, and so is everything that would recompute them.'")
    con.execute(f"""CREATE TABLE IF NOT EXISTS {ANALYSIS_COVARIATES_TABLE} (
        study_id VARCHAR, analysis_id VARCHAR, exposure VARCHAR, covariate_order INTEGER, covariate VARCHAR)""")
    create_analysis_attrition_table(con)


# The risks at the horizon (Kaplan-Meier and Aalen-Johansen) count the events up to the horizon, a different count from the events over the whole
# follow-up that the rates and models count: a small count of one does not reveal the other, so the risk rows of an
# exposure are suppressed as a group of their own (the persons, the same in both groups, are hidden alike).
DISCLOSURE_GROUP = "_disclosure_group"


def _disclosure_groups(frame: pd.DataFrame) -> pd.Series | str:
    if frame.empty or "analysis_id" not in frame:
        return ""
    return frame["analysis_id"].fillna("").str.startswith(("km_", "aj_")).map({True: "risk at horizon", False: ""})


def publish_associations(con: duckdb.DuckDBPyConnection, study_id: str, frame: pd.DataFrame,
                         threshold: int, complementary: dict[str, pd.Series] | None = None,
                         ledger_rows: pd.Series | None = None) -> pd.DataFrame:
    """Replace the study's rows of results.associations, with small cells and what recomputes them hidden.
    `complementary`: count cells hidden to protect a count of another table (analysis_attrition.suppress_study_counts);
    `ledger_rows`: the rows whose counts that ledger covers (each hides its estimates only with its own counts)."""
    create_associations_table(con)
    if "sensitivity_analysis" not in frame:  # rows of a main analysis only (results_frame always adds it)
        frame = frame.assign(sensitivity_analysis=None)
    published = suppress_estimates(frame.assign(**{DISCLOSURE_GROUP: _disclosure_groups(frame)}), threshold,
                                   DERIVED_COLUMNS, complementary=complementary,
                                   group_columns=(*ESTIMATE_GROUP_COLUMNS, DISCLOSURE_GROUP), ledger_rows=ledger_rows)
    published = with_false_discovery_rate(published.drop(columns=[DISCLOSURE_GROUP]))
    con.execute(f"DELETE FROM {ASSOCIATIONS_TABLE} WHERE study_id = ?", [study_id])
    if not published.empty:
        con.register("new_associations", published)
        names = ", ".join(["study_id", "exposure", "outcome", *PUBLISHED_RESULT_COLUMNS, *SUPPRESSION_COLUMNS,
                           "seed", "sensitivity_analysis"])
        con.execute(f"INSERT INTO {ASSOCIATIONS_TABLE} ({names}) SELECT {names} FROM new_associations")
        con.unregister("new_associations")
    return published


# The columns of results.negative_control_estimates after study_id, exposure and outcome (the control).
NEGATIVE_CONTROL_RESULT_COLUMNS = (*ANALYSIS_COLUMNS, *RESULT_COLUMNS, *LOG_SCALE_COLUMNS)


def publish_negative_control_estimates(con: duckdb.DuckDBPyConnection, study_id: str, frame: pd.DataFrame,
                                       threshold: int, complementary: dict[str, pd.Series] | None = None,
                                       ledger_rows: pd.Series | None = None) -> pd.DataFrame:
    """Replace the study's rows of results.negative_control_estimates (the primary analysis for each
    negative-control outcome), small cells and what recomputes them hidden as in results.associations;
    `complementary` and `ledger_rows` as there (the study's ledger ties each control's persons to the primary
    analysis's: the difference is the persons with a prior control outcome)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS results")
    columns = ", ".join(f"{name} {_column_type(name)}" for name in NEGATIVE_CONTROL_RESULT_COLUMNS)
    con.execute(f"""CREATE TABLE IF NOT EXISTS {NEGATIVE_CONTROLS_TABLE} (
        study_id VARCHAR, control_type VARCHAR, exposure VARCHAR, outcome VARCHAR, {columns},
        suppressed BOOLEAN, suppressed_columns VARCHAR, complementary_columns VARCHAR, seed BIGINT)""")
    if "control_type" not in frame:  # outcome controls only
        frame = frame.assign(control_type=OUTCOME_CONTROL)
    published = suppress_estimates(frame, threshold, DERIVED_COLUMNS, group_columns=ESTIMATE_GROUP_COLUMNS,
                                   complementary=complementary, ledger_rows=ledger_rows)
    con.execute(f"DELETE FROM {NEGATIVE_CONTROLS_TABLE} WHERE study_id = ?", [study_id])
    if not published.empty:
        con.register("new_negative_controls", published)
        names = ", ".join(["study_id", "control_type", "exposure", "outcome", *NEGATIVE_CONTROL_RESULT_COLUMNS,
                           *SUPPRESSION_COLUMNS, "seed"])
        con.execute(f"INSERT INTO {NEGATIVE_CONTROLS_TABLE} ({names}) SELECT {names} FROM new_negative_controls")
        con.unregister("new_negative_controls")
    return published


def publish_covariates(con: duckdb.DuckDBPyConnection, study_id: str, covariates: pd.DataFrame) -> None:
    """Replace the study's rows of results.analysis_covariates (covariate names only: nothing to suppress)."""
    create_associations_table(con)
    con.execute(f"DELETE FROM {ANALYSIS_COVARIATES_TABLE} WHERE study_id = ?", [study_id])
    if not covariates.empty:
        con.register("new_analysis_covariates", covariates)
        con.execute(f"INSERT INTO {ANALYSIS_COVARIATES_TABLE} BY NAME SELECT * FROM new_analysis_covariates")
        con.unregister("new_analysis_covariates")


def publish_study_results(con: duckdb.DuckDBPyConnection, study: StudyDefinition,
                          analysis: StudyAnalysis) -> pd.DataFrame:
    """A study's estimates (with its sensitivity analyses' beside them), their covariate sets and their
    per-analysis attrition, small cells hidden: the counts of the estimates and of the attrition are suppressed
    together, since a reader can subtract one from another. A study with negative-control outcomes publishes their
    estimates first; its primary analysis is calibrated on those that are published
    (pipelines/statistics/empirical_calibration.py)."""
    # Sensitivity analyses go to the same table beside the main rows: the same analyses and estimands, their
    # outcome (or exposure) column names the variant and sensitivity_analysis their id (NULL on the main rows).
    def study_results(calibration) -> pd.DataFrame:
        frames = [results_frame(study.id, analysis.results, study.seed, calibration)] + [
            results_frame(study.id, variant.results, study.seed, sensitivity_analysis=sensitivity_id)
            for sensitivity_id, variant in analysis.sensitivity.items() if variant.results]
        return pd.concat(frames, ignore_index=True)

    # One ledger for the estimates, the negative controls and the attrition. The calibration needs the controls
    # as published, and adds only columns hidden with their row's counts, so the ledger decides on the rows before
    # calibration and the same rows are published after it. A negative-control exposure's rows are estimate rows of
    # the ledger (a control drug split of the same cohort, with its attrition and the same outcome: tied to the
    # cohort and the outcome count like any exposure's), published in results.negative_control_estimates; the
    # sparing rule decides them after the main rows, like the control outcomes (`control_exposures`).
    results = study_results(None)
    controls = results_frame(study.id, analysis.negative_control_results, study.seed) \
        if study.negative_control_outcomes else None
    exposure_controls = results_frame(study.id, analysis.exposure_control_results, study.seed)
    ledger_results = pd.concat([results, exposure_controls], ignore_index=True) \
        if not exposure_controls.empty else results
    is_exposure_control = pd.Series(ledger_results.index >= len(results), index=ledger_results.index)
    _, outcome_count = cohort_counts(con, study.id)
    varied_exposures = {study.exposure_variants[s.id].phenotype: s.replace for s in study.sensitivity_analyses
                        if s.id in study.exposure_variants}
    attrition = attrition_frame(study.id, analysis)
    hidden_arms = cohort_arms_hidden_by_table1(con, study, attrition)
    counts = suppress_study_counts_sparing_main(attrition, ledger_results, study.threshold, analysis.nested_exposures,
                                                outcome_count, controls, varied_exposures, hidden_arms,
                                                control_exposures=is_exposure_control)
    # The greedy choice, audited against every sum of the ledger (and repaired where a chain of sums discloses)
    analysis.disclosure_ledger = StudyLedger(attrition, ledger_results, analysis.nested_exposures, outcome_count,
                                             controls, varied_exposures, hidden_arms, is_exposure_control,
                                             table1_cells_of(con, study))
    counts = protect_derivable_counts(counts, analysis.disclosure_ledger, study.threshold)
    result_complementary = {column: flags[~is_exposure_control] for column, flags in
                            counts.result_complementary.items()}
    ledger_rows = None if counts.ledger_rows is None else counts.ledger_rows[~is_exposure_control]
    if controls is not None or not exposure_controls.empty:
        control_frame, control_complementary, control_ledger_rows = _negative_control_rows(
            controls, counts, exposure_controls, is_exposure_control)
        published_controls = publish_negative_control_estimates(
            con, study.id, control_frame, study.threshold, control_complementary, control_ledger_rows)
        primary = primary_analysis_of(study)
        exposures = [exposure for exposure, _, result in analysis.results if result.analysis_id == primary]
        calibration = calibrate_primary_analysis(
            published_controls, exposures, primary,
            len(study.negative_control_outcomes) + len(study.negative_control_exposures))
        results = study_results(calibration)
    published = publish_associations(con, study.id, results, study.threshold, result_complementary, ledger_rows)
    publish_outcome_count(con, study.id, study.outcome.phenotype, outcome_count,
                          counts.outcome_count_suppression, study.threshold)
    if counts.withheld_sensitivity_rows:
        analysis.notes.append(f"small-cell suppression: {counts.withheld_sensitivity_rows} sensitivity-analysis "
                              "row(s) withheld, since publishing them would hide main-analysis numbers")
    if counts.withheld_control_pairs:  # one line in the log; the pairs in the report and the metadata
        note = (f"small-cell suppression: {len(counts.withheld_control_pairs)} negative-control pair(s) withheld, "
                "since publishing their rows would hide main-analysis numbers")
        analysis.notes.append(note)
        analysis.note_details[note] = [f"{exposure} / {control}"
                                       for exposure, control in counts.withheld_control_pairs]
    if counts.withheld_main_rows:
        analysis.notes.append(f"small-cell suppression: {counts.withheld_main_rows} main-analysis row(s) withheld "
                              "whole, since only a printed zero of theirs was left to hide")
    if counts.unprotected:  # every other cell of these sums is zero: nothing left to hide (docs/disclosure.md)
        analysis.notes.append(f"small-cell suppression: {len(counts.unprotected)} sum(s) of published counts give a "
                              "hidden count away and have no other cell to hide")
    publish_covariates(con, study.id, covariates_frame(study.id, analysis.results))
    write_analysis_attrition(con, study.id, counts.attrition)
    return published


def _negative_control_rows(controls: pd.DataFrame | None, counts, exposure_controls: pd.DataFrame,
                           is_exposure_control: pd.Series) -> tuple[pd.DataFrame, dict[str, pd.Series], pd.Series]:
    """results.negative_control_estimates before suppression: the outcome controls' rows then the exposure controls',
    with `control_type`, and per row the ledger's complementary flags and whether the ledger covers it (the outcome
    controls' from the ledger's control rows, the exposure controls' from its estimate rows)."""
    frames, flags, covered = [], {}, []
    if controls is not None and not controls.empty:
        frames.append(controls.assign(control_type=OUTCOME_CONTROL))
        for column, values in counts.control_complementary.items():
            flags.setdefault(column, []).append(values.reindex(controls.index, fill_value=False))
        covered.append(counts.control_ledger_rows.reindex(controls.index, fill_value=False)
                       if counts.control_ledger_rows is not None else pd.Series(False, index=controls.index))
    if not exposure_controls.empty:
        frames.append(exposure_controls.assign(control_type=EXPOSURE_CONTROL))
        for column, values in counts.result_complementary.items():
            flags.setdefault(column, []).append(values[is_exposure_control])
        covered.append(counts.ledger_rows[is_exposure_control] if counts.ledger_rows is not None
                       else pd.Series(False, index=exposure_controls.index))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if any(sum(len(part) for part in parts) != len(frame) for parts in flags.values()):
        raise RuntimeError("negative-control rows and their disclosure flags do not line up")
    complementary = {column: pd.Series(pd.concat(parts).to_numpy(dtype=bool), index=frame.index)
                     for column, parts in flags.items()}
    ledger_rows = pd.Series(pd.concat(covered).to_numpy(dtype=bool), index=frame.index) if covered else None
    return frame, complementary, ledger_rows


def cohort_arms_hidden_by_table1(con: duckdb.DuckDBPyConnection, study: StudyDefinition,
                                 attrition: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """(exposure, first step, arm) -> how Table 1 hides that cohort arm, for the ledger: an exposure's cohort per
    arm (the first attrition step) is Table 1's count of its holders, or Table 1's group when it is split by the
    exposure (by treatment: every time at risk of a new-user comparison)."""
    hidden = hidden_cohort_arms(con, study)
    treatment = f"{study.index.target} vs {study.index.comparator}" if study.is_new_user else None
    arms = {}
    for exposure in attrition["exposure"].unique() if not attrition.empty else ():
        variable = "treatment" if treatment and str(exposure).startswith(treatment) else exposure
        for arm in ("exposed", "unexposed"):
            if (variable, arm) in hidden:
                arms[(exposure, COHORT_STEP, arm)] = hidden[(variable, arm)]
    return arms


def build_study_statistics_asset(file_study: StudyDefinition) -> dg.AssetsDefinition:
    """The study file sets the asset's key and dependencies; a run analyses the study with its `studies`
    overrides merged in."""
    primary_analysis_of(file_study)  # a primary_analysis that names no comparison stops the code location loading

    @dg.asset(
        key=associations_key(file_study.id),
        deps=[cohort_key(file_study.id),
              *(phenotype_asset_key(control) for control in file_study.negative_control_outcomes)],
        group_name=STATISTICS_GROUP,
        kinds={*ENGINE_KINDS, "python"},
        description=f"Association estimates of study {file_study.id} ({file_study.title}), their covariate sets and "
                    "per-analysis attrition; small cells suppressed.",
        check_specs=check_specs(associations_key(file_study.id), STUDY_CHECKS),
    )
    def _associations(context: dg.AssetExecutionContext, warehouse: Warehouse,
                      studies: StudySettings) -> dg.MaterializeResult:
        study = studies.resolve(file_study)
        threshold = study.threshold
        with warehouse.connect(context.run_id) as con:
            # The per-person inputs come from the engine that built the cohort tables; results go to DuckDB.
            analysis = analyse_study(warehouse.spark_session() if warehouse.on_spark else con, study,
                                     workers=studies.statistics_workers)
            published = publish_study_results(con, study, analysis)
            cohort_size, _ = cohort_counts(con, study.id)
            outcomes = published_outcome_count_text(con, study.id)
            verdicts = run_checks(con, study.id, threshold, STUDY_CHECKS, ledger=analysis.disclosure_ledger)
            outputs = warehouse.build_outputs_dir(context.run_id) / study.id
            plots = write_study_plots(study, analysis, published, outputs)
            reports = write_study_reports(con, study, analysis, published, plots, outputs)
        # The outcome count is printed here, after the cross-table rule decided whether it may be.
        context.log.info(f"{study.id}: {count_text(cohort_size, threshold)} persons, {outcomes} with the outcome")
        for note in analysis.notes:
            context.log.warning(f"{study.id}: {note}")
        metadata = {
            "dagster/row_count": len(published),
            "outcome_count": outcomes,
            "seed": study.seed,
            "report": dg.MetadataValue.path(str(warehouse.published_outputs_dir / study.id / reports.html.name)),
            "report (Markdown)": dg.MetadataValue.path(
                str(warehouse.published_outputs_dir / study.id / reports.markdown.name)),
            "results browser": dg.MetadataValue.url(results_browser_url(study.id)),
            "estimates": dg.MetadataValue.md(summary_markdown(published, study)),  # the report's summary table
        }
        if analysis.equipoise is not None:
            metadata["equipoise"] = round(analysis.equipoise, 3)
        for title, path in plots.items():  # files in the published outputs folder, not images in the event log
            metadata[title] = dg.MetadataValue.path(str(warehouse.published_outputs_dir / study.id / path.name))
        if analysis.notes:
            metadata["notes"] = dg.MetadataValue.md(notes_markdown(analysis.notes, analysis.note_details))
        return dg.MaterializeResult(metadata={**metadata, **warehouse.engine_metadata()}, check_results=[
            verdict.check_result(associations_key(file_study.id)) for verdict in verdicts])

    return _associations


def sequence_symmetry_threshold(studies: list[StudyDefinition], settings: StudySettings) -> int:
    """The small-cell threshold of the sequence ratios: they run over the whole extract, not one study's cohort, so
    they follow the strictest rule of the studies as this run resolves them (a run that raises a study's threshold
    raises it here too; results.attrition.small_cell_threshold records the same resolved thresholds)."""
    return max((settings.resolve(study).threshold for study in studies), default=site_floor())


def build_sequence_symmetry_asset(file_studies: list[StudyDefinition]) -> dg.AssetsDefinition:
    drugs = list(dict.fromkeys(d for s in file_studies for d in drug_exposures(s)))

    @dg.asset(
        key=associations_key(SEQUENCE_SYMMETRY_ID),
        deps=[phenotype_asset_key(p) for p in (*drugs, "leg_cramps", GARRISON_MARKER)],
        group_name=STATISTICS_GROUP,
        kinds={*ENGINE_KINDS, "python"},
        description="Sequence symmetry analysis (Hallas 1996; null-effect ratio of Tsiropoulos 2009) of each drug "
                    "class's first fill against the first leg-cramp record, over the whole extract, and Garrison "
                    "2012's design (first quinine fill as the marker, age >= 50, overall and by age band).",
        check_specs=check_specs(associations_key(SEQUENCE_SYMMETRY_ID), SEQUENCE_SYMMETRY_CHECKS),
    )
    def _sequence_symmetry(context: dg.AssetExecutionContext, warehouse: Warehouse,
                           studies: StudySettings) -> dg.MaterializeResult:
        threshold = sequence_symmetry_threshold(file_studies, studies)
        notes: list[str] = []
        with warehouse.connect(context.run_id) as con:
            inputs = warehouse.spark_session() if warehouse.on_spark else con
            rows = sequence_symmetry_for_drugs(inputs, drugs, notes=notes) + garrison_sequence_symmetry(inputs, drugs)
            published = publish_associations(con, SEQUENCE_SYMMETRY_ID, results_frame(SEQUENCE_SYMMETRY_ID, rows),
                                             threshold)
            verdicts = run_checks(con, SEQUENCE_SYMMETRY_ID, threshold, SEQUENCE_SYMMETRY_CHECKS)
        for note in notes:
            context.log.warning(note)
        metadata = {"dagster/row_count": len(published),
                    "sequence ratios": dg.MetadataValue.md(estimates_markdown(published, threshold))}
        if notes:
            metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in notes))
        return dg.MaterializeResult(metadata={**metadata, **warehouse.engine_metadata()}, check_results=[
            verdict.check_result(associations_key(SEQUENCE_SYMMETRY_ID)) for verdict in verdicts])

    return _sequence_symmetry


studies = list(load_studies().values())
assets = [*(build_study_statistics_asset(s) for s in studies), build_sequence_symmetry_asset(studies)]
