"""The audit's repair keeps the sparing rule's promise (disclosure_audit.protect_derivable_counts,
docs/disclosure.md "Repair"): a chain of sums through a sensitivity analysis's row is broken by withholding that
row whole, never by hiding a main cell, and a row withheld whole tells a reader nothing through its labels.

Hand-built counts of one exposure: the main row has 15 exposed events, a sensitivity analysis (the outcome with two
records) 12, so 3 exposed persons have the main outcome but not the variant, a small difference a reader can form.
The greedy choice hides the variant's 12 as its complement; printed "suppressed" in a row that prints its other
counts, it is a complement, at least 11, so the 3 is at most 15 - 11 = 4: bounded below the threshold."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pandas as pd

from pipelines.disclosure import suppress_estimates
from pipelines.statistics.analysis_attrition import (
    ESTIMATE_COUNT_COLUMNS,
    suppress_study_counts,
    suppress_study_counts_sparing_main,
    write_analysis_attrition,
)
from pipelines.statistics.disclosure_audit import (
    StudyLedger,
    _disclosed,
    _withhold_attrition_row,
    audit_published_study,
    protect_derivable_counts,
)
from pipelines.statistics.results import DERIVED_COLUMNS
from tests.support.paths import REPO_ROOT

THRESHOLD = 11
STEPS = (("in the study population", 68, 277), ("at least one day at risk", 68, 277))


def attrition() -> pd.DataFrame:
    return pd.DataFrame([{"study_id": "s", "analysis_id": "crude_irr", "exposure": "statins", "step_order": order,
                          "step": step, "reason": None, "persons_exposed": exposed, "persons_unexposed": unexposed,
                          "excluded_exposed": None if order == 1 else 0,
                          "excluded_unexposed": None if order == 1 else 0}
                         for order, (step, exposed, unexposed) in enumerate(STEPS, start=1)])


def row(outcome: str, events: tuple[int, int], sensitivity: str | None = None) -> dict:
    return {"study_id": "s", "exposure": "statins", "outcome": outcome, "analysis_id": "crude_irr",
            "estimand": "irr", "n_exposed": 68, "n_unexposed": 277, "events_exposed": events[0],
            "events_unexposed": events[1], "estimate": 1.2, "ci_lower": 0.6, "ci_upper": 2.4, "p_value": 0.6,
            "person_years_exposed": 100.0, "person_years_unexposed": 400.0, "sensitivity_analysis": sensitivity}


def results(with_sensitivity: bool = True) -> pd.DataFrame:
    rows = [row("leg_cramps", (15, 40))]
    if with_sensitivity:
        rows.append(row("leg_cramps_two_records", (12, 38), "two_records"))
    return pd.DataFrame(rows)


def decided(ledger: StudyLedger):
    return suppress_study_counts_sparing_main(ledger.attrition, ledger.results, THRESHOLD)


def flags(suppression, index: int) -> dict[str, bool]:
    return {column: bool(suppression.result_complementary[column].iloc[index]) for column in ESTIMATE_COUNT_COLUMNS}


def test_a_chain_through_a_sensitivity_row_withholds_that_row_and_spares_the_main_row():
    ledger = StudyLedger(attrition(), results())
    greedy = decided(ledger)
    # the greedy choice hides the variant's exposed events only, and the audit finds the 3 bounded below 11
    assert flags(greedy, 1)["events_exposed"] and not flags(greedy, 1)["n_exposed"]
    disclosed, _, _ = _disclosed(ledger.counts(), greedy, ledger, THRESHOLD)
    assert [key[0] for key in disclosed] == ["sensitivity difference"]

    lost = greedy.numbers_lost
    repaired = protect_derivable_counts(greedy, ledger, THRESHOLD)
    assert _disclosed(ledger.counts(), repaired, ledger, THRESHOLD)[0] == {}
    assert repaired.numbers_lost == lost + 2  # the variant's two printed persons counts (its estimates were hidden)
    assert repaired.unprotected == []
    # the variant's row is withheld whole, out of the ledger's own rows; the main row prints every count
    assert all(flags(repaired, 1).values()) and not repaired.ledger_rows.iloc[1]
    assert repaired.withheld_sensitivity_rows == 1
    assert not any(flags(repaired, 0).values())
    # as the main analysis alone publishes it
    alone = StudyLedger(attrition(), results(with_sensitivity=False))
    assert flags(protect_derivable_counts(decided(alone), alone, THRESHOLD), 0) == flags(repaired, 0)
    assert repaired.attrition.equals(decided(alone).attrition)


def published(frame: pd.DataFrame, suppression) -> pd.DataFrame:
    return suppress_estimates(frame, THRESHOLD, DERIVED_COLUMNS, complementary=suppression.result_complementary,
                              ledger_rows=suppression.ledger_rows)


def test_a_row_withheld_whole_prints_its_small_counts_as_suppressed():
    """A "<t" in a withheld row would tell its small counts from its others (and its "suppressed" ones from small
    ones): every count of the row prints "suppressed"."""
    frame = pd.DataFrame([row("leg_cramps", (3, 40)), row("leg_cramps", (3, 40))])
    whole = {column: pd.Series([True, False]) for column in ESTIMATE_COUNT_COLUMNS}
    printed = suppress_estimates(frame, THRESHOLD, DERIVED_COLUMNS, complementary=whole,
                                 ledger_rows=pd.Series([True, True]))
    assert printed.at[0, "suppressed_columns"] is None
    assert printed.at[0, "complementary_columns"].split(",")[:4] == list(ESTIMATE_COUNT_COLUMNS)
    assert printed.at[1, "suppressed_columns"] == "events_exposed"
    assert printed.loc[:, ["events_exposed", "estimate"]].isna().all(axis=None)


def test_the_check_reads_a_withheld_row_as_telling_nothing_and_a_labelled_one_as_a_complement():
    ledger = StudyLedger(attrition(), results())
    suppression = protect_derivable_counts(decided(ledger), ledger, THRESHOLD)
    con = duckdb.connect()
    write_analysis_attrition(con, "s", suppression.attrition)
    con.execute("CREATE SCHEMA IF NOT EXISTS results")
    frame = published(results(), suppression)[["study_id", "exposure", "outcome", "analysis_id", "estimand",
                                                "sensitivity_analysis", *ESTIMATE_COUNT_COLUMNS, "suppressed",
                                                "suppressed_columns", "complementary_columns"]]
    con.register("printed", frame.astype(object).where(frame.notna(), None))
    con.execute("CREATE TABLE results.associations AS SELECT * REPLACE (CAST(suppressed_columns AS VARCHAR) AS "
                "suppressed_columns, CAST(sensitivity_analysis AS VARCHAR) AS sensitivity_analysis) FROM printed")
    assert audit_published_study(con, "s", THRESHOLD, ledger).passed
    # The same row with a count marked small is not one withheld whole: its "suppressed" events are complements
    # (at least 11), and the 3 is bounded below the threshold again
    con.execute("UPDATE results.associations SET suppressed_columns = 'n_exposed' "
                "WHERE sensitivity_analysis IS NOT NULL")
    audit = audit_published_study(con, "s", THRESHOLD, ledger)
    assert not audit.passed
    assert audit.failures()[0].startswith("sensitivity difference") and "bounded below the threshold" in \
        audit.failures()[0]


def test_the_audit_prints_nothing_of_highs_on_the_terminal():
    """HiGHS prints a banner at its first call other than setting an option (highspy.Highs's constructor makes
    one): the audit's models must not, in a process of their own (the banner comes once per process)."""
    script = ("from pipelines.disclosure import Cell, SumRelation\n"
              "from pipelines.statistics.disclosure_audit import audit_cells\n"
              "cells = {'s': Cell(3), 'x': Cell(20), 'T': Cell(23)}\n"
              "audit = audit_cells(cells, [SumRelation('T', ('s', 'x'))], 11, hidden={'s'})\n"
              "assert audit.solves > 0 and not audit.passed\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout == "" and "HiGHS" not in done.stderr


# ---------------------------------------------------------------------------------------------------------------
# A main row withheld whole when only a printed zero is left to hide (disclosure_audit._protect_main)
# ---------------------------------------------------------------------------------------------------------------

ZERO_STEPS = (("in the study population", 20, 300, None, None), ("at least one day at risk", 17, 300, 3, 0),
              ("matched on propensity score", 17, 120, 0, 180))


def zero_attrition() -> pd.DataFrame:
    return pd.DataFrame([{"study_id": "s", "analysis_id": "ps_matched_cox", "exposure": "statins",
                          "step_order": order, "step": step, "reason": None, "persons_exposed": exposed,
                          "persons_unexposed": unexposed, "excluded_exposed": excluded_exposed,
                          "excluded_unexposed": excluded_unexposed}
                         for order, (step, exposed, unexposed, excluded_exposed, excluded_unexposed)
                         in enumerate(ZERO_STEPS, start=1)])


def test_a_main_row_is_withheld_whole_when_a_printed_zero_is_all_that_is_left_to_hide():
    """20 exposed persons (the cohort arm, printed by the cohort stage: fixed), 3 without a day at risk, the 17 left
    all matched. The greedy choice hides the 3 and, as complements, the 17 at both steps; step 3 prints its exposed
    excluded count, 0. Given a pattern where step 2's row is withheld whole (as this rule withholds a row: its 3 no
    longer printed "<11", its 17 no longer a complement), the sums still bound the 3: 20 - 17, and 17 = step 3's
    hidden count + 0, which its row labels a complement (at least 11), so at most 9. The binding sums hold no
    printed count to hide but the fixed 20 and step 3's 0, and a zero is never a complement: step 3's row is
    withheld whole, its 17 then tells nothing, and the 3 may be anything up to 20."""
    frame = zero_attrition()
    ledger = StudyLedger(frame, None)
    suppression = suppress_study_counts(frame, None, THRESHOLD)
    printed = suppression.attrition.set_index("step_order")
    assert printed.at[2, "suppressed_columns"] == "excluded_exposed"
    assert printed.at[2, "complementary_columns"] == printed.at[3, "complementary_columns"] == "persons_exposed"
    assert printed.at[3, "excluded_exposed"] == 0
    assert _disclosed(ledger.counts(), suppression, ledger, THRESHOLD)[0] == {}  # the "<11" is not pinned
    _withhold_attrition_row(suppression.attrition, 1)  # step 2's row withheld whole
    disclosed, _, _ = _disclosed(ledger.counts(), suppression, ledger, THRESHOLD)
    assert [key[2][-1] for key in disclosed] == ["at least one day at risk"]

    repaired = protect_derivable_counts(suppression, ledger, THRESHOLD)
    assert repaired.withheld_main_rows == 1 and repaired.unprotected == []
    assert _disclosed(ledger.counts(), repaired, ledger, THRESHOLD)[0] == {}
    step3 = repaired.attrition.set_index("step_order").loc[3]
    assert step3[["persons_exposed", "persons_unexposed", "excluded_exposed", "excluded_unexposed"]].isna().all()
    assert step3["suppressed_columns"] is None
    # the check on the tables as written agrees
    con = duckdb.connect()
    write_analysis_attrition(con, "s", repaired.attrition)
    assert audit_published_study(con, "s", THRESHOLD, ledger).passed
