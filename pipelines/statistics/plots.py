"""PNG figures: forest plot of results, Kaplan-Meier curves by exposure, Love plot of covariate balance.

Every count drawn on a figure goes through `suppress_small_count`: a count from 1 to threshold-1 (default 10)
is written "<11". Each function writes the PNG and returns the matplotlib Figure (tests read its texts).
Figures are built with `matplotlib.figure.Figure` directly, not pyplot, so nothing depends on a display or on
global plotting state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from pipelines.statistics.inputs import EXPOSURE, FOLLOWUP_DAYS, OUTCOME
from pipelines.statistics.propensity import IMBALANCE_THRESHOLD
from pipelines.statistics.results import DEFAULT_SMALL_CELL_THRESHOLD, EstimateResult, suppress_small_count
from pipelines.statistics.survival import kaplan_meier_by_exposure


def _save(figure: Figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150, bbox_inches="tight")


def forest_plot(
    results: Sequence[EstimateResult],
    path: str | Path,
    labels: Sequence[str] | None = None,
    title: str = "",
    null_value: float = 1.0,
    small_cell_threshold: int = DEFAULT_SMALL_CELL_THRESHOLD,
) -> Figure:
    """Forest plot: one row per result with its estimate and 95% CI on a log axis, and a line at `null_value`.

    Row labels default to each result's method. Beside each row: events exposed/unexposed (suppressed below the
    threshold) and "estimate (lower-upper)".
    """
    if not results:
        raise ValueError("nothing to plot")
    labels = list(labels) if labels is not None else [result.method for result in results]
    count = len(results)
    figure = Figure(figsize=(10, 1.2 + 0.45 * count))
    axes = figure.add_subplot()
    rows = np.arange(count)[::-1]  # first result at the top
    for row, result in zip(rows, results):
        if result.ci_lower is not None and result.ci_upper is not None:
            axes.plot([result.ci_lower, result.ci_upper], [row, row], color="black", linewidth=1.2)
        axes.plot(result.estimate, row, marker="s", color="black", markersize=6)
    axes.axvline(null_value, color="grey", linestyle="--", linewidth=1)
    axes.set_xscale("log")
    _readable_log_ticks(axes, results, null_value)
    axes.set_yticks(rows)
    axes.set_yticklabels(labels)
    axes.set_ylim(-0.7, count - 0.3)
    axes.set_xlabel("Estimate (95% CI), log scale")
    if title:
        axes.set_title(title)

    # Text columns to the right of the axes, in axes-fraction x and data y coordinates.
    transform = axes.get_yaxis_transform()
    axes.text(1.02, count - 0.4, "events exp/unexp", transform=transform, fontsize=8, fontweight="bold")
    axes.text(1.22, count - 0.4, "estimate (95% CI)", transform=transform, fontsize=8, fontweight="bold")
    for row, result in zip(rows, results):
        events = (
            f"{suppress_small_count(result.events_exposed, small_cell_threshold)}/"
            f"{suppress_small_count(result.events_unexposed, small_cell_threshold)}"
        )
        interval = f"{result.estimate:.2f} ({_fmt(result.ci_lower)}-{_fmt(result.ci_upper)})"
        axes.text(1.02, row, events, transform=transform, va="center", fontsize=8)
        axes.text(1.22, row, interval, transform=transform, va="center", fontsize=8)
    _save(figure, path)
    return figure


def _readable_log_ticks(axes, results: Sequence[EstimateResult], null_value: float) -> None:
    """Ticks at 0.1, 0.2, 0.5, 1, 2, 5, ... written as plain numbers instead of powers of ten."""
    values = [null_value] + [
        value
        for result in results
        for value in (result.estimate, result.ci_lower, result.ci_upper)
        if value is not None and np.isfinite(value) and value > 0
    ]
    low, high = min(values), max(values)
    candidates = [m * 10.0**e for e in range(-4, 5) for m in (1, 2, 5)]
    ticks = [tick for tick in candidates if low / 1.5 <= tick <= high * 1.5]
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def kaplan_meier_plot(
    data: pd.DataFrame,
    path: str | Path,
    exposure: str = EXPOSURE,
    outcome: str = OUTCOME,
    followup_days: str = FOLLOWUP_DAYS,
    labels: tuple[str, str] = ("Unexposed", "Exposed"),
    title: str = "Time to first leg cramp",
    at_risk_years: Sequence[float] | None = None,
    weights: str | None = None,
    small_cell_threshold: int = DEFAULT_SMALL_CELL_THRESHOLD,
) -> Figure:
    """Kaplan-Meier cumulative incidence (1 - survival) by exposure, with 95% bands and a numbers-at-risk table.

    Legend entries show persons and events per group; every count is suppressed below the threshold. Numbers
    at risk are shown at `at_risk_years` (default: 0 and each whole year of follow-up, at most 6 points).
    """
    curves = kaplan_meier_by_exposure(data, exposure, outcome, followup_days, labels, weights)
    figure = Figure(figsize=(8, 6))
    grid = figure.add_gridspec(2, 1, height_ratios=(4, 1), hspace=0.35)
    axes = figure.add_subplot(grid[0])
    table_axes = figure.add_subplot(grid[1])

    longest = max(float(curve.durations.max()) for curve in curves.values())
    if at_risk_years is None:
        step = max(1.0, np.ceil(longest / 5))
        at_risk_years = list(np.arange(0, longest + 1e-9, step))

    for label, curve in curves.items():
        persons = len(curve.durations)
        events = int(curve.event_observed.sum())
        legend = (
            f"{label} (n={suppress_small_count(persons, small_cell_threshold)}, "
            f"events={suppress_small_count(events, small_cell_threshold)})"
        )
        times = curve.survival_function_.index.to_numpy()
        incidence = 1 - curve.survival_function_.iloc[:, 0].to_numpy()
        band = curve.confidence_interval_survival_function_
        axes.step(times, incidence, where="post", label=legend)
        axes.fill_between(
            times, 1 - band.iloc[:, 1].to_numpy(), 1 - band.iloc[:, 0].to_numpy(), step="post", alpha=0.2
        )
    axes.set_xlabel("Years since cohort entry")
    axes.set_ylabel("Cumulative incidence")
    axes.set_title(title)
    axes.legend(loc="upper left")
    axes.set_xlim(0, longest)

    # Numbers at risk: persons still followed (no event, not censored) just before each time.
    table_axes.axis("off")
    table_axes.set_title("Number at risk", fontsize=9, loc="left")
    cells = []
    for curve in curves.values():
        durations = np.asarray(curve.durations)
        cells.append(
            [suppress_small_count(int((durations >= year).sum()), small_cell_threshold) for year in at_risk_years]
        )
    table = table_axes.table(
        cellText=cells,
        rowLabels=list(curves.keys()),
        colLabels=[f"{year:g} y" for year in at_risk_years],
        loc="center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    _save(figure, path)
    return figure


def love_plot(
    balance: pd.DataFrame,
    path: str | Path,
    title: str = "Covariate balance",
    threshold: float = IMBALANCE_THRESHOLD,
) -> Figure:
    """Love plot: absolute standardised mean difference per covariate before and after adjustment.

    `balance` is the table from `covariate_balance` (columns covariate, smd_before, smd_after). A dashed line
    marks the 0.1 threshold; covariates are sorted by their imbalance before adjustment.
    """
    table = balance.assign(abs_before=balance["smd_before"].abs(), abs_after=balance["smd_after"].abs())
    table = table.sort_values("abs_before")
    rows = np.arange(len(table))
    figure = Figure(figsize=(7, 1.5 + 0.3 * len(table)))
    axes = figure.add_subplot()
    axes.scatter(table["abs_before"], rows, marker="o", facecolors="none", edgecolors="tab:red", label="Before")
    axes.scatter(table["abs_after"], rows, marker="o", color="tab:blue", label="After")
    axes.axvline(threshold, color="grey", linestyle="--", linewidth=1)
    axes.set_yticks(rows)
    axes.set_yticklabels(table["covariate"])
    axes.set_xlabel("Absolute standardised mean difference")
    axes.set_title(title)
    axes.legend(loc="lower right")
    _save(figure, path)
    return figure
