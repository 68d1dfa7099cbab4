"""Figures in one style, each written as PNG and SVG: the study forest plot (one chosen estimator per exposure,
grouped by seed category, with counts in columns), a forest plot of any list of results, Kaplan-Meier curves with
numbers at risk under the axis, and the Love plot of covariate balance.

Every count drawn on a figure is suppressed by the one rule of pipelines/disclosure.py: a count from 1 to
threshold-1 is written "<threshold", a cell that would give one away "suppressed". Each function writes the PNG
(and an SVG beside it) and returns the matplotlib Figure (tests read its texts). Figures are built with
`matplotlib.figure.Figure` directly, not pyplot, so nothing depends on a display or on global plotting state; the
style is applied with `matplotlib.rc_context` around each figure.

Layout conventions: the forest plot follows the journal layout of forestplot (R) and CohortMethod's study
reports (labels left, counts in columns, estimate and interval right, log axis with a line at no effect, sized for
A4 width); the numbers at risk follow lifelines' `add_at_risk_counts` (one row per group, aligned with the ticks).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
from matplotlib.transforms import blended_transform_factory

from pipelines.disclosure import SUPPRESSED_TEXT, is_small, km_points_shown, small_cell_text
from pipelines.statistics.inputs import EXPOSURE, FOLLOWUP_DAYS, OUTCOME
from pipelines.statistics.presentation import cell_text, count_text, estimate_text, present
from pipelines.statistics.propensity import IMBALANCE_THRESHOLD
from pipelines.statistics.results import DEFAULT_SMALL_CELL_THRESHOLD, EstimateResult, suppress_small_count
from pipelines.statistics.survival import kaplan_meier_by_exposure

# The one style of every figure.
PLOT_STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "svg.fonttype": "none",  # SVG text stays text: searchable and selectable
    "savefig.dpi": 200,
}
# A4 portrait is 8.27 in wide; figures are drawn at that width so their text prints at its nominal size.
A4_WIDTH_INCHES = 8.27
# A cell hidden because it would give a small count away: shorter than "suppressed", so the columns stay narrow.
HIDDEN_MARK = "hidden"
COLOURS = {"exposed": "#b2182b", "unexposed": "#2166ac", "point": "black", "reference": "#777777"}


def styled(function):
    """Draw the figure inside the project's style."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(PLOT_STYLE):
            return function(*args, **kwargs)
    return wrapper


