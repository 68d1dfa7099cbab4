"""The study report: one self-contained HTML file an epidemiologist can send, and the same content as Markdown
beside it for diff-friendly review.

Layout follows the STROBE / RECORD-PE reporting checklists: the question, design and population in words, the flow
from the source population through each exclusion to the cohort, a one-screen summary of the main estimates, then
Table 1 (tableone's layout, pipelines/cohorts/table1.py), diagnostics and the full tables. Exposures and covariates
are named by their phenotype names and link to their definitions (an appendix of the report); an adjusted
analysis names its adjustment set once, in a note. Both files are rendered by Jinja2 from one context; the HTML
embeds its style and its figures (inline SVG), so it renders with no network.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import jinja2
import pandas as pd

from pipelines.cohorts.study import StudyDefinition
from pipelines.cohorts.table1 import table1_footnote, table1_lines
from pipelines.disclosure import SUPPRESSED_TEXT, small_cell_text
from pipelines.statistics.analysis_attrition import HORIZON_ANALYSIS_PREFIXES
from pipelines.statistics.presentation import (
    PRIMARY_ANALYSIS_BY_DESIGN,
    RATE_ANALYSES,
    adjustment_note,
    analysis_identity,
    category_order,
    cell_text,
    count_text,
    estimate_text,
    label_of,
    p_value_text,
    present,
    ratio_text,
    variable_labels,
)
from pipelines.statistics.proportional_hazards import PROPORTIONAL_HAZARDS_ALPHA
from pipelines.statistics.results import ANALYSES

TEMPLATES = Path(__file__).parent / "templates"
# The one stylesheet of the report; the results browser embeds it too, with its own few additions.
REPORT_STYLESHEET = TEMPLATES / "report.css"
DESIGN_WORDS = {
    "first_visit": "Cohort study (screening design): persons enter at their first qualifying visit; each candidate "
                   "cause recorded at entry is compared with its absence, against incident leg cramps during "
                   "follow-up.",
    "new_user": "Active-comparator new-user cohort study: initiators of the target drug are compared with "
                "initiators of the comparator drug, against incident leg cramps while on treatment.",
}


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path


@functools.cache
def _environment() -> jinja2.Environment:
    """One Jinja environment per process: it compiles each template once and keeps it, where a new environment per
    study compiled both templates again for every study (0.05 s of CPU per study)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                     autoescape=jinja2.select_autoescape(["html", "html.j2"]),
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    environment.globals["inline_svg"] = inline_svg
    return environment


def with_analysis_ids(published: pd.DataFrame) -> pd.DataFrame:
    """The published rows with `analysis_id` and `method_name` (presentation.analysis_identity)."""
    frame = published.copy()
    identities = [analysis_identity(row) for row in frame.to_dict("records")] if not frame.empty else []
    frame["analysis_id"] = [i[0] for i in identities]
    frame["method_name"] = [i[1] for i in identities]
    return frame


