"""Statistics assets: results.associations per study, with plots and a study report beside the database.

    ["results", "associations", <study_id>]     estimates of every exposure of the study against its outcome
    ["results", "associations", "sequence_symmetry"]   drug classes against incident leg cramps, whole extract

Published counts below the small-cell threshold are NULL with `suppressed` set, never zero, and so is every cell
that would recompute one (pipelines/disclosure.py). Plots and the
Markdown report go to the run's outputs folder, which the publish step moves beside the published database.
No `from __future__ import annotations` here: Dagster inspects the real annotation of `context`.
"""

import base64
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from pipelines import tables
from pipelines.asset_keys import associations_key, cohort_key
from pipelines.asset_keys import phenotype_key as phenotype_asset_key
from pipelines.cohorts.settings import StudySettings
from pipelines.cohorts.study import StudyDefinition, load_studies
from pipelines.disclosure import SUPPRESSION_COLUMNS, suppress_estimates
from pipelines.statistics.plots import forest_plot, kaplan_meier_plot, love_plot
from pipelines.statistics.report import estimates_markdown, write_study_report
from pipelines.statistics.results import COUNT_COLUMNS, DERIVED_COLUMNS, RESULT_COLUMNS
from pipelines.statistics.study_analysis import (
    StudyAnalysis,
    analyse_study,
    drug_exposures,
    results_frame,
    sequence_symmetry_for_drugs,
)
from pipelines.warehouse import Warehouse

STATISTICS_GROUP = "statistics"
SEQUENCE_SYMMETRY_ID = "sequence_symmetry"
ASSOCIATIONS_TABLE = tables.ASSOCIATIONS


# Result columns that are not numbers (the others are DOUBLE, counts BIGINT).
TEXT_RESULT_COLUMNS = ("method", "estimand", "not_estimable_reason", "imbalanced_covariates")
BOOLEAN_RESULT_COLUMNS = ("covariates_balanced",)


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
    columns = ", ".join(f"{name} {_column_type(name)}" for name in RESULT_COLUMNS)
    con.execute(f"""CREATE TABLE IF NOT EXISTS {ASSOCIATIONS_TABLE} (
        study_id VARCHAR, exposure VARCHAR, outcome VARCHAR, {columns},
        suppressed BOOLEAN, suppressed_columns VARCHAR, complementary_columns VARCHAR, seed BIGINT)""")
    con.execute(f"COMMENT ON TABLE {ASSOCIATIONS_TABLE} IS 'One row per study, exposure, outcome and method: "
                "estimate with 95% CI. Counts of 1-10 persons (below the small-cell threshold) are NULL with "
                "suppressed = true, never shown as zero, and so is everything that would recompute them.'")


def publish_associations(con: duckdb.DuckDBPyConnection, study_id: str, frame: pd.DataFrame,
                         threshold: int) -> pd.DataFrame:
    """Replace the study's rows of results.associations, with small cells and what recomputes them hidden."""
    create_associations_table(con)
    published = suppress_estimates(frame, threshold, DERIVED_COLUMNS)
    con.execute(f"DELETE FROM {ASSOCIATIONS_TABLE} WHERE study_id = ?", [study_id])
    if not published.empty:
        con.register("new_associations", published)
        names = ", ".join(["study_id", "exposure", "outcome", *RESULT_COLUMNS, *SUPPRESSION_COLUMNS, "seed"])
        con.execute(f"INSERT INTO {ASSOCIATIONS_TABLE} ({names}) SELECT {names} FROM new_associations")
        con.unregister("new_associations")
    return published


