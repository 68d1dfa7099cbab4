"""The study report: one Markdown file an epidemiologist can send, with attrition, Table 1, estimates and plots."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.cohorts.study import StudyDefinition
from pipelines.disclosure import SUPPRESSED_TEXT, small_cell_text


def _number(value, decimals: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{decimals}f}"


def _count(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{int(value):,}"


def estimates_markdown(published: pd.DataFrame, threshold: int) -> str:
    """Estimates as a Markdown table; a small count prints as "<threshold", a cell hidden because it would
    recompute one as "suppressed" (pipelines/disclosure.py)."""
    if published.empty:
        return "No estimates."
    lines = ["| exposure | method | estimand | estimate (95% CI) | p | exposed: n / events | unexposed: n / events "
             "| diagnostics |",
             "|---|---|---|---|---|---|---|---|"]
    for row in published.to_dict("records"):
        small = set((row.get("suppressed_columns") or "").split(","))
        complementary = set((row.get("complementary_columns") or "").split(","))

        def shown(column, text):
            if column in small:
                return small_cell_text(threshold)
            return SUPPRESSED_TEXT if column in complementary else text(row.get(column))

        if _present(row.get("not_estimable_reason")):
            estimate = "not estimable"
        else:
            estimate = (f"{shown('estimate', _number)} "
                        f"({shown('ci_lower', _number)}–{shown('ci_upper', _number)})")
        p_value = shown("p_value", lambda value: _number(value, 3))
        lines.append(
            f"| {row['exposure']} | {row['method']} | {row['estimand']} | {estimate} | {p_value} | "
            f"{shown('n_exposed', _count)} / {shown('events_exposed', _count)} | "
            f"{shown('n_unexposed', _count)} / {shown('events_unexposed', _count)} | {_diagnostics(row)} |")
    return "\n".join(lines)


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _diagnostics(row: dict) -> str:
    """Why a row is not estimable, and a propensity-score row's AUC, effective sample size and balance."""
    parts = []
    if _present(row.get("not_estimable_reason")):
        parts.append(f"not estimable: {row['not_estimable_reason']}")
    if _present(row.get("ps_auc")):
        size = row.get("effective_sample_size")
        # The effective sample size is hidden with the small counts it would recompute (pipelines/disclosure.py).
        shown_size = f"{size:,.0f}" if _present(size) else SUPPRESSED_TEXT
        parts.append(f"PS AUC {row['ps_auc']:.3f}; effective sample size {shown_size}")
        if row.get("covariates_balanced"):
            parts.append("balanced (all |SMD| <= 0.1 after adjustment)")
        else:
            parts.append(f"**imbalanced after adjustment** (|SMD| > 0.1): {row['imbalanced_covariates']}")
    return "; ".join(parts)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def attrition_section(con: duckdb.DuckDBPyConnection, study_id: str) -> str:
    """The published (already suppressed) attrition of the study."""
    rows = con.execute(
        "SELECT step_order, step, persons_before_text, persons_after_text, persons_removed_text "
        "FROM results.attrition WHERE study_id = ? ORDER BY step_order", [study_id]).fetchall()
    return _markdown_table(["#", "step", "before", "after", "removed"], [list(r) for r in rows])


def analysis_attrition_section(con: duckdb.DuckDBPyConnection, study_id: str, threshold: int) -> str:
    """The published (already suppressed) persons per arm of every analysis, step by step."""
    rows = con.execute(
        "SELECT exposure, analysis_id, step_order, step, reason, persons_exposed, persons_unexposed, "
        "excluded_exposed, excluded_unexposed, coalesce(suppressed_columns, '') FROM results.analysis_attrition "
        "WHERE study_id = ? ORDER BY exposure, analysis_id, step_order", [study_id]).fetchall()
    if not rows:
        return "No analyses."

    def cell(value, column: str, small: str) -> str:
        if value is not None:
            return _count(value)
        return small_cell_text(threshold) if column in small.split(",") else SUPPRESSED_TEXT

    return _markdown_table(
        ["exposure", "analysis", "#", "persons who remain", "exposed", "unexposed", "excluded (exposed / unexposed)",
         "why excluded"],
        [[exposure, analysis_id, order, step, cell(pe, "persons_exposed", small), cell(pu, "persons_unexposed", small),
          "" if order == 1 else f"{cell(ee, 'excluded_exposed', small)} / {cell(eu, 'excluded_unexposed', small)}",
          reason or ""]
         for exposure, analysis_id, order, step, reason, pe, pu, ee, eu, small in rows])


def table1_section(con: duckdb.DuckDBPyConnection, study_id: str) -> str:
    """The published Table 1, one row per characteristic and a column per group (tableone's layout)."""
    table = con.execute(
        "SELECT row_order, variable, coalesce(level, '') AS level, statistic, \"group\", value, smd "
        "FROM results.table1 WHERE study_id = ?", [study_id]).df()
    if table.empty:
        return "No Table 1."
    groups = list(dict.fromkeys(table["group"]))
    wide = table.pivot_table(index=["row_order", "variable", "level", "statistic"], columns="group",
                             values="value", aggfunc="first").reset_index().sort_values("row_order")
    smd = table.groupby("row_order")["smd"].first()
    rows = []
    for record in wide.to_dict("records"):
        label = record["variable"] + (f" = {record['level']}" if record["level"] else "")
        statistic = {"n_pct": "n (%)", "mean_sd": "mean (SD)", "median_iqr": "median [IQR]",
                     "missing": "missing, n (%)", "n": "n"}.get(record["statistic"], record["statistic"])
        value = smd.get(record["row_order"])
        rows.append([label, statistic, *[record.get(g) or "" for g in groups],
                     "" if value is None or pd.isna(value) else f"{value:.3f}"])
    return _markdown_table(["characteristic", "statistic", *groups, "SMD"], rows)


def write_study_report(con: duckdb.DuckDBPyConnection, study: StudyDefinition, analysis, published: pd.DataFrame,
                       plots: dict[str, Path], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    threshold_label = f"<{study.threshold}"
    sections = [
        f"# {study.title}",
        "",
        f"Study `{study.id}`, design `{study.index.rule}`; report written "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Counts of 1 to {study.threshold - 1} persons are shown "
        f"as {threshold_label}, and what would recompute them (docs/disclosure.md) as '{SUPPRESSED_TEXT}'. Random "
        f"steps (model sampling, cross-validation folds, matching order) use seed {study.seed}; the same extract and "
        "study file give the same estimates.",
        "",
        study.description.strip(),
        "",
        "## Attrition",
        "",
        attrition_section(con, study.id),
        "",
        "## Persons in each analysis",
        "",
        analysis_attrition_section(con, study.id, study.threshold),
        "",
        "## Table 1: baseline characteristics",
        "",
        table1_section(con, study.id),
        "",
        "## Estimates against incident leg cramps",
        "",
        estimates_markdown(published, study.threshold),
        "",
    ]
    if analysis.equipoise is not None:
        sections += [f"Equipoise (share of persons with preference score 0.3–0.7): {analysis.equipoise:.1%}.", ""]
    if analysis.notes:
        sections += ["Notes:", "", *[f"- {note}" for note in analysis.notes], ""]
    if plots:
        sections += ["## Plots", ""]
        for title, plot in plots.items():
            sections += [f"![{title}]({plot.name})", ""]
    path.write_text("\n".join(sections))
    return path
