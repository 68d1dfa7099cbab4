"""Small-cell suppression rules on their own: primary, complementary within a sum, across groups, and the
attrition chain."""

from __future__ import annotations

import random

from pipelines.cohorts.suppression import suppress_attrition
from pipelines.disclosure import COMPLEMENTARY, SMALL_CELL, Cell, SumRelation, suppress_cells


def test_primary_suppression_hides_1_to_threshold_minus_1_and_never_zero():
    cells = {name: Cell(value) for name, value in {"zero": 0, "one": 1, "ten": 10, "eleven": 11}.items()}
    suppress_cells(cells, [], threshold=11)
    assert {k: c.suppression for k, c in cells.items()} == {
        "zero": None, "one": SMALL_CELL, "ten": SMALL_CELL, "eleven": None}


def test_complementary_suppression_hides_the_smallest_nonzero_part():
    # n = F + M + U + missing = 100; U = 4 would follow from 100 - 60 - 36 - 0 if only U were hidden.
    cells = {"n": Cell(100), "F": Cell(60), "M": Cell(36), "U": Cell(4), "missing": Cell(0)}
    suppress_cells(cells, [SumRelation("n", ("F", "M", "U", "missing"))], threshold=11)
    assert {k: c.suppression for k, c in cells.items()} == {
        "n": None, "F": None, "M": COMPLEMENTARY, "U": SMALL_CELL, "missing": None}


def test_an_unprinted_small_complement_hides_its_printed_partner():
    # Yes/no variable: only "yes" is printed; "no" = n - yes is 3.
    cells = {"n": Cell(50), "yes": Cell(47), "no": Cell(3, published=False), "missing": Cell(0)}
    suppress_cells(cells, [SumRelation("n", ("yes", "no", "missing"))], threshold=11)
    assert cells["yes"].suppression == COMPLEMENTARY and cells["no"].suppression == SMALL_CELL


def test_an_unprinted_large_complement_needs_nothing():
    cells = {"n": Cell(50), "yes": Cell(20), "no": Cell(30, published=False), "missing": Cell(0)}
    suppress_cells(cells, [SumRelation("n", ("yes", "no", "missing"))], threshold=11)
    assert not any(c.protected for c in cells.values())


def test_suppression_spreads_across_groups_until_no_sum_gives_a_cell_away():
    # overall = exposed + unexposed for the "yes" and "no" cells; each group's n = yes + no.
    values = {("yes", "overall"): 30, ("yes", "exposed"): 5, ("yes", "unexposed"): 25,
              ("no", "overall"): 70, ("no", "exposed"): 20, ("no", "unexposed"): 50,
              ("n", "overall"): 100, ("n", "exposed"): 25, ("n", "unexposed"): 75}
    cells = {k: Cell(v, published=k[0] != "no") for k, v in values.items()}
    relations = [SumRelation(("n", g), (("yes", g), ("no", g))) for g in ("overall", "exposed", "unexposed")]
    relations += [SumRelation((kind, "overall"), ((kind, "exposed"), (kind, "unexposed"))) for kind in ("yes", "no")]
    suppress_cells(cells, relations, threshold=11)
    assert cells[("yes", "exposed")].suppression == SMALL_CELL
    assert cells[("yes", "unexposed")].suppression == COMPLEMENTARY
    assert cells[("yes", "overall")].suppression is None
    assert_no_sum_reveals_a_protected_cell(cells, relations)


def assert_no_sum_reveals_a_protected_cell(cells, relations):
    for relation in relations:
        hidden = [key for key in relation.keys if cells[key].hidden]
        assert not (len(hidden) == 1 and cells[hidden[0]].protected), relation


def test_random_tables_never_leave_a_single_protected_cell_in_a_sum():
    rng = random.Random(3)
    for _ in range(300):
        groups = ("exposed", "unexposed")
        levels = ["a", "b", "c"][: rng.randrange(1, 4)]
        values = {(level, g): rng.choice([0, 1, 3, 8, 12, 40, 200]) for level in levels for g in groups}
        for level in levels:
            values[(level, "overall")] = values[(level, "exposed")] + values[(level, "unexposed")]
        cells = {k: Cell(v, published=k[0] != "c") for k, v in values.items()}
        for g in ("overall", *groups):
            cells[("n", g)] = Cell(sum(values[(level, g)] for level in levels))
        relations = [SumRelation(("n", g), tuple((level, g) for level in levels)) for g in ("overall", *groups)]
        relations += [SumRelation((level, "overall"), ((level, "exposed"), (level, "unexposed")))
                      for level in levels]
        suppress_cells(cells, relations, threshold=11)
        assert_no_sum_reveals_a_protected_cell(cells, relations)
        assert all(c.protected for c in cells.values() if c.published and 1 <= c.value < 11)