def with_covariate_sets(con: duckdb.DuckDBPyConnection, study_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with `covariates`: each analysis's adjustment set from results.analysis_covariates, in model order."""
    sets = con.execute(
        "SELECT analysis_id, exposure, list(covariate ORDER BY covariate_order) FROM results.analysis_covariates "
        "WHERE study_id = ? GROUP BY analysis_id, exposure", [study_id]).fetchall()
    by_key = {(analysis_id, exposure): tuple(covariates) for analysis_id, exposure, covariates in sets}
    frame = frame.copy()
    frame["covariates"] = [by_key.get((r["analysis_id"], r["exposure"]), ()) for r in frame.to_dict("records")] \
        if not frame.empty else []
    return frame


def main_analysis_rows(published: pd.DataFrame) -> pd.DataFrame:
    """The rows of the main analysis, without those of sensitivity analyses: what the figures, the summary and the
    report's tables show (the report puts the sensitivity rows beside them in a section of their own)."""
    if "sensitivity_analysis" not in published:
        return published
    return published[published["sensitivity_analysis"].isna()]


def primary_analysis_of(study: StudyDefinition) -> str:
    """The analysis the study leads with: the study file's `primary_analysis`, else the design's primary
    (presentation.PRIMARY_ANALYSIS_BY_DESIGN). A name that is no comparative analysis stops here, before a run."""
    if study.primary_analysis is None:
        return PRIMARY_ANALYSIS_BY_DESIGN.get(study.index.rule, "cox_adjusted")
    comparisons = sorted(set(ANALYSES) - set(RATE_ANALYSES) - {"km_risk", "aj_risk"})
    if study.primary_analysis not in comparisons:
        raise ValueError(f"study {study.id}: primary_analysis {study.primary_analysis!r} is not one of "
                         f"{', '.join(comparisons)}")
    return study.primary_analysis


def _estimate_row(row: dict, threshold: int, labels) -> dict:
    exposure = row["exposure"]
    return {
        "exposure": exposure,
        "label": label_of(labels, exposure),
        "anchor": _anchor(exposure.split(" vs ")[0]),  # a new-user comparison links to its target's definition
        "category": labels[exposure].category if exposure in labels else "Study comparison",
        "method_name": row["method_name"],
        "analysis_id": row["analysis_id"],
        "estimate": estimate_text(row, threshold),
        "p": cell_text(row, "p_value", threshold, p_value_text),
        "q": cell_text(row, "q_value", threshold, p_value_text),
        "exposed": (f"{cell_text(row, 'n_exposed', threshold, count_text)} / "
                    f"{cell_text(row, 'events_exposed', threshold, count_text)}"),
        "unexposed": (f"{cell_text(row, 'n_unexposed', threshold, count_text)} / "
                      f"{cell_text(row, 'events_unexposed', threshold, count_text)}"),
        "not_estimable_reason": row.get("not_estimable_reason") if present(row.get("not_estimable_reason")) else "",
        # The proportional-hazards check of a Cox row (scaled Schoenfeld residual test), flagged below its threshold.
        "ph": cell_text(row, "proportional_hazards_p_value", threshold, p_value_text),
        "ph_flagged": present(row.get("proportional_hazards_violated")) and bool(row["proportional_hazards_violated"]),
        "e_value": _e_value_text(row, threshold),
        "calibrated": _calibrated_text(row, threshold),
        "calibrated_p": cell_text(row, "calibrated_p_value", threshold, p_value_text),
        "calibration_note": row.get("calibration_note") if present(row.get("calibration_note")) else "",
        "excludes_null": (present(row.get("ci_lower")) and present(row.get("ci_upper"))
                          and (row["ci_lower"] > 1 or row["ci_upper"] < 1)),
        "higher": present(row.get("estimate")) and row["estimate"] > 1,
    }


def _e_value_text(row: dict, threshold: int) -> str:
    """ "7.26 (3.00)": the E-value of the estimate and of its CI limit closest to 1 (pipelines/statistics/evalues.py),
    "–" where there is none."""
    point = cell_text(row, "e_value", threshold, ratio_text)
    if point in (SUPPRESSED_TEXT, "–"):
        return point
    return f"{point} ({cell_text(row, 'e_value_ci', threshold, ratio_text)})"


def _calibrated_text(row: dict, threshold: int) -> str:
    """The empirically calibrated estimate and 95% CI, "–" where the row is not calibrated."""
    estimate = cell_text(row, "calibrated_estimate", threshold, ratio_text)
    if estimate in (SUPPRESSED_TEXT, "–"):
        return estimate
    return (f"{estimate} ({cell_text(row, 'calibrated_ci_lower', threshold, ratio_text)}–"
            f"{cell_text(row, 'calibrated_ci_upper', threshold, ratio_text)})")


def _anchor(variable_id: str) -> str:
    return "def-" + re.sub(r"[^a-z0-9_]+", "-", variable_id.lower())


def _attrition(con: duckdb.DuckDBPyConnection, study_id: str) -> list[dict]:
    """The published (already suppressed) attrition of the study."""
    rows = con.execute(
        "SELECT step_order, step, persons_before_text, persons_after_text, persons_removed_text "
        "FROM results.attrition WHERE study_id = ? ORDER BY step_order", [study_id]).fetchall()
    return [dict(order=r[0], step=r[1], before=r[2], after=r[3], removed=r[4]) for r in rows]


def _analysis_attrition(con: duckdb.DuckDBPyConnection, study_id: str, analysis_id: str, threshold: int,
                        labels) -> list[dict]:
    """The primary analysis's exclusions after the study population, per exposure and arm (published, already
    suppressed); every analysis's steps are in results.analysis_attrition."""
    rows = con.execute(
        "SELECT exposure, step, reason, persons_exposed, persons_unexposed, excluded_exposed, excluded_unexposed, "
        "coalesce(suppressed_columns, '') FROM results.analysis_attrition "
        "WHERE study_id = ? AND analysis_id = ? AND step_order > 1 ORDER BY exposure, step_order",
        [study_id, analysis_id]).fetchall()

    def cell(value, column: str, small: str) -> str:
        if value is not None:
            return count_text(value)
        return small_cell_text(threshold) if column in small.split(",") else SUPPRESSED_TEXT

    return [{"exposure": label_of(labels, exposure), "step": step, "reason": reason or "",
             "remaining": f"{cell(pe, 'persons_exposed', small)} / {cell(pu, 'persons_unexposed', small)}",
             "excluded": f"{cell(ee, 'excluded_exposed', small)} / {cell(eu, 'excluded_unexposed', small)}"}
            for exposure, step, reason, pe, pu, ee, eu, small in rows]


def _table1(con: duckdb.DuckDBPyConnection, study_id: str, labels) -> tuple[list[str], list, bool]:
    table = con.execute("SELECT * FROM results.table1 WHERE study_id = ?", [study_id]).df()
    if table.empty:
        return [], [], False
    records = table.astype(object).where(table.notna(), None).to_dict("records")
    groups, lines = table1_lines(records, {key: label.name for key, label in labels.items()})
    return groups, lines, any(r["suppression"] is not None for r in records)


def _diagnostics(frame: pd.DataFrame, analysis, labels) -> dict:
    """Propensity-score diagnostics, equipoise, why estimates were not estimable, and the analysis notes."""
    ps_rows = []
    for row in frame.to_dict("records"):
        if present(row.get("ps_auc")):
            size = row.get("effective_sample_size")
            ps_rows.append({"method_name": row["method_name"], "auc": f"{row['ps_auc']:.3f}",
                            "ess": f"{size:,.0f}" if present(size) else SUPPRESSED_TEXT,
                            "balanced": bool(row.get("covariates_balanced")),
                            "imbalanced": row.get("imbalanced_covariates") or ""})
    reasons = Counter(row["not_estimable_reason"] for row in frame.to_dict("records")
                      if present(row.get("not_estimable_reason")))
    return {"ps": ps_rows, "equipoise": None if analysis.equipoise is None else f"{analysis.equipoise:.1%}",
            "not_estimable": reasons.most_common(),
            "notes": [{"text": note, "details": analysis.note_details.get(note, [])} for note in analysis.notes]}


def report_context(con: duckdb.DuckDBPyConnection, study: StudyDefinition, analysis, published: pd.DataFrame,
                   plots: dict[str, Path]) -> dict:
    """Everything either report prints, already formatted (suppression marks included)."""
    threshold = study.threshold
    labels = variable_labels()
    sensitivity_rows = published.drop(main_analysis_rows(published).index)
    published = main_analysis_rows(published)
    frame = with_covariate_sets(con, study.id, with_analysis_ids(published))
    primary_id = primary_analysis_of(study)
    records = frame.to_dict("records")
    primary_rows = [r for r in records if r["analysis_id"] == primary_id]
    primary = [_estimate_row(r, threshold, labels) for r in primary_rows]
    order = {name: i for i, name in enumerate(category_order())}
    primary.sort(key=lambda r: (order.get(r["category"], len(order)), r["label"]))
    label_name = lambda name: label_of(labels, name)  # noqa: E731 - a one-line mapping passed on

    analyses = []
    for analysis_id, rows in _grouped(records):
        if analysis_id in RATE_ANALYSES:
            continue
        analyses.append({"analysis_id": analysis_id, "method_name": rows[0]["method_name"],
                         "method": re.sub(r"adjusted for [^;)]*", "adjusted for the set in the note",
                                          rows[0]["method"]),
                         "estimand": rows[0]["estimand"],
                         "note": adjustment_note(rows, label_name),
                         "rows": [_estimate_row(r, threshold, labels) for r in rows],
                         "has_ph": _has_ph_check(rows)})
    published_count = sum(1 for r in records if present(r.get("estimate")))
    not_estimable = sum(1 for r in records if present(r.get("not_estimable_reason")))
    groups, table1, table1_suppressed = _table1(con, study.id, labels)
    used = list(dict.fromkeys([*(r.phenotype for r in study.exposures), *(r.phenotype for r in study.covariates),
                               study.outcome.phenotype, *(s.variant for s in study.sensitivity_analyses),
                               *([study.index.target, study.index.comparator] if study.index.rule == "new_user"
                                 else [])]))
    definitions = [{"id": pid, "anchor": _anchor(pid), **labels[pid].__dict__} for pid in used if pid in labels]
    attrition = _attrition(con, study.id)
    return {
        "study": study,
        "design": DESIGN_WORDS.get(study.index.rule, study.index.rule),
        "written": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "threshold": threshold,
        "small": small_cell_text(threshold),
        "suppressed_text": SUPPRESSED_TEXT,
        "attrition": attrition,
        "analysis_attrition": _analysis_attrition(con, study.id, primary_id, threshold, labels),
        "cohort_size": attrition[-1]["after"] if attrition else "–",
        "outcome_name": label_of(labels, study.outcome.phenotype),
        "primary_id": primary_id,
        "primary_name": primary_rows[0]["method_name"] if primary_rows else primary_id,
        "primary_note": adjustment_note(primary_rows, label_name),
        "calibrated_columns": bool(study.negative_control_outcomes or study.negative_control_exposures),
        "calibration_notes": list(dict.fromkeys(r["calibration_note"] for r in primary if r["calibration_note"])),
        "primary": primary,
        "primary_has_ph": _has_ph_check(primary_rows),
        "ph_alpha": PROPORTIONAL_HAZARDS_ALPHA,
        "findings": [r for r in primary if r["excludes_null"]],
        "counts": {"rows": len(records), "published": published_count, "not_estimable": not_estimable,
                   "withheld": len(records) - published_count - not_estimable,
                   "tests": sum(1 for r in records if present(r.get("p_value"))),
                   "primary_tests": sum(1 for r in primary_rows if present(r.get("p_value")))},
        "table1_groups": groups,
        "table1": table1,
        "table1_footnote": table1_footnote(threshold) if table1_suppressed else "",
        "diagnostics": _diagnostics(frame, analysis, labels),
        "analyses": analyses,
        "definitions": definitions,
        "defined": {d["id"] for d in definitions},
        "plots": plots,
        "sensitivity": _sensitivity_analyses(study, primary_rows, sensitivity_rows, primary_id, threshold, labels),
    }


def _has_ph_check(rows: list[dict]) -> bool:
    """Whether an analysis's rows are Cox models, which carry the proportional-hazards check."""
    return any(present(r.get("proportional_hazards_p_value")) or
               "proportional_hazards_p_value" in (r.get("complementary_columns") or "").split(",") for r in rows)
def _sensitivity_analyses(study: StudyDefinition, primary_rows: list[dict], sensitivity_rows: pd.DataFrame,
                          primary_id: str, threshold: int, labels) -> list[dict]:
    """Per sensitivity analysis of the study, the primary analysis's estimate of each exposure beside the variant's."""
    if sensitivity_rows.empty:
        return []
    variant_records = with_analysis_ids(sensitivity_rows).to_dict("records")
    sections = []
    for sensitivity in study.analysed_sensitivity_analyses:
        # An exposure variant's rows name the variant as their exposure: shown beside the replaced exposure's row.
        main_exposure = {sensitivity.variant: sensitivity.replace}
        variant = {main_exposure.get(r["exposure"], r["exposure"]): r for r in variant_records
                   if r["sensitivity_analysis"] == sensitivity.id and r["analysis_id"] == primary_id}
        rows = []
        for main in primary_rows:
            if sensitivity.id in study.exposure_variants and main["exposure"] != sensitivity.replace:
                continue  # the other exposures' analyses are the main ones
            main_row = _estimate_row(main, threshold, labels)
            other = variant.get(main["exposure"])
            other_row = _estimate_row(other, threshold, labels) if other else None
            rows.append({"label": main_row["label"], "main": main_row["estimate"], "main_events": main_row["exposed"],
                         "variant": other_row["estimate"] if other_row else "–",
                         "variant_events": other_row["exposed"] if other_row else "–",
                         "not_estimable_reason": other_row["not_estimable_reason"] if other_row else ""})
        sections.append({"id": sensitivity.id, "description": sensitivity.description,
                         "replace": label_of(labels, sensitivity.replace),
                         "variant": label_of(labels, sensitivity.variant), "rows": rows})
    return sections


def _grouped(records: list[dict]) -> list[tuple[str, list[dict]]]:
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["analysis_id"], []).append(record)
    return list(groups.items())


