"""The Kaplan-Meier plot hides what recomputes a count the published tables hide, and no more.

A curve's steps give its events back (one step per event day; every event on its own day here), so a group whose
events (or persons: the first drop is 1 / the persons at risk) are hidden, small or as a complement, has no curve.
Which counts the tables hide is read from the main analysis's rows on the plotted population only: a subset's row
(PS-matched) hiding its own count hides nothing of the plot."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from pipelines.statistics.plots import kaplan_meier_plot
from pipelines.statistics.report import km_hidden_counts
from pipelines.statistics.study_analysis import AT_RISK_STEP, COHORT_STEP, EVER_EXPOSED_COHORT_STEP, AttritionStep
from tests.support.disclosure_attacks import km_curve_events

THRESHOLD = 11
EXPOSED_EVENTS, UNEXPOSED_EVENTS = 5, 30


def km_data() -> pd.DataFrame:
    """40 exposed persons with 5 events and 80 unexposed with 30, every event on a day of its own."""
    exposed = pd.DataFrame({"exposure": 1, "outcome": [1] * EXPOSED_EVENTS + [0] * (40 - EXPOSED_EVENTS),
                            "followup_days": np.arange(40) * 17 + 30})
    unexposed = pd.DataFrame({"exposure": 0, "outcome": [1] * UNEXPOSED_EVENTS + [0] * (80 - UNEXPOSED_EVENTS),
                              "followup_days": np.arange(80) * 11 + 13})
    return pd.concat([exposed, unexposed], ignore_index=True)


def legend_of(figure, label: str) -> str:
    return next(line.get_label() for line in figure.axes[0].get_lines() if line.get_label().startswith(label))


def test_the_attack_reads_the_events_off_the_curves_of_shown_counts(tmp_path):
    figure = kaplan_meier_plot(km_data(), tmp_path / "km.png", small_cell_threshold=2)
    assert sorted(km_curve_events(figure).values()) == [EXPOSED_EVENTS, UNEXPOSED_EVENTS]


def test_no_curve_gives_a_small_events_count_back(tmp_path):
    figure = kaplan_meier_plot(km_data(), tmp_path / "km.png", small_cell_threshold=THRESHOLD)
    drawn = km_curve_events(figure)
    assert not any(1 <= steps < THRESHOLD for steps in drawn.values())
    assert list(drawn.values()) == [UNEXPOSED_EVENTS]
    assert "events=<11" in legend_of(figure, "Exposed") and "no curve" in legend_of(figure, "Exposed")


def test_no_curve_gives_a_complementary_events_count_back(tmp_path):
    figure = kaplan_meier_plot(km_data(), tmp_path / "km.png", small_cell_threshold=2,
                               hidden_counts={"events_unexposed"})
    assert list(km_curve_events(figure).values()) == [EXPOSED_EVENTS]
    assert "events=suppressed" in legend_of(figure, "Unexposed")
    # the exposed group's counts are shown: the table hides only the unexposed events
    assert f"n=40, events={EXPOSED_EVENTS}" in legend_of(figure, "Exposed")


def rows(**hidden: str) -> pd.DataFrame:
    """Main-analysis rows of one exposure: two on the whole population (at risk), one PS-matched, one km_ risk, one
    time-varying (arms: any exposed time);
    `hidden`: analysis id -> the counts it lists as complementary."""
    analysis_ids = ["crude_irr", "cox_crude", "ps_matched", "km_risk_365", "cox_current_exposure"]
    return pd.DataFrame({"exposure": "statins", "analysis_id": analysis_ids, "suppressed_columns": None,
                         "complementary_columns": [hidden.get(a) for a in analysis_ids]})


def analysis() -> SimpleNamespace:
    cohort, at_risk = AttritionStep(COHORT_STEP, None, 40, 80), AttritionStep(AT_RISK_STEP, None, 40, 80)
    shared = [cohort, at_risk]
    return SimpleNamespace(km_exposure="statins", km_steps=shared, attrition={
        ("statins", "crude_irr"): shared, ("statins", "cox_crude"): shared, ("statins", "km_risk_365"): shared,
        ("statins", "ps_matched"): [*shared, AttritionStep("matched", None, 30, 30)], ("other", "crude_irr"): shared,
        ("statins", "cox_current_exposure"): [AttritionStep(EVER_EXPOSED_COHORT_STEP, None, 50, 70), at_risk]})


def test_the_plot_hides_the_counts_its_own_rows_hide():
    assert km_hidden_counts(analysis(), rows(cox_crude="n_unexposed,events_unexposed")) == {
        "n_unexposed", "events_unexposed"}


def test_a_subset_row_hiding_its_counts_hides_nothing_of_the_plot():
    """The PS-matched row's persons and the time-varying arms are other counts than the plotted ones."""
    assert km_hidden_counts(analysis(), rows(ps_matched="n_unexposed,events_exposed",
                                             cox_current_exposure="n_exposed")) == set()


