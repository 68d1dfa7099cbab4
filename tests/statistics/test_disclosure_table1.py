"""Table 1 as a reader attacks it with its labels (pipelines/cohorts/table1.py protect_table1; docs/disclosure.md,
"Table 1"). The footnote says what a label means: "<11" a count of 1 to 10, "hidden†" a count that is not small
(at least 11), except in a group whose n is hidden or for a variable withheld whole in a group (every count of it
hidden†, beside the group's printed n), where a hidden† count may be anything. A reader who knows that solves the
sums of the printed cells (per group, n = levels + missing + the unprinted counts; per cell, overall = the two
groups) as linear programmes: a small count printed "<11" must not be pinned to one value, and a small count that
is printed nowhere (or printed hidden† in a variable withheld whole) must not be bounded below 11.

The attacker here is written apart from the code it checks (scipy's linprog over the printed rows of
results.table1, tests/support/disclosure_attacks.py's equations); the true counts come from the aggregates."""

from __future__ import annotations

import math
import random

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

import pipelines.cohorts.table1 as table1
from pipelines.cohorts.table1 import build_table1
from pipelines.statistics.analysis_attrition import suppress_study_counts, write_analysis_attrition
from pipelines.statistics.disclosure_audit import (
    StudyLedger,
    audit_published_study,
    protect_derivable_counts,
    table1_cells_of,
)
from tests.cohorts.test_table1_disclosure_attack import aggregates as random_aggregates
from tests.support.disclosure_attacks import _table1_system, equation_system
from tests.support.hand_cohort import make_study

THRESHOLD = 11
GROUPS = ("exposed", "unexposed")


def aggregates(sizes: dict[str, int], binary: dict[str, dict[str, int]] | None = None,
               sex: dict[str, dict[str, int]] | None = None, ages: dict[str, list[float | None]] | None = None
               ) -> list[dict]:
    """Table 1 aggregates (sql/cohorts/table1_aggregates.sql's rows) of the groups in `sizes` ("overall" alone, or
    the two groups, the overall column added as their sum): yes/no variables' persons with it, sex's persons per
    level, and each person's age (None: missing)."""
    groups = [group for group in sizes if group != "overall"] or ["overall"]
    rows = []

    def add(variable, kind, order, level, statistic, counts, **values):
        counts = dict(counts)
        if groups != ["overall"]:
            counts["overall"] = sum(counts[group] for group in groups)
        for group, count in counts.items():
            rows.append(dict(dict(variable=variable, variable_type=kind, variable_order=order, level=level,
                                  group_name=group, statistic=statistic, count=count, denominator=total[group],
                                  mean=None, sd=None, median=None, q1=None, q3=None), **values.get(group, {})))

    total = dict(sizes)
    if groups != ["overall"]:
        total["overall"] = sum(sizes[group] for group in groups)
    add("n", "count", 0, None, "n", {group: sizes[group] for group in groups})
    ages = ages or {group: [60.0] * sizes[group] for group in groups}
    everyone = {**ages, "overall": [age for group in groups for age in ages[group]]}
    known = {group: np.array([age for age in everyone[group] if age is not None]) for group in everyone}
    summaries = {group: dict(mean=float(values.mean()), sd=float(values.std(ddof=1)), median=float(np.median(values)),
                             q1=float(np.quantile(values, 0.25)), q3=float(np.quantile(values, 0.75)))
                 for group, values in known.items()}
    add("age_at_index", "continuous", 1, None, "mean_sd", {g: len(known[g]) for g in groups},
        **{g: {k: s[k] for k in ("mean", "sd")} for g, s in summaries.items()})
    add("age_at_index", "continuous", 1, None, "median_iqr", {g: len(known[g]) for g in groups},
        **{g: {k: s[k] for k in ("median", "q1", "q3")} for g, s in summaries.items()})
    add("age_at_index", "continuous", 1, None, "missing", {g: sizes[g] - len(known[g]) for g in groups})
    for level, counts in (sex or {"F": {group: sizes[group] for group in groups}}).items():
        add("sex", "categorical", 2, level, "n_pct", counts)
    add("sex", "categorical", 2, None, "missing", dict.fromkeys(groups, 0))
    for order, (variable, counts) in enumerate((binary or {}).items(), start=3):
        add(variable, "binary", order, "true", "n_pct", counts)
        add(variable, "binary", order, None, "missing", dict.fromkeys(groups, 0))
    return rows


