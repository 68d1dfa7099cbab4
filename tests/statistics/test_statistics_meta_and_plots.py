"""Meta-analysis against published (R metafor) values, result tables, small-cell suppression and PNG figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from pipelines.statistics import (
    EstimateResult,
    cox_hazard_ratio,
    covariate_balance,
    forest_plot,
    format_results_table,
    kaplan_meier_plot,
    love_plot,
    meta_analysis,
    meta_analysis_of_results,
    odds_ratio_from_counts,
    results_table,
    suppress_small_count,
    suppress_small_counts,
)
from pipelines.statistics.plots import AT_RISK_GID
from pipelines.testing.simulation import simulate_cohort

# Kacker (2004) example as used in statsmodels' own tests, with R metafor's results (rma method "DL" and "FE"),
# statsmodels/stats/tests/results/results_meta.py (exk1_dl, exk1_fe).
KACKER_EFFECTS = [61.00, 61.40, 62.21, 62.30, 62.34, 62.60, 62.70, 62.84, 65.90]
KACKER_VARIANCES = [0.2025, 1.2100, 0.0900, 0.2025, 0.3844, 0.5625, 0.0676, 0.0225, 1.8225]


def test_meta_analysis_matches_metafor():
    # Our function takes log estimates and reports ratios; metafor's values are on the log scale here.
    result = meta_analysis(KACKER_EFFECTS, np.sqrt(KACKER_VARIANCES))
    random, fixed = result.random_effects, result.fixed_effect
    assert math.log(random.estimate) == pytest.approx(62.3901386044504, abs=1e-8)
    assert math.log(random.ci_lower) == pytest.approx(61.9084781058787, abs=1e-8)
    assert math.log(random.ci_upper) == pytest.approx(62.8717991030221, abs=1e-8)
    assert result.tau_squared == pytest.approx(0.288049246973751, abs=1e-10)
    assert result.q_statistic == pytest.approx(24.801897741835, abs=1e-8)
    assert result.q_p_value == pytest.approx(0.00167935146372742, abs=1e-10)
    assert result.i_squared == pytest.approx(0.67744403741711, abs=1e-10)
    assert math.log(fixed.estimate) == pytest.approx(62.5833970939982, abs=1e-8)
    assert math.log(fixed.ci_lower) == pytest.approx(62.3720233953344, abs=1e-8)
    assert math.log(fixed.ci_upper) == pytest.approx(62.7947707926621, abs=1e-8)


def test_meta_analysis_of_site_results_recovers_standard_errors():
    # Two sites with Wald intervals on the log scale: HR 1.5 (SE 0.1) and HR 2.0 (SE 0.2).
    z = 1.959963984540054
    sites = [
        EstimateResult("Cox", "hazard ratio", hr, hr * math.exp(-z * se), hr * math.exp(z * se), 0.01,
                       n_exposed=100, n_unexposed=120, events_exposed=20, events_unexposed=15)
        for hr, se in [(1.5, 0.1), (2.0, 0.2)]
    ]
    pooled = meta_analysis_of_results(sites, ["A", "B"])
    weights = np.array([1 / 0.1**2, 1 / 0.2**2])
    expected = np.exp(np.sum(weights * np.log([1.5, 2.0])) / weights.sum())
    assert pooled.fixed_effect.estimate == pytest.approx(expected, rel=1e-9)
    assert pooled.sites["standard_error"].tolist() == pytest.approx([0.1, 0.2], rel=1e-9)
    assert pooled.fixed_effect.events_exposed == 40 and pooled.fixed_effect.n_unexposed == 240
    assert "DerSimonian-Laird" in pooled.random_effects.method


def test_small_counts_are_suppressed():
    assert suppress_small_count(0) == "0"
    assert suppress_small_count(1) == "<11"
    assert suppress_small_count(10) == "<11"
    assert suppress_small_count(11) == "11"
    assert suppress_small_count(4, threshold=5) == "<5"
    row = suppress_small_counts(odds_ratio_from_counts(3, 50, 12, 60).to_row())
    # The complement (events_unexposed, with the published outcome total) and the estimate would recompute it.
    assert row["events_exposed"] == "<11" and row["n_exposed"] == 50
    assert row["events_unexposed"] == row["estimate"] == row["ci_lower"] == "suppressed"


def test_results_table_and_printing():
    results = [odds_ratio_from_counts(3, 50, 12, 60), odds_ratio_from_counts(20, 100, 12, 100)]
    table = results_table(results)
    assert list(table.columns)[:3] == ["method", "estimand", "estimate"] and len(table) == 2
    text = format_results_table(results, small_cell_threshold=11)
    # The first estimate would recompute its hidden count: it prints as suppressed, the second as computed.
    assert "<11/suppressed" in text and "suppressed (suppressed-suppressed)" in text and "1.83 (0.84-3.99)" in text


def _texts(figure) -> list[str]:
    return [text.get_text() for text in figure.findobj(Text) if text.get_text()]


@pytest.fixture(scope="module")
def small_cohort() -> pd.DataFrame:
    """60 exposed persons with 4 events and 80 unexposed with 15: some counts on the figures are below 11."""
    exposed = pd.DataFrame(
        {"exposure": 1, "outcome": [1] * 4 + [0] * 56, "followup_days": np.linspace(30, 1000, 60)}
    )
    unexposed = pd.DataFrame(
        {"exposure": 0, "outcome": [1] * 15 + [0] * 65, "followup_days": np.linspace(20, 1100, 80)}
    )
    return pd.concat([exposed, unexposed], ignore_index=True)


def test_forest_plot_writes_png_and_suppresses_small_counts(tmp_path, small_cohort):
    results = [
        odds_ratio_from_counts(3, 50, 12, 60),
        cox_hazard_ratio(small_cohort),
        odds_ratio_from_counts(20, 100, 10, 100),
    ]
    path = tmp_path / "forest.png"
    figure = forest_plot(results, path, labels=["tiny", "cohort", "textbook"])
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
    texts = _texts(figure)
    assert "<11/12" in texts and "<11/15" in texts and "20/<11" in texts  # 3 and 4 and 10 are hidden
    assert not any(text.startswith("3/") for text in texts)


def test_kaplan_meier_plot_suppresses_small_counts(tmp_path, small_cohort):
    path = tmp_path / "km.png"
    figure = kaplan_meier_plot(small_cohort, path)
    assert path.stat().st_size > 1000
    texts = _texts(figure)
    exposed_events = int(small_cohort.loc[small_cohort.exposure == 1, "outcome"].sum())
    legend = [text for text in texts if text.startswith("Exposed (")]
    assert legend and "events=<11" in legend[0] and f"events={exposed_events})" not in legend[0]
    # Every count-like label (legend or numbers at risk) shows no value from 1 to 10.
    for text in texts:
        for token in text.replace("(", " ").replace(")", " ").replace(",", " ").split():
            if token.startswith(("n=", "events=")):
                value = token.split("=")[1]
                assert value == "<11" or value == "0" or int(value.replace(",", "")) >= 11
    # The numbers at risk sit under the axis, one row per group, one cell per year tick (lifelines' layout).
    at_risk = [text for text in figure.findobj(Text) if text.get_gid() == AT_RISK_GID]
    years = sorted({text.get_position()[0] for text in at_risk})
    assert len(at_risk) == 2 * len(years) and years[0] == 0
    cells = [text.get_text() for text in at_risk if text.get_text() != "suppressed"]
    assert all(cell == "<11" or int(cell.replace(",", "")) == 0 or int(cell.replace(",", "")) >= 11 for cell in cells)
    # At time 0 everyone is at risk: 80 unexposed; the exposed group (small events, no curve) prints none of its
    # numbers at risk, which would bound its events.
    at_zero = [text.get_text() for text in at_risk if text.get_position()[0] == 0]
    assert sorted(at_zero) == ["80", "suppressed"] and len(cells) == len(years)
    assert path.with_suffix(".svg").read_text().count("<svg") == 1


def test_love_plot_writes_png(tmp_path):
    before = simulate_cohort(2000, seed=42)
    after = before.sample(frac=1.0, random_state=1)
    balance = covariate_balance(before, after, ["age", "female", "diabetes"])
    path = tmp_path / "nested" / "love.png"
    figure = love_plot(balance, path, labels={"diabetes": "Diabetes mellitus"})
    assert path.stat().st_size > 1000 and "<svg" in path.with_suffix(".svg").read_text()
    [axes] = figure.axes
    # The 0.1 line, and covariates named by their labels (ids where none is given).
    assert any(list(line.get_xdata()) == [0.1, 0.1] for line in axes.get_lines())
    assert {label.get_text() for label in axes.get_yticklabels()} == {"age", "female", "Diabetes mellitus"}


def test_dersimonian_laird_tau_squared_is_truncated_at_zero():
    # Sites that agree more than chance predicts (Q < k - 1): statsmodels' raw DL tau^2 is negative; DL (and
    # metafor) set it to 0, so the random-effects result equals the fixed-effect one.
    result = meta_analysis([0.50, 0.52, 0.49, 0.51], [0.2, 0.2, 0.25, 0.3])
    assert result.q_statistic < 3
    assert result.tau_squared == 0.0 and result.i_squared == 0.0
    assert result.random_effects.estimate == pytest.approx(result.fixed_effect.estimate)
    assert result.random_effects.ci_lower == pytest.approx(result.fixed_effect.ci_lower)
    assert result.random_effects.ci_upper == pytest.approx(result.fixed_effect.ci_upper)
