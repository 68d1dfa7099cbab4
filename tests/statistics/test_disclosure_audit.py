"""The interval audit of a suppression pattern (pipelines/statistics/disclosure_audit.py): hand-made ledgers where
the greedy complements leave a small count recomputable through a chain of sums, and a generated study's published
tables audited against its whole ledger as the blocking statistics check does."""

from __future__ import annotations

import math
import shutil

import duckdb
import pytest

from pipelines.disclosure import COMPLEMENTARY, SMALL_CELL, Cell, SumRelation, suppress_cells
from pipelines.statistics.analysis_attrition import ESTIMATE_COUNT_COLUMNS, suppress_study_counts_sparing_main
from pipelines.statistics.checks import NO_DERIVABLE_COUNT, STUDY_CHECKS, run_checks
from pipelines.statistics.disclosure_audit import (
    _planned_printing,
    _unknown_cells,
    audit_cells,
    audit_published_study,
    disclosing_sums,
    protect_derivable_counts,
)
from pipelines.statistics.results import COHORT_STEP, DERIVED_COLUMNS

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
    # s + x = 23 and s + y = 33, x and y printed "suppressed" (11 and more), s printed "<11" (1 and more): s is
    # anything from 1 to 12, so x is 11 to 22 and y 21 to 32
    assert {i.key: (i.lower, i.upper) for i in audit.intervals} == {
        "s": (1, 12), "x": (11, 22), "y": (21, 32), "T2": (32, 54)}
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


def test_a_suppressed_label_tells_a_reader_the_complement_is_at_least_the_threshold():
    """O = a + c with O printed 12, a = 1 printed "<11" and c = 11 hidden as its complement, printed "suppressed":
    a complement is never small and never zero (suppress_cells), so c >= 11 and a = 12 - c <= 1; with a's own
    label (at least 1) exactly 1. Sums alone (c >= 0) leave a anything from 0 to 12."""
    cells = {"O": Cell(12), "a": Cell(1), "c": Cell(11)}
    relations = [SumRelation("O", ("a", "c"))]
    audit = audit_cells(cells, relations, THRESHOLD, hidden={"a", "c"})
    assert {i.key: (i.lower, i.upper) for i in audit.intervals} == {"a": (1, 1), "c": (11, 11)}
    # a's "<11" label bounds it below by 1 in the LP, and the verdict asks whether the sums pin it (its upper end,
    # 10, is no LP bound: docs/disclosure.md): exactly 1, recomputed (Table 1 printed such a pair for a cohort of
    # 12 with one woman: tests/statistics/test_disclosure_table1.py); an unprinted a (no label) is bounded below
    # the threshold
    assert audit.failures() == ["a: recomputable exactly"]
    cells["a"] = Cell(1, published=False)
    assert [(i.key, i.upper) for i in audit_cells(cells, relations, THRESHOLD, hidden={"a", "c"}).disclosed] == [
        ("a", 1)]
    assert set(disclosing_sums(cells, relations, THRESHOLD, {"a", "c"})) == {"a"}
    # A zero printed "suppressed" is a count of a row withheld whole, not a complement: no bound
    cells = {"O": Cell(12), "a": Cell(12, published=False), "c": Cell(0)}
    assert {i.key: (i.lower, i.upper) for i in audit_cells(cells, relations, THRESHOLD,
                                                            hidden={"a", "c"}).intervals} == {"a": (0, 12),
                                                                                              "c": (0, 12)}