def published(rows: list[dict], split: bool = True, exposures: tuple[str, ...] = ()) -> duckdb.DuckDBPyConnection:
    """results.table1 as the cohort stage writes it, in an in-memory database."""
    study = make_study(small_cell_threshold=THRESHOLD, exposures=["peripheral_arterial_disease", *exposures],
                       table1_by="peripheral_arterial_disease" if split else None)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA results")
    frame = pd.DataFrame([row.as_record() for row in build_table1(study, rows, THRESHOLD)])
    con.execute("CREATE TABLE results.table1 AS SELECT * FROM frame")
    return con


def true_counts(rows: list[dict]) -> dict[tuple, int]:
    """Every count of _table1_system's keys, from the aggregates (the unprinted ones included)."""
    counts: dict[tuple, int] = {}
    for row in rows:
        group, statistic = row["group_name"], row["statistic"]
        if statistic == "n":
            counts[("n", group)] = row["count"]
        elif statistic in ("n_pct", "missing"):
            counts[(statistic, row["variable"], row["level"], group)] = row["count"]
        elif statistic == "mean_sd":
            counts[("with a value", row["variable"], None, group)] = row["count"]
    for row in rows:
        if row["variable_type"] == "binary" and row["statistic"] == "n_pct":
            missing = counts[("missing", row["variable"], None, row["group_name"])]
            counts[("false", row["variable"], None, row["group_name"])] = row["denominator"] - missing - row["count"]
    return counts


def reader_bounds(con: duckdb.DuckDBPyConnection, unknown: list[tuple]) -> dict[tuple, tuple[float, float]]:
    """What the labels tell a reader of each unknown count, as the footnote states them."""
    table = con.execute('SELECT variable, level, "group", statistic, count, suppression FROM results.table1 '
                        "WHERE statistic IN ('n', 'n_pct', 'missing')").df()
    label = {(("n", row.group) if row.statistic == "n" else (row.statistic, row.variable, row.level, row.group)):
             row.suppression for row in table.itertuples()}
    column_hidden = {key[1] for key, suppression in label.items() if key[0] == "n" and suppression is not None}
    withheld = {(variable, group) for (variable, group), rows in table[table.statistic != "n"].groupby(
        ["variable", "group"]) if rows["suppression"].eq("complementary").all()}
    bounds = {}
    for key in unknown:
        suppression = label.get(key)
        if suppression == "small_cell":
            bounds[key] = (1.0, THRESHOLD - 1.0)
        elif suppression == "complementary" and key[-1] not in column_hidden \
                and (key[1], key[-1]) not in withheld:
            bounds[key] = (float(THRESHOLD), math.inf)
        else:  # printed nowhere, or hidden† where the footnote says it may be anything
            bounds[key] = (0.0, math.inf)
    return bounds


