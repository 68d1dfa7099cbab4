"""Multiplicity (pipelines/statistics/multiplicity.py): Benjamini-Hochberg q-values, by hand, per study and analysis,
over the published p-values only, as results.associations stores them."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from pipelines.statistics.assets import PUBLISHED_RESULT_COLUMNS, publish_associations
from pipelines.statistics.multiplicity import benjamini_hochberg


def test_benjamini_hochberg_by_hand():
    # Sorted 0.01, 0.03, 0.04, 0.20 (m = 4): p m / rank = 0.04, 0.06, 0.0533, 0.20; then the running minimum from
    # the largest down: 0.20, 0.0533, 0.0533, 0.04. In the given order:
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.20]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert benjamini_hochberg([0.01, 0.5]) == pytest.approx([0.02, 0.5])


def _row(study_id: str, exposure: str, analysis_id: str, p_value: float | None, events_exposed: int = 40) -> dict:
    return {"study_id": study_id, "exposure": exposure, "outcome": "leg_cramps", "seed": 1, "analysis_id": analysis_id,
            "estimand": "hazard ratio", "n_exposed": 500, "n_unexposed": 500, "events_exposed": events_exposed,
            "events_unexposed": 60, "estimate": None if p_value is None else 1.5,
            "ci_lower": None if p_value is None else 1.1, "ci_upper": None if p_value is None else 2.0,
            "p_value": p_value}


def test_published_rows_carry_q_values_per_study_and_analysis_over_the_shown_p_values():
    frame = pd.DataFrame([
        _row("s", "a", "cox_adjusted", 0.01), _row("s", "b", "cox_adjusted", 0.04),
        _row("s", "c", "cox_adjusted", 0.03), _row("s", "d", "cox_adjusted", 0.20),
        # Another analysis of the same study is another family: 0.01 among two is 0.02, not 0.04.
        _row("s", "a", "ps_matched_cox", 0.01), _row("s", "b", "ps_matched_cox", 0.5),
        # A rate has no p-value, so no q-value.
        _row("s", "a", "incidence_rate", None),
        # A p-value hidden by the small-cell rule (5 events) is not in its family: d's 0.20 is not pushed down.
        _row("s", "e", "cox_adjusted", 0.001, events_exposed=5),
    ])
    frame = frame.reindex(columns=["study_id", "exposure", "outcome", *PUBLISHED_RESULT_COLUMNS, "seed"])
    frame = frame.astype(object).where(frame.notna(), None)
    with duckdb.connect() as con:
        publish_associations(con, "s", frame, 11)
        rows = {(exposure, analysis_id): (p, q) for exposure, analysis_id, p, q in con.execute(
            "SELECT exposure, analysis_id, p_value, q_value FROM results.associations").fetchall()}
    q = {key: value[1] for key, value in rows.items()}
    assert q[("a", "cox_adjusted")] == pytest.approx(0.04)
    assert q[("b", "cox_adjusted")] == pytest.approx(0.16 / 3)
    assert q[("c", "cox_adjusted")] == pytest.approx(0.16 / 3)
    assert q[("d", "cox_adjusted")] == pytest.approx(0.20)
    assert q[("a", "ps_matched_cox")] == pytest.approx(0.02)
    assert q[("b", "ps_matched_cox")] == pytest.approx(0.5)
    assert q[("a", "incidence_rate")] is None
    assert rows[("e", "cox_adjusted")] == (None, None)


def test_a_sensitivity_analysis_is_a_family_of_its_own_and_leaves_the_main_q_values_alone():
    rows = [_row("s", "a", "cox_adjusted", 0.01), _row("s", "b", "cox_adjusted", 0.5)]
    # The same analysis with the outcome replaced by a variant: re-asks a and b, so it is not added to their family.
    variant = [{**_row("s", exposure, "cox_adjusted", p), "outcome": "leg_cramps_two_records",
                "sensitivity_analysis": "outcome_two_records"} for exposure, p in (("a", 0.001), ("b", 0.002))]
    frame = pd.DataFrame([*rows, *variant]).reindex(
        columns=["study_id", "exposure", "outcome", *PUBLISHED_RESULT_COLUMNS, "seed", "sensitivity_analysis"])
    frame = frame.astype(object).where(frame.notna(), None)
    with duckdb.connect() as con:
        publish_associations(con, "s", frame, 11)
        q = {(exposure, variant): q for exposure, variant, q in con.execute(
            "SELECT exposure, sensitivity_analysis, q_value FROM results.associations").fetchall()}
    # Main family {0.01, 0.5}: 0.02 and 0.5 (pooled with the variant's two it would be 0.0133 and 0.5).
    assert q[("a", None)] == pytest.approx(0.02) and q[("b", None)] == pytest.approx(0.5)
    # Variant family {0.001, 0.002}: 0.002 and 0.002.
    assert q[("a", "outcome_two_records")] == pytest.approx(0.002)
    assert q[("b", "outcome_two_records")] == pytest.approx(0.002)