def test_a_small_label_bounds_the_rest_of_its_sum():
    """The attack that uses a "<11" label's lower end: a cohort of 11 printed, the persons an analysis used
    printed "<11" (4) and those it dropped never printed (7). Counts >= 0 alone leave the dropped 0 to 11; a reader
    who knows that "<11" is at least 1 knows they are 1 to 10, a small count given away. The audit takes the
    label's lower end as a bound (disclosure.label_bounds), flags the dropped persons and names the sum to break."""
    cells = {"cohort": Cell(11), "analysed": Cell(4, suppression=SMALL_CELL),
             "dropped": Cell(7, published=False)}
    relations = [SumRelation("cohort", ("analysed", "dropped"))]
    # the attacker, by enumeration: every value of the label, and what the sum leaves for the rest
    rest = {cells["cohort"].value - analysed for analysed in range(1, THRESHOLD)}
    assert max(rest) < THRESHOLD  # every value a reader cannot rule out is a small count
    audit = audit_cells(cells, relations, THRESHOLD)
    assert {i.key: (i.lower, i.upper) for i in audit.intervals} == {"analysed": (1, 11), "dropped": (0, 10)}
    assert audit.failures() == ["dropped: bounded below the threshold"]
    assert disclosing_sums(cells, relations, THRESHOLD, {"analysed", "dropped"}) == {"dropped": relations}
    # a cohort of 12 leaves the dropped 1 to 11: nothing to repair
    cells["cohort"], cells["dropped"] = Cell(12), Cell(8, published=False)
    assert audit_cells(cells, relations, THRESHOLD).passed


def test_the_intervals_are_those_of_one_lp_per_bound_with_fewer_solves():
    """A 6 x 5 table with its margins and grand total, a third of its inner cells and two margins hidden: every
    interval equals scipy's linprog minimum and maximum of that cell (the audit before one HiGHS model per group),
    with fewer LPs than two per hidden cell."""
    import numpy as np
    from scipy.optimize import linprog

    rng = np.random.default_rng(7)
    values = rng.integers(0, 40, size=(6, 5))
    cells = {("c", i, j): Cell(int(values[i, j]), published=bool((i + j) % 4)) for i in range(6) for j in range(5)}
    cells |= {("r", i): Cell(int(values[i].sum())) for i in range(6)}
    cells |= {("k", j): Cell(int(values[:, j].sum())) for j in range(5)}
    cells["T"] = Cell(int(values.sum()))
    relations = ([SumRelation(("r", i), tuple(("c", i, j) for j in range(5))) for i in range(6)]
                 + [SumRelation(("k", j), tuple(("c", i, j) for i in range(6))) for j in range(5)]
                 + [SumRelation("T", tuple(("r", i) for i in range(6)))])
    hidden = {key for key in cells if key[0] == "c" and rng.random() < 0.35} | {("r", 2), ("k", 4)}
    audit = audit_cells(cells, relations, THRESHOLD, hidden=hidden, zeros_known=False)
    order = sorted(hidden, key=repr)
    position = {key: n for n, key in enumerate(order)}
    equations, right = [], []
    for relation in relations:
        row, constant = np.zeros(len(order)), 0.0
        for sign, key in ((1, relation.total), *((-1, part) for part in relation.parts)):
            if key in position:
                row[position[key]] += sign
            else:
                constant -= sign * cells[key].value
        if row.any():
            equations.append(row)
            right.append(constant)
    # what the labels tell: "suppressed" (a complement) 11 and more, "<11" 1 and more, unprinted 0 and more
    lower_bounds = [(THRESHOLD if cells[key].published and cells[key].value >= THRESHOLD
                     else 1 if cells[key].published and cells[key].value > 0 else 0, None)
                    for key in order]
    expected = {}
    for key in order:
        objective = np.zeros(len(order))
        objective[position[key]] = 1
        low = linprog(objective, A_eq=equations, b_eq=right, bounds=lower_bounds, method="highs")
        high = linprog(-objective, A_eq=equations, b_eq=right, bounds=lower_bounds, method="highs")
        expected[key] = (round(low.fun, 6), math.inf if high.status == 3 else round(-high.fun, 6))
    assert {i.key: (round(i.lower, 6), round(i.upper, 6)) for i in audit.intervals} == expected
    assert 0 < audit.solves < 2 * len(hidden)


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


