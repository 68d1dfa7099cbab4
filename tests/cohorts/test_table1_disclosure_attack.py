"""Table 1 leaks no small count to a reader who solves for it: every printed count, and every count that is never
printed (the persons without a yes/no condition, the persons with a value), tied by the sums a reader can form
(per group, n = levels + missing; per cell, overall = the two groups), is solved exactly where the printed cells
determine it (tests/support/disclosure_attacks.py, table1_small_solutions). Table 1 treats its never-printed
counts as unknown when it chooses complements (suppress_cells without derive_unprinted); this shows that the
printed cells do not determine a small one anyway, on random tables with many small cells."""

from __future__ import annotations

import random

import duckdb
import pandas as pd
import pytest

from pipelines.cohorts.table1 import build_table1
from tests.support.disclosure_attacks import table1_small_solutions
from tests.support.hand_cohort import make_study

THRESHOLD = 11
GROUPS = ("exposed", "unexposed")


def aggregates(rng: random.Random) -> list[dict]:
    """Table 1 aggregates (the shape of sql/cohorts/table1_aggregates.sql) of two groups of 12 to 60 persons: four
    yes/no conditions, sex with three levels, and age with a few missing; counts drawn near 0, near the threshold
    and near the group size, where complements are needed."""
    sizes = {group: rng.randint(12, 60) for group in GROUPS}
    rows = []

    def add(variable, kind, order, level, statistic, counts, **values):
        for group in GROUPS:
            rows.append(dict(variable=variable, variable_type=kind, variable_order=order, level=level,
                             group_name=group, statistic=statistic, count=counts[group],
                             denominator=sizes[group], mean=None, sd=None, median=None, q1=None, q3=None,
                             **values))
        rows.append(dict(rows[-1], group_name="overall", count=sum(counts.values()),
                         denominator=sum(sizes.values())))

    def near_an_edge(size: int) -> int:
        return rng.choice([rng.randint(0, 12), rng.randint(max(size - 12, 0), size), rng.randint(0, size)])

    add("n", "count", 0, None, "n", sizes)
    missing_age = {group: rng.choice([0, 0, rng.randint(1, 5)]) for group in GROUPS}
    add("age_at_index", "continuous", 1, None, "mean_sd", {g: sizes[g] - missing_age[g] for g in GROUPS},
        )
    add("age_at_index", "continuous", 1, None, "missing", missing_age)
    female = {group: near_an_edge(sizes[group]) for group in GROUPS}
    unknown = {group: rng.randint(0, min(3, sizes[group] - female[group])) for group in GROUPS}
    add("sex", "categorical", 2, "F", "n_pct", female)
    add("sex", "categorical", 2, "M", "n_pct", {g: sizes[g] - female[g] - unknown[g] for g in GROUPS})
    add("sex", "categorical", 2, "U", "n_pct", unknown)
    add("sex", "categorical", 2, None, "missing", dict.fromkeys(GROUPS, 0))
    for order, condition in enumerate(("diabetes_mellitus", "hypothyroidism", "statins", "dehydration"), start=3):
        add(condition, "binary", order, "true", "n_pct", {group: near_an_edge(sizes[group]) for group in GROUPS})
        add(condition, "binary", order, None, "missing", dict.fromkeys(GROUPS, 0))
    for row in rows:  # the means are not counts: any value will do
        if row["statistic"] == "mean_sd":
            row.update(mean=60.0, sd=10.0)
    return rows


def published(rows: list[dict]) -> duckdb.DuckDBPyConnection:
    study = make_study(small_cell_threshold=THRESHOLD, exposures=["peripheral_arterial_disease"],
                       table1_by="peripheral_arterial_disease")
    table = build_table1(study, rows, THRESHOLD)
    con = duckdb.connect()
    frame = pd.DataFrame([row.as_record() for row in table])
    con.execute("CREATE SCHEMA results")
    con.execute("CREATE TABLE results.table1 AS SELECT * FROM frame")
    return con


@pytest.mark.parametrize("seed", range(40))
def test_no_small_count_of_table1_can_be_solved_for(seed):
    con = published(aggregates(random.Random(seed)))
    assert table1_small_solutions(con, "test_study", THRESHOLD) == []


def test_the_random_tables_have_small_and_complementary_cells():
    suppressions = [published(aggregates(random.Random(seed))).execute(
        "SELECT count(*) FILTER (suppression = 'small_cell'), count(*) FILTER (suppression = 'complementary') "
        "FROM results.table1").fetchone() for seed in range(40)]
    assert sum(small > 0 and complementary > 0 for small, complementary in suppressions) >= 30


def test_the_attack_solves_for_small_counts_when_only_the_small_cells_are_hidden():
    """The attack itself: the same tables with their complementary cells printed give small counts back: printed
    ones hidden as small, and never-printed ones (persons without a condition, near the group size)."""
    found = []
    for seed in range(40):
        con = published(aggregates(random.Random(seed)))
        # print every complementary cell again: its count is the denominator's share, as the aggregates had it
        rows = aggregates(random.Random(seed))
        counts = {(r["variable"], r["level"], r["group_name"], r["statistic"]): r["count"] for r in rows}
        for (variable, level, group, statistic), count in counts.items():
            con.execute('UPDATE results.table1 SET count = ? WHERE variable = ? AND level IS NOT DISTINCT FROM ? '
                        'AND "group" = ? AND statistic = ? AND suppression = \'complementary\'',
                        [count, variable, level, group, statistic])
        found += table1_small_solutions(con, "test_study", THRESHOLD)
    assert any("'n_pct'" in leak for leak in found) and any("'false'" in leak for leak in found)