def disclosed_by_a_reader(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> list[str]:
    """Every small count the reader pins (printed "<11") or bounds below the threshold (any other hidden count)."""
    equations, unknown, _ = _table1_system(con, "test_study")
    unknown = list(dict.fromkeys(unknown))
    truth = true_counts(rows)
    matrix, right, position = equation_system(equations, unknown)
    bounds = reader_bounds(con, unknown)
    found = []
    for key in unknown:
        if not 1 <= truth[key] < THRESHOLD:
            continue
        ends = []
        for sign in (1.0, -1.0):
            objective = np.zeros(len(unknown))
            objective[position[key]] = sign
            solved = linprog(objective, A_eq=matrix, b_eq=right, bounds=[bounds[k] for k in unknown],
                             method="highs")
            assert solved.status in (0, 3), f"the reader's system is infeasible: {solved.message}"
            ends.append(sign * solved.fun if solved.status == 0 else sign * math.inf)
        lowest, highest = ends
        pinned = math.floor(highest + 1e-6) <= math.ceil(lowest - 1e-6)
        if pinned if bounds[key] == (1.0, THRESHOLD - 1.0) else highest < THRESHOLD - 1e-6:
            found.append(f"{key} = {truth[key]} in [{lowest:g}, {highest:g}]")
    return found


def test_a_small_level_beside_one_complement_is_not_pinned_by_its_label():
    """12 persons, 1 woman and 11 men: the 1 is printed "<11" and the 11 hidden† to protect it; hidden† says "at
    least 11", so the printed 12 leaves the woman exactly 1. Sex is withheld whole instead."""
    rows = aggregates({"overall": 12}, sex={"F": {"overall": 1}, "M": {"overall": 11}})
    con = published(rows, split=False)
    assert disclosed_by_a_reader(con, rows) == []
    printed = dict(con.execute("SELECT coalesce(level, 'missing'), value FROM results.table1 "
                               "WHERE variable = 'sex'").fetchall())
    assert printed == {"F": "suppressed", "M": "suppressed", "missing": "suppressed"}
    assert con.execute("SELECT value FROM results.table1 WHERE variable = 'n'").fetchone()[0] == "12"


def test_the_persons_without_a_condition_are_not_bounded_by_its_complements_label():
    """A group of 20 of whom 16 have osteoarthritis: the 4 without it (never printed) are protected by hiding the
    16, but hidden† says at least 11, so they are at most 20 - 11 = 9. The variable is withheld whole in that group
    (its missing 0 hidden too): then the 16 may be anything from 0 to 20."""
    rows = aggregates({"exposed": 30, "unexposed": 20},
                      binary={"osteoarthritis": {"exposed": 0, "unexposed": 16},
                              "diabetes_mellitus": {"exposed": 14, "unexposed": 15}})
    con = published(rows)
    assert disclosed_by_a_reader(con, rows) == []
    shown = dict(con.execute("""SELECT variable || ' ' || statistic || ' ' || "group", value FROM results.table1
                                WHERE variable IN ('osteoarthritis', 'diabetes_mellitus')""").fetchall())
    assert shown["osteoarthritis missing unexposed"] == "suppressed"
    assert shown["osteoarthritis n_pct unexposed"] == "suppressed"
    assert shown["osteoarthritis n_pct exposed"] == "0 (0.0%)"
    # diabetes: 5 of 20 unexposed without it, the same pattern
    assert shown["diabetes_mellitus missing unexposed"] == "suppressed"
    # the exposed column withholds nothing: its one hidden count is the greedy choice's complement (29 - 15)
    assert con.execute("""SELECT list(variable || ' ' || statistic) FROM results.table1
                          WHERE "group" = 'exposed' AND suppressed""").fetchone()[0] == ["diabetes_mellitus n_pct"]


def test_the_reader_finds_these_counts_when_table1_is_not_repaired(monkeypatch):
    """The attack itself: with the greedy choice alone (the repair switched off) it pins or bounds them."""
    monkeypatch.setattr(table1, "protect_table1", lambda *arguments: [])
    level = aggregates({"overall": 12}, sex={"F": {"overall": 1}, "M": {"overall": 11}})
    assert disclosed_by_a_reader(published(level, split=False), level) == [
        "('n_pct', 'sex', 'F', 'overall') = 1 in [1, 1]"]
    unprinted = aggregates({"exposed": 30, "unexposed": 20}, binary={"osteoarthritis": {"exposed": 0, "unexposed": 16}})
    assert disclosed_by_a_reader(published(unprinted), unprinted) == [
        "('false', 'osteoarthritis', None, 'unexposed') = 4 in [0, 9]"]


@pytest.mark.parametrize("seed", range(40))
def test_no_small_count_of_a_random_table1_is_pinned_or_bounded_by_a_reader(seed):
    rows = random_aggregates(random.Random(seed))
    assert disclosed_by_a_reader(published(rows), rows) == []


def test_the_random_tables_give_counts_away_without_the_repair(monkeypatch):
    monkeypatch.setattr(table1, "protect_table1", lambda *arguments: [])
    leaks = [seed for seed in range(40) if disclosed_by_a_reader(published(random_aggregates(random.Random(seed))),
                                                                   random_aggregates(random.Random(seed)))]
    assert len(leaks) >= 5


def test_a_hidden_missing_count_hides_the_means_that_would_recompute_it():
    """3 of 20 exposed have no recorded age: the "<11" missing hides the exposed mean, SD and quantiles too (and the
    overall's, whose missing count is the same 3). Printed, the overall mean is the groups' means weighted by the
    persons with an age: M (17 + 30) = m1 x + m0 30 gives x = 17 back."""
    ages = {"exposed": [50.0 + i for i in range(17)] + [None] * 3, "unexposed": [70.0 + i for i in range(30)]}
    rows = aggregates({"exposed": 20, "unexposed": 30}, ages=ages)
    means = {row["group_name"]: row["mean"] for row in rows if row["statistic"] == "mean_sd"}
    recovered = 30 * (means["unexposed"] - means["overall"]) / (means["overall"] - means["exposed"])
    assert round(recovered, 6) == 17  # what the printed means would give away
    con = published(rows)
    printed = dict(con.execute("""SELECT statistic || ' ' || "group", value FROM results.table1
                                  WHERE variable = 'age_at_index'""").fetchall())
    assert printed["missing exposed"] == "<11"
    for statistic in ("mean_sd", "median_iqr"):
        assert printed[f"{statistic} exposed"] == printed[f"{statistic} overall"] == "suppressed"
        assert printed[f"{statistic} unexposed"] != "suppressed"
    assert con.execute("SELECT count(mean) FROM results.table1 WHERE variable = 'age_at_index' "
                       "AND \"group\" <> 'unexposed'").fetchone()[0] == 0


# ---------------------------------------------------------------------------------------------------------------
# Table 1 in the statistics stage's ledger: the blocking check audits it with the tables it is tied to
# ---------------------------------------------------------------------------------------------------------------

def cohort_attrition(exposed: int, unexposed: int, exposure: str = "peripheral_arterial_disease") -> pd.DataFrame:
    """An exposure's analysis (by default the split variable's): its cohort per arm and one more step."""
    return pd.DataFrame([{"study_id": "test_study", "analysis_id": "crude_irr",
                          "exposure": exposure, "step_order": order, "step": step,
                          "reason": None, "persons_exposed": exposed - drop, "persons_unexposed": unexposed - drop,
                          "excluded_exposed": None if order == 1 else drop,
                          "excluded_unexposed": None if order == 1 else drop}
                         for order, (step, drop) in enumerate((("in the study population", 0),
                                                                ("at least one day at risk", 0)), start=1)])


def audited(rows: list[dict], exposures: tuple[str, ...] = (), attrition: pd.DataFrame | None = None):
    con = published(rows, exposures=exposures)
    study = make_study(small_cell_threshold=THRESHOLD, exposures=["peripheral_arterial_disease", *exposures],
                       table1_by="peripheral_arterial_disease")
    attrition = cohort_attrition(30, 20) if attrition is None else attrition
    ledger = StudyLedger(attrition, None, table1=table1_cells_of(con, study, rows))
    suppression = protect_derivable_counts(suppress_study_counts(attrition, None, THRESHOLD), ledger, THRESHOLD)
    write_analysis_attrition(con, "test_study", suppression.attrition)
    return audit_published_study(con, "test_study", THRESHOLD, ledger), suppression


def test_the_blocking_check_audits_table1_beside_the_attrition(monkeypatch):
    """The 4 unexposed without osteoarthritis, bounded by the greedy Table 1's labels, are found by the check (and
    the statistics stage's repair reports the sum it cannot break: Table 1's cells are printed by an earlier
    stage); the repaired Table 1 passes."""
    rows = aggregates({"exposed": 30, "unexposed": 20}, binary={"osteoarthritis": {"exposed": 0, "unexposed": 16}})
    audit, suppression = audited(rows)
    assert audit.passed, audit.failures()
    monkeypatch.setattr(table1, "protect_table1", lambda *arguments: [])
    audit, suppression = audited(rows)
    assert audit.failures() == ["table 1 / not / osteoarthritis / unexposed: bounded below the threshold"]
    assert suppression.unprotected


def test_a_cohort_arm_table1_withholds_is_still_a_complement_in_the_attrition():
    """Statins are held by 12 of the 15 exposed to PAD and by none of the 35 others. Table 1 protects the 3 exposed
    without statins by withholding statins among the exposed and overall, but the statins' analyses print their
    cohort arm (12, hidden with Table 1) beside a printed 0 excluded: a complement, at least 11, so 15 - 12 is at
    most 4 again. Table 1 counts an exposure's holders overall as labelled wherever it hides them
    (cohort_arm_cells): it withholds statins among the unexposed too (its 0 then bounds nothing)."""
    rows = aggregates({"exposed": 15, "unexposed": 35}, binary={"statins": {"exposed": 12, "unexposed": 0}})
    attrition = pd.concat([cohort_attrition(15, 35), cohort_attrition(12, 38, "statins")], ignore_index=True)
    audit, _ = audited(rows, exposures=("statins",), attrition=attrition)
    assert audit.passed, audit.failures()
    shown = dict(published(rows, exposures=("statins",)).execute(
        """SELECT statistic || ' ' || "group", value FROM results.table1 WHERE variable = 'statins'""").fetchall())
    assert shown["n_pct unexposed"] == shown["missing unexposed"] == "suppressed"