def _image_markdown(path: Path, title: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f"**{title}**\n\n![{title}](data:image/png;base64,{encoded})"


def _write_plots(analysis: StudyAnalysis, folder: Path, threshold: int, published: pd.DataFrame) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}
    # A forest plot draws the estimate and interval: not for rows whose estimate is hidden or not estimable.
    hidden = set() if published.empty else {
        (row["exposure"], row["method"]) for row in published.to_dict("records")
        if "estimate" in (row["complementary_columns"] or "").split(",")}
    ratio_rows = [(e, r) for e, _, r in analysis.results
                  if r.estimand.lower().find("rate per") < 0 and r.estimate is not None
                  and (e, r.method) not in hidden]
    if ratio_rows:
        path = folder / "forest_plot.png"
        forest_plot([r for _, r in ratio_rows], path, labels=[f"{e}: {r.method}" for e, r in ratio_rows],
                    title=f"{analysis.study_id}: estimates against incident leg cramps",
                    small_cell_threshold=threshold)
        plots["forest plot"] = path
    if analysis.km_data is not None:
        path = folder / "kaplan_meier.png"
        kaplan_meier_plot(analysis.km_data, path, labels=analysis.km_labels,
                          title=f"{analysis.study_id}: time to first leg cramp", small_cell_threshold=threshold)
        plots["Kaplan-Meier curves"] = path
    if analysis.balance is not None:
        path = folder / "covariate_balance.png"
        love_plot(analysis.balance, path, title=f"{analysis.study_id}: covariate balance after PS matching")
        plots["covariate balance (Love plot)"] = path
    return plots


def build_study_statistics_asset(file_study: StudyDefinition) -> dg.AssetsDefinition:
    """The study file sets the asset's key and dependencies; a run analyses the study with its `studies`
    overrides merged in."""

    @dg.asset(
        key=associations_key(file_study.id),
        deps=[cohort_key(file_study.id)],
        group_name=STATISTICS_GROUP,
        kinds={"duckdb", "python"},
        description=f"Association estimates of study {file_study.id} ({file_study.title}); small cells suppressed.",
    )
    def _associations(context: dg.AssetExecutionContext, warehouse: Warehouse,
                      studies: StudySettings) -> dg.MaterializeResult:
        study = studies.resolve(file_study)
        threshold = study.threshold
        with warehouse.connect(context.run_id) as con:
            analysis = analyse_study(con, study)
            published = publish_associations(con, study.id, results_frame(study.id, analysis.results, study.seed),
                                             threshold)
            outputs = warehouse.build_outputs_dir(context.run_id) / study.id
            plots = _write_plots(analysis, outputs, threshold, published)
            report = write_study_report(con, study, analysis, published, plots, outputs / "report.md")
        for note in analysis.notes:
            context.log.warning(f"{study.id}: {note}")
        metadata = {
            "dagster/row_count": len(published),
            "seed": study.seed,
            "report": dg.MetadataValue.path(str(warehouse.published_outputs_dir / study.id / report.name)),
            "estimates": dg.MetadataValue.md(estimates_markdown(published, threshold)),
        }
        if analysis.equipoise is not None:
            metadata["equipoise"] = round(analysis.equipoise, 3)
        for title, path in plots.items():
            metadata[title] = dg.MetadataValue.md(_image_markdown(path, title))
        if analysis.notes:
            metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in analysis.notes))
        return dg.MaterializeResult(metadata=metadata)

    return _associations


def build_sequence_symmetry_asset(studies: list[StudyDefinition]) -> dg.AssetsDefinition:
    drugs = list(dict.fromkeys(d for s in studies for d in drug_exposures(s)))
    threshold = max((s.threshold for s in studies), default=11)  # the strictest rule of all studies

    @dg.asset(
        key=associations_key(SEQUENCE_SYMMETRY_ID),
        deps=[phenotype_asset_key(d) for d in drugs] + [phenotype_asset_key("leg_cramps")],
        group_name=STATISTICS_GROUP,
        kinds={"duckdb", "python"},
        description="Sequence symmetry analysis (Hallas 1996; null-effect ratio of Tsiropoulos 2009) of each drug "
                    "class's first fill against the first leg-cramp record, over the whole extract.",
    )
    def _sequence_symmetry(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        notes: list[str] = []
        with warehouse.connect(context.run_id) as con:
            rows = sequence_symmetry_for_drugs(con, drugs, notes=notes)
            published = publish_associations(con, SEQUENCE_SYMMETRY_ID, results_frame(SEQUENCE_SYMMETRY_ID, rows),
                                             threshold)
        for note in notes:
            context.log.warning(note)
        metadata = {"dagster/row_count": len(published),
                    "sequence ratios": dg.MetadataValue.md(estimates_markdown(published, threshold))}
        if notes:
            metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in notes))
        return dg.MaterializeResult(metadata=metadata)

    return _sequence_symmetry


studies = list(load_studies().values())
assets = [*(build_study_statistics_asset(s) for s in studies), build_sequence_symmetry_asset(studies)]
