"""A drawn Kaplan-Meier curve gives no small number at risk back (disclosure.km_points_shown, obeyed by
statistics.plots.kaplan_meier_plot): each drop is S(before) * d / n, so with one event on a day its height gives the
persons at risk n; the curve stops where fewer than the threshold are at risk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.disclosure import km_points_shown
from pipelines.statistics.plots import kaplan_meier_plot

THRESHOLD = 11
PERSONS = 40
# persons in follow-up order: the i-th leaves at day 30 + 17 i, with n = 40 - i at risk just before; events for the
# first ten (40 .. 31 at risk) and for five near the end (7 .. 3 at risk)
EVENTS = [*range(10), *range(33, 38)]


def km_data() -> pd.DataFrame:
    exposed = pd.DataFrame({"exposure": 1, "outcome": [int(i in EVENTS) for i in range(PERSONS)],
                            "followup_days": np.arange(PERSONS) * 17 + 30})
    unexposed = pd.DataFrame({"exposure": 0, "outcome": [1] * 30 + [0] * 50, "followup_days": np.arange(80) * 11 + 13})
    return pd.concat([exposed, unexposed], ignore_index=True)


def numbers_at_risk_read_off(figure, label: str) -> list[float]:
    """What a reader gets from each drop of a drawn curve, one event a day: n = S(before) / (S(before) - S(after))."""
    line = next(line for line in figure.axes[0].get_lines() if line.get_label().startswith(label))
    survival = 1 - np.asarray(line.get_ydata(), dtype=float)
    before, after = survival[:-1], survival[1:]
    drops = before > after + 1e-12
    return list(before[drops] / (before[drops] - after[drops]))


def test_the_rule_cuts_a_curve_at_the_first_point_with_fewer_than_the_threshold_at_risk():
    assert km_points_shown([40, 12, 11, 10, 12, 3], THRESHOLD) == [True, True, True, False, False, False]
    assert km_points_shown([9, 40], THRESHOLD) == [False, False]
    assert km_points_shown([], THRESHOLD) == []


def test_a_drawn_curve_gives_no_small_number_at_risk_back(tmp_path):
    figure = kaplan_meier_plot(km_data(), tmp_path / "km.png", small_cell_threshold=THRESHOLD)
    read_off = numbers_at_risk_read_off(figure, "Exposed")
    # the first ten events' numbers at risk (40 .. 31) are read off; the five with 7 .. 3 at risk are not drawn
    assert np.round(read_off, 6).tolist() == [40.0 - i for i in range(10)]
    assert min(read_off) >= THRESHOLD
    # the curve runs to the last point with 11 at risk (person 29, day 30 + 17 * 29) and no further
    line = next(line for line in figure.axes[0].get_lines() if line.get_label().startswith("Exposed"))
    assert max(line.get_xdata()) * 365.25 == pytest.approx(30 + 17 * 29)


def test_below_the_threshold_the_curve_is_drawn_in_full(tmp_path):
    """The cut follows the threshold: at 2 (1 person is small) every drop is drawn, the last ones giving 7 .. 3."""
    figure = kaplan_meier_plot(km_data(), tmp_path / "km.png", small_cell_threshold=2)
    assert np.round(numbers_at_risk_read_off(figure, "Exposed"), 6).tolist()[-5:] == [7.0, 6.0, 5.0, 4.0, 3.0]