def test_a_hidden_risk_at_the_horizon_hides_the_curve_of_its_group(tmp_path):
    """The 365-day risk's exposed events are another count than the follow-up's, but the exposed curve's steps up
    to 365 days are those events (and its height there the hidden risk): the curve is not drawn; the legend's
    follow-up events, printed in the tables, stay."""
    hidden = km_hidden_counts(analysis(), rows(km_risk_365="events_exposed"))
    assert hidden == {"horizon_events_exposed"}
    figure = kaplan_meier_plot(km_data(), tmp_path / "km.png", small_cell_threshold=2, hidden_counts=hidden)
    assert list(km_curve_events(figure).values()) == [UNEXPOSED_EVENTS]
    assert f"n=40, events={EXPOSED_EVENTS}" in legend_of(figure, "Exposed") and "no curve" in legend_of(figure,
                                                                                                         "Exposed")


def test_without_the_plotted_population_every_row_of_the_exposure_counts():
    """An analysis that does not say which population it plots: the plot hides what any row of the exposure hides
    (more than needed, never less)."""
    unknown_population = SimpleNamespace(**{**vars(analysis()), "km_steps": []})
    assert km_hidden_counts(unknown_population, rows(ps_matched="n_unexposed")) == {"n_unexposed"}


def at_risk_row(figure, label: str) -> list[str]:
    """The numbers at risk printed on the row of a group, as the figure holds them (left to right)."""
    from pipelines.statistics.plots import AT_RISK_GID

    axes = figure.axes[0]
    y = next(text.get_position()[1] for text in axes.texts if text.get_text() == label)
    row = [text for text in axes.texts if text.get_gid() == AT_RISK_GID and text.get_position()[1] == y]
    return [text.get_text() for text in sorted(row, key=lambda text: text.get_position()[0])]


def test_a_group_without_a_curve_prints_no_number_at_risk(tmp_path):
    """The exposed group's 5 events are small, so it has no curve; its numbers at risk would bound them (40 at
    time 0 less those at the next tick is events + censored in between), so none is printed. The unexposed group,
    drawn, keeps its numbers."""
    figure = kaplan_meier_plot(km_data(), tmp_path / "km.png", small_cell_threshold=THRESHOLD,
                               at_risk_years=[0, 1, 2])
    durations = km_data().query("exposure == 0")["followup_days"] / 365.25
    assert at_risk_row(figure, "Exposed") == ["suppressed"] * 3
    assert at_risk_row(figure, "Unexposed") == [str(int((durations >= year).sum())) for year in (0, 1, 2)]


def test_a_group_whose_events_the_tables_hide_prints_no_number_at_risk(tmp_path):
    figure = kaplan_meier_plot(km_data(), tmp_path / "km.png", small_cell_threshold=2,
                               hidden_counts={"events_unexposed"}, at_risk_years=[0, 1])
    assert at_risk_row(figure, "Unexposed") == ["suppressed"] * 2
    assert at_risk_row(figure, "Exposed")[0] == "40"