# ---------------------------------------------------------------------------------------------------------------
# Attrition chain: N(k-1) = removed(k) + N(k)
# ---------------------------------------------------------------------------------------------------------------

def test_attrition_small_removal_is_joined_with_the_next_step():
    result = suppress_attrition([100, 100, 95, 60, 60], [0, 0, 5, 35, 0], threshold=11)
    assert result.removed == {2: SMALL_CELL, 3: COMPLEMENTARY}
    assert result.after == {2: COMPLEMENTARY}  # 95: persons after step 2 = before step 3
    assert result.before(3) == COMPLEMENTARY and result.before(2) is None


def test_attrition_run_grows_until_its_total_removal_is_not_small():
    # Step 3 removes nobody, so steps 2-3 together still remove only 5: the run takes step 4 as well.
    result = suppress_attrition([100, 100, 95, 95, 60], [0, 0, 5, 0, 35], threshold=11)
    assert result.removed == {2: SMALL_CELL, 3: COMPLEMENTARY, 4: COMPLEMENTARY}
    assert result.after == {2: COMPLEMENTARY, 3: COMPLEMENTARY}


def test_attrition_small_removal_at_the_last_step_joins_the_previous_step():
    result = suppress_attrition([100, 60, 55], [0, 40, 5], threshold=11)
    assert result.removed == {1: COMPLEMENTARY, 2: SMALL_CELL}
    assert result.after == {1: COMPLEMENTARY}
    assert not result.warnings


def test_attrition_small_remaining_population_hides_the_step_that_led_to_it():
    result = suppress_attrition([100, 50, 5, 5], [0, 50, 45, 0], threshold=11)
    assert result.after == {2: SMALL_CELL, 3: SMALL_CELL}
    assert result.removed == {2: COMPLEMENTARY}  # 50 - 45 would give the 5 away


def test_attrition_where_all_steps_remove_a_handful_is_reported():
    result = suppress_attrition([100, 97, 95], [0, 3, 2], threshold=11)
    assert result.removed == {1: SMALL_CELL, 2: SMALL_CELL}
    # The warning is logged and shown in metadata: it names the threshold, never the small total itself.
    assert result.warnings and "remove fewer than 11 persons" in result.warnings[0]
    assert "5" not in result.warnings[0]


def test_attrition_without_small_counts_is_untouched():
    result = suppress_attrition([1000, 900, 800], [0, 100, 100], threshold=11)
    assert result.removed == {} and result.after == {}


def test_estimate_rows_hide_the_complement_and_everything_derived_in_the_whole_group():
    import pandas as pd

    from pipelines.disclosure import suppress_estimates

    def row(exposure, method, n1, n0, a, c, estimate, py1=None):
        return {"study_id": "s", "exposure": exposure, "outcome": "o", "method": method, "estimate": estimate,
                "ci_lower": estimate / 2, "n_exposed": n1, "n_unexposed": n0, "events_exposed": a,
                "events_unexposed": c, "person_years_exposed": py1}

    frame = pd.DataFrame([
        row("small", "crude", 20, 1887, 9, 137, 3.2),
        row("small", "rate unexposed", None, 1887, None, 137, 16.4),  # no small count in this row, same persons
        row("large", "crude", 432, 1472, 33, 105, 1.1, py1=1910.2),
        row("zero", "crude", 40, 1867, 0, 146, 0.0),
    ])
    published = suppress_estimates(frame, 11, ("estimate", "ci_lower", "person_years_exposed")).set_index(
        ["exposure", "method"])
    small = published.loc[("small", "crude")]
    assert small["suppressed_columns"] == "events_exposed"
    assert small["complementary_columns"] == "events_unexposed,estimate,ci_lower"
    assert small["events_exposed"] is None and small["events_unexposed"] is None and small["estimate"] is None
    assert small["n_exposed"] == 20 and small["n_unexposed"] == 1887 and small["suppressed"]
    # rate x person-years of the unexposed gives 137, and 146 - 137 the hidden 9: hidden too.
    rate = published.loc[("small", "rate unexposed")]
    assert rate["suppressed_columns"] is None and rate["complementary_columns"] == "events_unexposed,estimate,ci_lower"
    assert rate["suppressed"]
    # Other exposures keep everything; zero is not a small cell.
    for exposure in ("large", "zero"):
        untouched = published.loc[(exposure, "crude")]
        assert not untouched["suppressed"] and untouched["estimate"] is not None
    assert published.loc[("large", "crude")]["person_years_exposed"] == 1910.2
    assert published.loc[("zero", "crude")]["events_exposed"] == 0