def inline_svg(path: Path) -> str:
    """An SVG file's <svg> element, to embed in HTML (the XML prolog and doctype dropped)."""
    text = path.with_suffix(".svg").read_text()
    return text[text.index("<svg"):]


def write_study_reports(con: duckdb.DuckDBPyConnection, study: StudyDefinition, analysis, published: pd.DataFrame,
                        plots: dict[str, Path], folder: Path) -> ReportFiles:
    """report.md and report.html of the study in `folder` (beside its plots)."""
    folder.mkdir(parents=True, exist_ok=True)
    context = report_context(con, study, analysis, published, plots)
    environment = _environment()
    markdown = folder / "report.md"
    markdown.write_text(environment.get_template("report.md.j2").render(**context))
    html = folder / "report.html"
    html.write_text(environment.get_template("report.html.j2").render(
        **context, stylesheet=REPORT_STYLESHEET.read_text()))
    return ReportFiles(markdown, html)


KM_COUNTS = ("n_exposed", "n_unexposed", "events_exposed", "events_unexposed")


def km_hidden_counts(analysis, main_rows: pd.DataFrame) -> set[str]:
    """The counts of the Kaplan-Meier plot's population the published tables hide (small or complementary): the
    persons and the events over the follow-up of the main analysis's rows on that population (the analyses of the
    plotted exposure whose attrition is the plotted population's, `km_steps`: not a matched, sampled or trimmed
    subset, not a time-varying analysis's arms), and as `horizon_events_<arm>` (plots.KM_HORIZON_EVENTS) the events
    up to the risk horizon of its km_/aj_ rows, which the curve's steps up to the horizon give back (and its height
    there is the hidden risk). A count is one cell wherever it is printed (CountLedger), so these rows say whether
    the plot's count is hidden; other rows (sensitivity analyses, subsets) print other counts and hide nothing
    here."""
    # Without the plotted population's steps, every row of the exposure is taken (hiding more, never less).
    drawn = {analysis_id for (exposure, analysis_id), steps in analysis.attrition.items()
             if exposure == analysis.km_exposure and (steps == analysis.km_steps or not analysis.km_steps)}
    if main_rows.empty or not drawn:
        return set()
    rows = main_rows[(main_rows["exposure"] == analysis.km_exposure) & main_rows["analysis_id"].isin(drawn)]
    hidden = set()
    for analysis_id, small, complementary in zip(rows["analysis_id"], rows["suppressed_columns"],
                                                 rows["complementary_columns"]):
        horizon = str(analysis_id).startswith(HORIZON_ANALYSIS_PREFIXES)
        for column in f"{small or ''},{complementary or ''}".split(","):
            if column in KM_COUNTS:
                hidden.add(f"horizon_{column}" if horizon and column.startswith("events") else column)
    return hidden