def _save(figure: Figure, path: str | Path) -> None:
    """The PNG at `path` and an SVG beside it (same name, .svg)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")
    figure.savefig(path.with_suffix(".svg"), bbox_inches="tight")


# ---------------------------------------------------------------------------------------------------------------
# Study forest plot
# ---------------------------------------------------------------------------------------------------------------

def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@styled
def study_forest_plot(
    rows: pd.DataFrame,
    path: str | Path,
    threshold: int,
    estimate_label: str,
    title: str = "",
    category_order: Sequence[str] = (),
    null_value: float = 1.0,
) -> Figure:
    """One published estimate per exposure, grouped by seed category, laid out for A4 width.

    `rows`: published results.associations rows of one analysis (suppression columns included) with two more
    columns, `label` (the exposure's name) and `category`. Columns: exposure, exposed n / events, unexposed
    n / events, the estimate on a log axis with a line at `null_value`, and "estimate (95% CI)". A row whose estimate
    is hidden or not estimable keeps its counts and says so instead of drawing a point.
    """
    if rows.empty:
        raise ValueError("nothing to plot")
    order = {name: i for i, name in enumerate(category_order)}
    rows = rows.assign(_category_order=rows["category"].map(lambda c: order.get(c, len(order))))
    rows = rows.sort_values(["_category_order", "category", "label"])
    lines: list[tuple[str, dict | str]] = []  # ("header", category) or ("row", record)
    for category, group in rows.groupby(["_category_order", "category"], sort=False):
        lines.append(("header", category[1]))
        lines += [("row", record) for record in group.to_dict("records")]

    count = len(lines)
    height = 1.5 + 0.2 * count
    figure = Figure(figsize=(A4_WIDTH_INCHES, height))
    axes = figure.add_axes((0.62, 0.6 / height, 0.21, 0.2 * count / height))
    positions = np.arange(count)[::-1]
    drawn = [r for kind, r in lines if kind == "row" and present(r.get("estimate"))]
    values = [null_value] + [v for r in drawn for v in (r["estimate"], r.get("ci_lower"), r.get("ci_upper"))
                             if present(v) and np.isfinite(v) and v > 0]
    low, high = max(min(values) / 1.2, 0.05), min(max(values) * 1.2, 50.0)
    text = blended_transform_factory(figure.transFigure, axes.transData)
    for x, heading, align in ((0.01, "Exposure", "left"), (0.47, "Exposed\nn / events", "right"),
                              (0.60, "Unexposed\nn / events", "right"),
                              (0.845, f"{estimate_label}\n(95% CI)", "left")):
        figure.text(x, count - 0.1, heading, transform=text, ha=align, va="bottom", fontweight="bold", fontsize=7.5)
    for position, (kind, item) in zip(positions, lines):
        if kind == "header":
            figure.text(0.01, position, item, transform=text, va="center", fontweight="bold", fontsize=7.5)
            continue
        record = item
        figure.text(0.02, position, _shorten(record["label"], 46), transform=text, va="center", fontsize=7)
        for x, n_column, events_column in ((0.47, "n_exposed", "events_exposed"),
                                           (0.60, "n_unexposed", "events_unexposed")):
            counts = (f"{_plot_cell(record, n_column, threshold)} / "
                      f"{_plot_cell(record, events_column, threshold)}")
            figure.text(x, position, counts, transform=text, ha="right", va="center", fontsize=7)
        figure.text(0.845, position, estimate_text(record, threshold).replace(SUPPRESSED_TEXT, HIDDEN_MARK),
                    transform=text, va="center", fontsize=7)
        if present(record.get("estimate")):
            lower = record.get("ci_lower") if present(record.get("ci_lower")) else record["estimate"]
            upper = record.get("ci_upper") if present(record.get("ci_upper")) else record["estimate"]
            axes.plot([max(lower, low), min(upper, high)], [position, position], color=COLOURS["point"],
                      linewidth=1)
            for bound, edge, marker in ((lower, low, "<"), (upper, high, ">")):
                if (bound < edge) if marker == "<" else (bound > edge):  # interval runs off the axis
                    axes.plot(edge, position, marker=marker, color=COLOURS["point"], markersize=3)
            axes.plot(min(max(record["estimate"], low), high), position, marker="s", color=COLOURS["point"],
                      markersize=4)
    axes.axvline(null_value, color=COLOURS["reference"], linestyle="--", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlim(low, high)
    _readable_log_ticks(axes, [low, high], null_value)
    axes.set_ylim(-0.6, count - 0.4)
    axes.set_yticks([])
    axes.spines["left"].set_visible(False)
    axes.set_xlabel(f"{estimate_label} (log scale)")
    if title:
        figure.text(0.01, 1 - 0.12 / height, title, ha="left", va="top", fontsize=10, fontweight="bold")
    figure.text(0.01, 0.08 / height, f"{small_cell_text(threshold)}: 1 to {threshold - 1} persons. {HIDDEN_MARK}: "
                "not shown because it would give such a count away (pipelines/disclosure.py).", fontsize=6.5,
                color=COLOURS["reference"])
    _save(figure, path)
    return figure


def _plot_cell(record: Mapping, column: str, threshold: int) -> str:
    return cell_text(record, column, threshold, count_text).replace(SUPPRESSED_TEXT, HIDDEN_MARK)


# ---------------------------------------------------------------------------------------------------------------
# Forest plot of a list of results (e.g. several estimators of one exposure)
# ---------------------------------------------------------------------------------------------------------------

@styled
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
    figure = Figure(figsize=(A4_WIDTH_INCHES, 1.2 + 0.3 * count))
    axes = figure.add_subplot()
    rows = np.arange(count)[::-1]  # first result at the top
    for row, result in zip(rows, results):
        if result.ci_lower is not None and result.ci_upper is not None:
            axes.plot([result.ci_lower, result.ci_upper], [row, row], color=COLOURS["point"], linewidth=1)
        axes.plot(result.estimate, row, marker="s", color=COLOURS["point"], markersize=4)
    axes.axvline(null_value, color=COLOURS["reference"], linestyle="--", linewidth=0.8)
    axes.set_xscale("log")
    values = [value for result in results for value in (result.estimate, result.ci_lower, result.ci_upper)]
    _readable_log_ticks(axes, values, null_value)
    axes.set_yticks(rows)
    axes.set_yticklabels(labels)
    axes.set_ylim(-0.7, count - 0.3)
    axes.set_xlabel("Estimate (95% CI), log scale")
    if title:
        axes.set_title(title)

    # Text columns to the right of the axes, in axes-fraction x and data y coordinates.
    transform = axes.get_yaxis_transform()
    axes.text(1.02, count - 0.4, "events exp/unexp", transform=transform, fontsize=7, fontweight="bold")
    axes.text(1.22, count - 0.4, "estimate (95% CI)", transform=transform, fontsize=7, fontweight="bold")
    for row, result in zip(rows, results):
        events = (
            f"{suppress_small_count(result.events_exposed, small_cell_threshold)}/"
            f"{suppress_small_count(result.events_unexposed, small_cell_threshold)}"
        )
        interval = f"{result.estimate:.2f} ({_fmt(result.ci_lower)}-{_fmt(result.ci_upper)})"
        axes.text(1.02, row, events, transform=transform, va="center", fontsize=7)
        axes.text(1.22, row, interval, transform=transform, va="center", fontsize=7)
    _save(figure, path)
    return figure


def _readable_log_ticks(axes, values: Sequence[float | None], null_value: float) -> None:
    """Ticks at 0.1, 0.2, 0.5, 1, 2, 5, ... written as plain numbers instead of powers of ten."""
    values = [null_value] + [v for v in values if v is not None and np.isfinite(v) and v > 0]
    low, high = min(values), max(values)
    candidates = [m * 10.0**e for e in range(-4, 5) for m in (1, 2, 5)]
    ticks = [tick for tick in candidates if low / 1.5 <= tick <= high * 1.5]
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# ---------------------------------------------------------------------------------------------------------------
# Kaplan-Meier
# ---------------------------------------------------------------------------------------------------------------

AT_RISK_GID = "number_at_risk"


# In `hidden_counts`: a group's events up to the risk horizon are hidden (a km_/aj_ row's); the curve's steps up to
# the horizon give them back, so it is not drawn, though the events over the follow-up are printed.
KM_HORIZON_EVENTS = "horizon_events"
# The legend's note for a group whose curve would give a hidden count back.
KM_CURVE_NOT_DRAWN = "no curve (it would give a hidden count back)"


@styled
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
    hidden_counts: Collection[str] = (),
) -> Figure:
    """Kaplan-Meier cumulative incidence (1 - survival) by exposure, with 95% bands and the numbers at risk under
    the axis, one row per group aligned with the year ticks (as lifelines' `add_at_risk_counts` draws them).

    Legend entries show persons and events per group; every count, those at risk included, is suppressed below
    the threshold. Numbers at risk are shown at `at_risk_years` (default: 0 and each whole year of follow-up, at
    most 6 points). `hidden_counts`: the counts of the drawn population the published tables hide to protect
    another count (`n_exposed`, `n_unexposed`, `events_exposed`, `events_unexposed`, pipelines/disclosure.py):
    they print "suppressed" in the legend; `horizon_events_exposed` / `horizon_events_unexposed`
    (KM_HORIZON_EVENTS): the events up to a risk horizon are hidden, so that group has no curve.

    A group whose persons or events are hidden (small, or hidden in the tables) has no curve: the curve gives both
    back, its number of steps being the events when no two fall on one day and its first drop 1 / the persons at
    risk (Kaplan-Meier's product-limit steps d/n). Its legend entry stays; its numbers at risk print "suppressed"
    (the drop between two of them is the events and censorings in between, and the first is its persons). A drawn
    curve stops where fewer than the threshold remain at risk (disclosure.km_points_shown: each drop gives the number
    at risk back).
    """
    curves = kaplan_meier_by_exposure(data, exposure, outcome, followup_days, labels, weights)
    figure = Figure(figsize=(A4_WIDTH_INCHES * 0.8, 4.6))
    axes = figure.add_axes((0.3, 0.34, 0.66, 0.56))

    longest = max(float(curve.durations.max()) for curve in curves.values())
    if at_risk_years is None:
        step = max(1.0, np.ceil(longest / 5))
        at_risk_years = list(np.arange(0, longest + 1e-9, step))

    colours = [COLOURS["unexposed"], COLOURS["exposed"]]
    def shown(count: int, hidden: bool) -> str:
        return SUPPRESSED_TEXT if hidden else suppress_small_count(count, small_cell_threshold)

    arms = dict(zip(labels, ("unexposed", "exposed")))  # kaplan_meier_by_exposure's labels: unexposed first
    without_curve: set[str] = set()
    for (label, curve), colour in zip(curves.items(), colours):
        persons = len(curve.durations)
        events = int(curve.event_observed.sum())
        persons_hidden, events_hidden = (f"{what}_{arms[label]}" in hidden_counts for what in ("n", "events"))
        legend = f"{label} (n={shown(persons, persons_hidden)}, events={shown(events, events_hidden)})"
        if (persons_hidden or events_hidden or f"{KM_HORIZON_EVENTS}_{arms[label]}" in hidden_counts
                or is_small(persons, small_cell_threshold) or is_small(events, small_cell_threshold)):
            axes.plot([], [], label=f"{legend}: {KM_CURVE_NOT_DRAWN}", color=colour, linewidth=1.2)
            without_curve.add(label)
            continue
        times = curve.survival_function_.index.to_numpy()
        # Cut where fewer than the threshold remain at risk: a drop gives the number at risk back (disclosure.py)
        durations = np.sort(np.asarray(curve.durations, dtype=float))
        drawn = np.array(km_points_shown(len(durations) - np.searchsorted(durations, times, side="left"),
                                         small_cell_threshold))
        times = times[drawn]
        incidence = 1 - curve.survival_function_.iloc[:, 0].to_numpy()[drawn]
        band = curve.confidence_interval_survival_function_[drawn]
        axes.step(times, incidence, where="post", label=legend, color=colour, linewidth=1.2)
        axes.fill_between(times, 1 - band.iloc[:, 1].to_numpy(), 1 - band.iloc[:, 0].to_numpy(), step="post",
                          alpha=0.15, color=colour)
    axes.set_xlabel("Years since cohort entry")
    axes.set_ylabel("Cumulative incidence")
    axes.set_title(title, loc="left")
    axes.legend(loc="upper left")
    axes.set_xlim(0, max(longest, max(at_risk_years)))
    axes.set_xticks(list(at_risk_years))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))

    # Numbers at risk: persons still followed (no event, not censored) just before each time, under the axis. A
    # group without a curve (every group whose persons or events are hidden) prints none: two neighbouring numbers
    # bound its events (persons - at risk = events + censored), and its first number is its persons.
    below = blended_transform_factory(axes.transData, axes.transAxes)
    left = blended_transform_factory(axes.transAxes, axes.transAxes)
    axes.text(-0.02, -0.28, "Number at risk", transform=left, ha="right", fontweight="bold")
    for i, ((label, curve), colour) in enumerate(zip(curves.items(), colours)):
        y = -0.38 - 0.09 * i
        axes.text(-0.03, y, _shorten(label, 36), transform=left, ha="right", color=colour)
        durations = np.asarray(curve.durations)
        for year in at_risk_years:
            at_risk = int((durations >= year).sum())
            axes.text(year, y, shown(at_risk, label in without_curve), transform=below, ha="center",
                      gid=AT_RISK_GID)
    _save(figure, path)
    return figure


# ---------------------------------------------------------------------------------------------------------------
# Love plot
# ---------------------------------------------------------------------------------------------------------------

@styled
def love_plot(
    balance: pd.DataFrame,
    path: str | Path,
    title: str = "Covariate balance",
    threshold: float = IMBALANCE_THRESHOLD,
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Love plot: absolute standardised mean difference per covariate before and after adjustment.

    `balance` is the table from `covariate_balance` (columns covariate, smd_before, smd_after); `labels` names
    the covariates (default their ids). A dashed line marks the 0.1 threshold; covariates are sorted by their
    imbalance before adjustment.
    """
    table = balance.assign(abs_before=balance["smd_before"].abs(), abs_after=balance["smd_after"].abs())
    table = table.sort_values("abs_before")
    rows = np.arange(len(table))
    figure = Figure(figsize=(A4_WIDTH_INCHES * 0.8, 1.5 + 0.22 * len(table)))
    axes = figure.add_subplot()
    axes.scatter(table["abs_before"], rows, marker="o", facecolors="none", edgecolors=COLOURS["exposed"],
                 label="Before adjustment")
    axes.scatter(table["abs_after"], rows, marker="o", color=COLOURS["unexposed"], label="After adjustment")
    axes.axvline(threshold, color=COLOURS["reference"], linestyle="--", linewidth=0.8)
    axes.set_yticks(rows)
    axes.set_yticklabels([(labels or {}).get(c, c) for c in table["covariate"]])
    axes.set_xlabel("Absolute standardised mean difference")
    axes.set_title(title, loc="left")
    axes.legend(loc="lower right")
    _save(figure, path)
    return figure