def test_a_cohort_arm_table1_prints_is_known_whatever_the_statistics_tables_hide(published_studies, tmp_path):
    """The exposed arm of an exposure's cohort (its holders at index) is printed by Table 1 as the exposure's `true`
    count: a reader knows it even where results.analysis_attrition prints NULL. Hidden in both, it is unknown."""
    database, studies, analyses = published_studies
    copy = tmp_path / "table1.duckdb"
    shutil.copy(database, copy)
    ledger = analyses["leg_cramps"].disclosure_ledger
    arm = ("main", "ace_inhibitors", (COHORT_STEP,), "persons", "exposed")
    assert arm in ledger.counts().ledger.cells
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE results.analysis_attrition SET persons_exposed = NULL WHERE study_id = 'leg_cramps' "
                    "AND exposure = 'ace_inhibitors' AND step = ?", [COHORT_STEP])
        hidden_in_attrition = audit_published_study(con, "leg_cramps", THRESHOLD, ledger)
        con.execute("UPDATE results.table1 SET count = NULL WHERE study_id = 'leg_cramps' "
                    "AND variable = 'ace_inhibitors' AND statistic = 'n_pct'")
        hidden_in_both = audit_published_study(con, "leg_cramps", THRESHOLD, ledger)
    assert arm not in {interval.key for interval in hidden_in_attrition.intervals}
    assert arm in {interval.key for interval in hidden_in_both.intervals}
    assert hidden_in_attrition.passed


def test_nothing_published_recomputes_a_hidden_count(published_studies):
    """Estimates, intervals, p-values and person-years recompute a count (a crude ratio with the other counts, a
    rate times person-years, an exact interval's bounds): every published estimate row with a hidden count prints
    none of them (suppress_estimates), in results.associations and results.negative_control_estimates."""
    database, studies, _ = published_studies
    with duckdb.connect(str(database), read_only=True) as con:
        for table in ("results.associations", "results.negative_control_estimates"):
            columns = {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}
            derived = [column for column in DERIVED_COLUMNS if column in columns]
            hidden_count = " OR ".join(f"{column} IS NULL" for column in ESTIMATE_COUNT_COLUMNS)
            rows, leaking = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {' OR '.join(f'{c} IS NOT NULL' for c in derived)}) "
                f"FROM {table} WHERE suppressed AND ({hidden_count})").fetchall()[0]
            assert rows > 0 and leaking == 0, table


def test_the_greedy_choice_alone_discloses_on_this_extract_and_the_added_complements_repair_it(published_studies):
    """leg_cramps at 300 patients: the ledger hides the outcome count, but the exposures' printed events pin it
    within a few persons, and with it every rare exposure's hidden events (found by the audit, not by the greedy
    choice). protect_derivable_counts hides a few more cells; the fast verdict agrees with the full intervals."""
    _, studies, analyses = published_studies
    study, ledger = studies["leg_cramps"], analyses["leg_cramps"].disclosure_ledger
    greedy = suppress_study_counts_sparing_main(ledger.attrition, ledger.results, study.threshold, ledger.nested,
                                                ledger.outcome_count, ledger.controls, ledger.varied_exposures,
                                                ledger.hidden_arms, ledger.control_exposures)
    counts = ledger.counts()
    known, _, opaque = _planned_printing(counts, greedy, ledger, study.threshold)
    hidden = _unknown_cells(counts, known, study.threshold)
    audit = audit_cells(counts.ledger.cells, counts.ledger.relations, study.threshold, hidden=hidden, opaque=opaque)
    assert audit.disclosed
    assert set(disclosing_sums(counts.ledger.cells, counts.ledger.relations, study.threshold, hidden,
                               opaque=opaque)) == {interval.key for interval in audit.disclosed}
    lost = greedy.numbers_lost
    repaired = protect_derivable_counts(greedy, ledger, study.threshold)
    known, _, opaque = _planned_printing(counts, repaired, ledger, study.threshold)
    assert audit_cells(counts.ledger.cells, counts.ledger.relations, study.threshold,
                       hidden=_unknown_cells(counts, known, study.threshold), opaque=opaque).passed
    assert lost < repaired.numbers_lost