def write_study_plots(study: StudyDefinition, analysis, published: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """The study's figures (PNG, with an SVG beside each): the forest plot of its primary analysis, the
    Kaplan-Meier curves and the Love plot of a propensity-score design."""
    from pipelines.statistics.plots import kaplan_meier_plot, love_plot, study_forest_plot

    folder.mkdir(parents=True, exist_ok=True)
    labels = variable_labels()
    plots: dict[str, Path] = {}
    frame = with_analysis_ids(main_analysis_rows(published))
    primary_id = primary_analysis_of(study)
    rows = frame[frame["analysis_id"] == primary_id] if not frame.empty else frame
    if not rows.empty:
        rows = rows.assign(label=[label_of(labels, e) for e in rows["exposure"]],
                           category=[labels[e].category if e in labels else "Study comparison"
                                     for e in rows["exposure"]])
        path = folder / "forest_plot.png"
        study_forest_plot(rows, path, study.threshold, estimate_label=rows["method_name"].iloc[0],
                          title=f"{study.title}", category_order=category_order())
        plots["forest plot"] = path
    if analysis.km_data is not None:
        path = folder / "kaplan_meier.png"
        names = tuple(re.sub(r"[a-z][a-z0-9_]+", lambda m: labels[m.group(0)].name
                             if m.group(0) in labels and labels[m.group(0)].source_file else m.group(0), part)
                      for part in analysis.km_labels)
        kaplan_meier_plot(analysis.km_data, path, labels=names, small_cell_threshold=study.threshold,
                          hidden_counts=km_hidden_counts(analysis, frame),
                          title=f"Time to first leg cramp by {label_of(labels, analysis.km_exposure or '')}")
        plots["Kaplan-Meier curves"] = path
    if analysis.balance is not None:
        path = folder / "covariate_balance.png"
        love_plot(analysis.balance, path, title="Covariate balance before and after PS matching",
                  labels={key: label.name for key, label in labels.items()})
        plots["covariate balance (Love plot)"] = path
    return plots


def notes_markdown(notes: list[str], details: dict[str, list[str]]) -> str:
    """A study's notes as a Markdown list for the asset metadata, each note's detail lines nested under it (as the
    report prints them; StudyAnalysis.note_details)."""
    return "\n".join(f"- {note}" + "".join(f"\n  - {detail}" for detail in details.get(note, [])) for note in notes)


def summary_markdown(published: pd.DataFrame, study: StudyDefinition) -> str:
    """The report's summary table (the primary analysis per exposure) as Markdown, for the asset metadata."""
    labels = variable_labels()
    frame = with_analysis_ids(main_analysis_rows(published))
    primary_id = primary_analysis_of(study)
    rows = [_estimate_row(r, study.threshold, labels) for r in frame.to_dict("records")
            if r["analysis_id"] == primary_id]
    if not rows:
        return "No estimates."
    lines = [f"| exposure | {rows[0]['method_name']} (95% CI) | p | q (FDR) | exposed n / events "
             "| unexposed n / events | PH test p |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['estimate']} | {r['p']} | {r['q']} | {r['exposed']} | {r['unexposed']} "
              f"| {_ph_text(r)} |" for r in rows]
    return "\n".join(lines)


def estimates_markdown(published: pd.DataFrame, threshold: int) -> str:
    """Every published row as a Markdown table with short method names (the sequence-symmetry asset's metadata):
    a small count prints as "<threshold", a cell hidden because it would recompute one as "suppressed"."""
    if published.empty:
        return "No estimates."
    labels = variable_labels()
    frame = with_analysis_ids(published)
    lines = ["| exposure | method | estimate (95% CI) | p | exposed: n / events | unexposed: n / events |",
             "|---|---|---|---|---|---|"]
    for record in frame.to_dict("records"):
        row = _estimate_row(record, threshold, labels)
        lines.append(f"| {row['label']} | {row['method_name']} | {row['estimate']} | {row['p']} | {row['exposed']} "
                     f"| {row['unexposed']} |")
    return "\n".join(lines)


def _ph_text(row: dict) -> str:
    """The proportional-hazards check as printed beside an estimate: its p-value, marked when flagged."""
    return f"{row['ph']} (non-proportional)" if row["ph_flagged"] else row["ph"]
