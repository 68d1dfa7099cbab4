"""The interval audit of a suppression pattern (pipelines/statistics/disclosure_audit.py): hand-made ledgers where
the greedy complements leave a small count recomputable through a chain of sums, and a generated study's published
tables audited against its whole ledger as the blocking statistics check does."""

from __future__ import annotations

import math
import shutil

import duckdb
import pytest

from pipelines.disclosure import COMPLEMENTARY, SMALL_CELL, Cell, SumRelation, suppress_cells
from pipelines.statistics.analysis_attrition import suppress_study_counts_sparing_main
from pipelines.statistics.checks import NO_DERIVABLE_COUNT, STUDY_CHECKS, run_checks
from pipelines.statistics.disclosure_audit import (
    _planned_printing,
    _unknown_cells,
    audit_cells,
    audit_published_study,
    disclosing_sums,
    protect_derivable_counts,
)

THRESHOLD = 11


# ---------------------------------------------------------------------------------------------------------------
# Hand-made ledgers
# ---------------------------------------------------------------------------------------------------------------

def triangle() -> tuple[dict[str, Cell], list[SumRelation]]:
    """Three printed totals over three cells, each sum with two of them: s + x = 23, x + y = 50, s + y = 33."""
    cells = {"s": Cell(3), "x": Cell(20), "y": Cell(30), "T1": Cell(23), "T2": Cell(50), "T3": Cell(33)}
    return cells, [SumRelation("T1", ("s", "x")), SumRelation("T2", ("x", "y")), SumRelation("T3", ("s", "y"))]


def test_a_greedy_pattern_that_leaves_a_small_count_recomputable_through_a_chain_of_sums_is_flagged():
    cells, relations = triangle()
    assert suppress_cells(cells, relations, THRESHOLD) == []
    # Greedy, sum by sum: s hides x (T1), x hides y (T2); T3 then has two unknown cells, so it stops there...
    assert {key: cell.suppression for key, cell in cells.items()} == {
        "s": SMALL_CELL, "x": COMPLEMENTARY, "y": COMPLEMENTARY, "T1": None, "T2": None, "T3": None}
    audit = audit_cells(cells, relations, THRESHOLD)
    # ...but the three sums together give s = (23 - 50 + 33) / 2 = 3, and x and y with it.
    assert {i.key: (i.lower, i.upper) for i in audit.intervals} == {"s": (3, 3), "x": (20, 20), "y": (30, 30)}
    assert [i.key for i in audit.disclosed] == ["s"] and audit.failures() == ["s: recomputable exactly"]
    assert audit.summary() == {"hidden cells audited": 3, "small hidden cells": 1, "small cells disclosed": 1,
                               "exactly recomputable hidden cells": 3, "contradictions": 0}
    assert disclosing_sums(cells, relations, THRESHOLD, {"s", "x", "y"}) == {"s": relations}


def test_a_pattern_that_breaks_the_chain_passes():
    cells, relations = triangle()
    audit = audit_cells(cells, relations, THRESHOLD, hidden={"s", "x", "y", "T2"})
    # s + x = 23 and s + y = 33 with x, y >= 0: s is anything from 0 to 23
    assert {i.key: (i.lower, i.upper) for i in audit.intervals} == {
        "s": (0, 23), "x": (0, 23), "y": (10, 33), "T2": (10, 56)}
    assert audit.passed and audit.disclosed == []
    assert disclosing_sums(cells, relations, THRESHOLD, {"s", "x", "y", "T2"}) == {}


def chain() -> tuple[dict[str, Cell], list[SumRelation]]:
    """The outcome count O (22) hidden, as the ledger often hides it: O = a + b (a = 2 events of a rare exposure,
    b = 20 printed), O = c + d (d = 9 printed), c = e + f (e = 12 printed, f = 1 never printed) and
    m = c + k (m = 16 printed, k = 3 never printed)."""
    cells = {"O": Cell(22), "a": Cell(2), "b": Cell(20), "c": Cell(13), "d": Cell(9), "e": Cell(12),
             "f": Cell(1, published=False), "m": Cell(16), "k": Cell(3, published=False)}
    relations = [SumRelation("O", ("a", "b")), SumRelation("O", ("c", "d")), SumRelation("c", ("e", "f")),
                 SumRelation("m", ("c", "k"))]
    return cells, relations


def test_an_upper_bound_below_the_threshold_through_a_chain_is_flagged_and_one_more_complement_protects_it():
    cells, relations = chain()
    # c is 12 to 16, so O is 21 to 25 and a is 1 to 5: not recomputable, but fewer than 11 whatever is hidden
    hidden = {"O", "a", "c", "f", "k"}
    audit = audit_cells(cells, relations, THRESHOLD, hidden=hidden)
    intervals = {i.key: (i.lower, i.upper) for i in audit.intervals}
    assert intervals == {"O": (21, 25), "a": (1, 5), "c": (12, 16), "f": (0, 4), "k": (0, 4)}
    # a is printed "<11": its label says as much as 1 to 5, so only the unlabelled differences f and k are disclosed
    assert sorted(i.key for i in audit.disclosed) == ["f", "k"]
    assert "f: bounded below the threshold" in audit.failures()
    binding = disclosing_sums(cells, relations, THRESHOLD, hidden)
    assert set(binding) == {"f", "k"} and SumRelation("m", ("c", "k")) in binding["k"]
    # Hiding m (printed, in the sums that bind all three) leaves O, and with it a, f and k, unbounded above
    protected = audit_cells(cells, relations, THRESHOLD, hidden=hidden | {"m"})
    assert {i.key: (i.lower, i.upper) for i in protected.intervals}["a"] == (1, math.inf)
    assert protected.passed
    # Hiding b instead protects neither f nor k
    assert sorted(i.key for i in audit_cells(cells, relations, THRESHOLD, hidden=hidden | {"b"}).disclosed) == [
        "f", "k"]
    # Printed "<11" and pinned to one value: disclosed (with d printed as 20, c = O - 20 ... a = O - b): hiding only a
    exact = audit_cells(cells, relations, THRESHOLD, hidden={"a"})
    assert [(i.key, i.lower, i.upper) for i in exact.intervals] == [("a", 2, 2)] and not exact.passed


def test_printed_values_that_break_a_sum_are_a_contradiction():
    cells, relations = triangle()
    cells["T3"] = Cell(80)  # s + y = 80 with s + x = 23 and x + y = 50 gives x = -3.5: no solution
    audit = audit_cells(cells, relations, THRESHOLD, hidden={"s", "x", "y"})
    assert not audit.passed and audit.contradictions
    cells, relations = triangle()
    audit = audit_cells(cells, relations, THRESHOLD, hidden=set())  # everything printed, T3 = s + y holds
    assert audit.passed
    cells["T3"] = Cell(80)
    assert audit_cells(cells, relations, THRESHOLD, hidden=set()).contradictions == [
        "published counts break the sum T3 = s + y"]


# ---------------------------------------------------------------------------------------------------------------
# A generated study, published as the statistics asset publishes it
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published_studies(published_every_study):
    """Every study of a generated extract (300 patients, seed 1) published as the statistics asset publishes it
    (the session's shared build)."""
    return published_every_study(300, 1)


def test_every_generated_study_passes_the_audit(published_studies):
    database, studies, analyses = published_studies
    with duckdb.connect(str(database), read_only=True) as con:
        for study in studies.values():
            audit = audit_published_study(con, study.id, study.threshold, analyses[study.id].disclosure_ledger)
            assert audit.passed, (study.id, audit.failures()[:10])
            assert audit.summary()["hidden cells audited"] > 0


def test_the_check_fails_without_a_ledger_and_on_a_tampered_count(published_studies, tmp_path):
    database, studies, analyses = published_studies
    copy = tmp_path / "tampered.duckdb"
    shutil.copy(database, copy)
    ledger = analyses["leg_cramps"].disclosure_ledger
    with duckdb.connect(str(copy)) as con:
        verdicts = {v.name: v for v in run_checks(con, "leg_cramps", 11, STUDY_CHECKS, ledger=ledger)}
        assert verdicts[NO_DERIVABLE_COUNT].passed
        assert verdicts[NO_DERIVABLE_COUNT].metadata["small cells disclosed"] == 0
        assert verdicts[NO_DERIVABLE_COUNT].metadata["hidden cells audited"] > 0
        assert not run_checks(con, "leg_cramps", 11, (NO_DERIVABLE_COUNT,))[0].passed
        con.execute("UPDATE results.analysis_attrition SET persons_exposed = persons_exposed + 1 "
                    "WHERE study_id = 'leg_cramps' AND persons_exposed IS NOT NULL")
        tampered = run_checks(con, "leg_cramps", 11, (NO_DERIVABLE_COUNT,), ledger=ledger)[0]
    assert not tampered.passed and "differs from the count the ledger holds" in tampered.failures[0]


def test_the_greedy_choice_alone_discloses_on_this_extract_and_the_added_complements_repair_it(published_studies):
    """leg_cramps at 300 patients: the ledger hides the outcome count, but the exposures' printed events pin it
    within a few persons, and with it every rare exposure's hidden events (found by the audit, not by the greedy
    choice). protect_derivable_counts hides a few more cells; the fast verdict agrees with the full intervals."""
    _, studies, analyses = published_studies
    study, ledger = studies["leg_cramps"], analyses["leg_cramps"].disclosure_ledger
    greedy = suppress_study_counts_sparing_main(ledger.attrition, ledger.results, study.threshold, ledger.nested,
                                                ledger.outcome_count, ledger.controls, ledger.varied_exposures,
                                                ledger.hidden_arms)
    counts = ledger.counts()
    known, _ = _planned_printing(counts, greedy, ledger, study.threshold)
    hidden = _unknown_cells(counts, known, study.threshold)
    audit = audit_cells(counts.ledger.cells, counts.ledger.relations, study.threshold, hidden=hidden)
    assert audit.disclosed
    assert set(disclosing_sums(counts.ledger.cells, counts.ledger.relations, study.threshold, hidden)) == {
        interval.key for interval in audit.disclosed}
    lost = greedy.numbers_lost
    repaired = protect_derivable_counts(greedy, ledger, study.threshold)
    known, _ = _planned_printing(counts, repaired, ledger, study.threshold)
    assert audit_cells(counts.ledger.cells, counts.ledger.relations, study.threshold,
                       hidden=_unknown_cells(counts, known, study.threshold)).passed
    assert lost < repaired.numbers_lost
