"""Disclosure control: the one small-cell rule of every published count (docs/disclosure.md).

    threshold       studies/_defaults.yaml `small_cell_threshold` (or a study's own); the site floor
                    (LEGCRAMP_SMALL_CELL_FLOOR, default 11) is the lowest threshold any study or run may use
    small cell      a count of 1 .. threshold-1 persons: hidden, printed "<threshold"; zero is shown
    complementary   a cell that would give a hidden one away (by subtraction from a shown total, or by
                    recomputing it from an estimate, interval, rate or person-years) is hidden too
    curves          a Kaplan-Meier curve is drawn only while threshold or more persons are at risk (its drops give
                    the numbers at risk back): km_points_shown
    across tables   counts printed in several tables are one cell, and the sums a reader can form across
                    tables (cohort size = analysed + dropped, crude = matched + unmatched, intention to treat =
                    on treatment + after) are declared by the producer: CountLedger
    audit           a suppression pattern checked as an intruder attacks it: every hidden cell's feasible interval
                    given the printed cells, the sums and the labels (linear programmes, HiGHS): audit_cells,
                    disclosing_sums; used by Table 1 (cohorts.table1), the statistics stage
                    (statistics.disclosure_audit) and the data-quality outputs (quality.published_counts:
                    CountLedger.suppress_unlabelled, complement_until_undisclosed)

This module sits at the bottom of the package: it imports nothing from the domains, and every domain that
publishes a count (cohorts, statistics, quality, network, the command line) calls it. Its work is on aggregates
(a few hundred cells), never on persons.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.sql_quoting import quote_identifier

if TYPE_CHECKING:
    from scipy import sparse

# The site's floor: no study file, defaults file or run configuration may set a lower threshold. A site raises
# (or, for tests of the suppression itself, lowers) it in the environment of its Dagster deployment.
SITE_FLOOR_VARIABLE = "LEGCRAMP_SMALL_CELL_FLOOR"
DEFAULT_SITE_FLOOR = 11

SMALL_CELL = "small_cell"
COMPLEMENTARY = "complementary"
SUPPRESSED_TEXT = "suppressed"


class DisclosureError(ValueError):
    """A setting would publish cells the site's disclosure rule forbids."""


def site_floor() -> int:
    """The lowest small-cell threshold this site allows (LEGCRAMP_SMALL_CELL_FLOOR, default 11)."""
    text = os.environ.get(SITE_FLOOR_VARIABLE, "").strip()
    if not text:
        return DEFAULT_SITE_FLOOR
    if not text.isdigit() or int(text) < 1:
        raise DisclosureError(f"{SITE_FLOOR_VARIABLE}={text!r}: must be a whole number >= 1")
    return int(text)


def threshold_problem(threshold: int, floor: int | None = None) -> str | None:
    """Why `threshold` may not be used at this site, or None when it may."""
    floor = site_floor() if floor is None else floor
    if threshold < floor:
        return (f"small_cell_threshold {threshold} is below this site's floor of {floor} "
                f"({SITE_FLOOR_VARIABLE}); counts of 1 to {floor - 1} persons are never published")
    return None


def checked_threshold(threshold: int) -> int:
    """`threshold`, or DisclosureError when it is below the site floor."""
    problem = threshold_problem(threshold)
    if problem:
        raise DisclosureError(problem)
    return threshold


# ---------------------------------------------------------------------------------------------------------------
# One count
# ---------------------------------------------------------------------------------------------------------------

def is_small(count: int | float | None, threshold: int) -> bool:
    """Between 1 and threshold - 1 persons: must not be published."""
    if count is None or count is pd.NA or (isinstance(count, float) and count != count):
        return False
    return 1 <= count < threshold


def small_cell_text(threshold: int) -> str:
    """How a hidden small count is printed: "<threshold", the threshold actually used."""
    return f"<{threshold}"


def shown_count(count: int, threshold: int) -> int | str:
    """A count as it may be published or logged: "<threshold" for a small cell, else the count itself."""
    return small_cell_text(threshold) if is_small(count, threshold) else count


def count_text(count: int | float | None, threshold: int) -> str:
    """A count as printed text: "1,234", "<11" for a small cell, "-" for none."""
    if count is None or count is pd.NA or (isinstance(count, float) and count != count):
        return "-"
    return small_cell_text(threshold) if is_small(count, threshold) else f"{int(count):,}"


def small_count_sql(column: str, threshold: int) -> str:
    """The small-cell test as a SQL predicate on a count column (for tables suppressed in the database)."""
    return f"({quote_identifier(column)} BETWEEN 1 AND {int(threshold) - 1})"


# ---------------------------------------------------------------------------------------------------------------
# Kaplan-Meier curves
# ---------------------------------------------------------------------------------------------------------------

def km_points_shown(at_risk: Sequence[int], threshold: int) -> list[bool]:
    """Which points of a Kaplan-Meier curve may be drawn, given the persons at risk just before each (in time
    order): every point before the first with fewer than `threshold` persons at risk, none from there on.

    A curve's drop at an event time is S(before) * d / n (the product-limit step), so a reader who measures two
    heights gets n / d back, and with one event that day (the usual case) the persons at risk n; that is, the
    number at risk the table under the axis prints "<threshold" once it is small. So the curve is cut where the
    number at risk falls below the threshold: the small-cell rule of this module (the CMS cell-size policy: no
    count of 1 .. threshold-1 displayed or derived) applied to the curve's denominators, as it is to the printed
    numbers at risk. The points before the cut give back numbers at risk of threshold or more only, and none at a
    later time (the persons censored after the last drawn point are unknown). The events per drawn step (d, most
    often 1) are not counts of persons a table hides: the group's events are printed, or the group has no curve.
    Figures obey this rule (statistics.plots.kaplan_meier_plot); they do not make their own."""
    shown, allowed = [], True
    for count in at_risk:
        allowed = allowed and count >= threshold
        shown.append(allowed)
    return shown


# ---------------------------------------------------------------------------------------------------------------
# Counts tied by sums (Table 1, attrition): primary and complementary suppression
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Cell:
    """A count tied into sums. `published=False` marks a count that is never printed but can be derived (the
    'false' count of a yes/no variable); it still needs protecting when it is small. `cost`: the published numbers
    lost when the cell is hidden as a complement (the cell wherever it is printed, and what is hidden with it);
    `fixed`: printed before the suppression decides (by an earlier stage): a complement only when no other cell
    of the sum is left, never as a sum's total."""

    value: int
    published: bool = True
    suppression: str | None = None  # None, SMALL_CELL or COMPLEMENTARY
    cost: float = 1.0
    fixed: bool = False

    @property
    def hidden(self) -> bool:
        return self.suppression is not None or not self.published

    @property
    def protected(self) -> bool:
        """A cell whose value must stay unknown (not merely unprinted)."""
        return self.suppression is not None


@dataclass(frozen=True)
class SumRelation:
    """total = sum(parts), as a reader could compute it from the printed cells."""

    total: Hashable
    parts: tuple[Hashable, ...]

    @property
    def keys(self) -> tuple[Hashable, ...]:
        return (self.total, *self.parts)


def suppress_cells(cells: dict[Hashable, Cell], relations: Iterable[SumRelation], threshold: int,
                   derive_unprinted: bool = False) -> list[SumRelation]:
    """Primary and complementary suppression, in place; returns the sums that give a protected cell away and
    have no cell left to hide (every other cell fixed or zero: the caller reports them).

    1. Primary: a count of 1 to threshold-1 is hidden (SMALL_CELL). Zero is shown: it is not a small cell, and
       hiding it would make the other hidden cells look larger than they are.
    2. Complementary: whenever a sum has exactly one unknown cell and that cell needs protecting, one more of its
       cells is hidden (COMPLEMENTARY): the cheapest (least `cost`, the published numbers lost), parts before the
       total, then the smallest (the least information lost); never a fixed cell or a zero (a zero protects
       nothing). This is the cost-driven secondary suppression of Cox (1980) and Fischetti & Salazar-Gonzalez
       (2001, tau-ARGUS "minimum information loss"), solved greedily sum by sum. With equal costs (Table 1,
       attrition) it is the smallest non-zero part, else the total. A fixed part is taken only when no other
       cell is left.
       With `derive_unprinted` (the cross-table ledger, whose unprinted cells are differences of printed counts),
       a cell that is merely unprinted (`published=False`) and not protected is known once a sum gives it away
       (exactly one unknown cell in the sum), and then counts as known in every other sum; an unprinted zero is
       known from the start (a reader who guesses that nothing is outside a sum is right, e.g. a time-varying
       analysis whose two arms hold every person with time at risk); and several unknown parts beside a known
       total whose sum is 1 .. threshold-1 give a protected one away too (the sum bounds it below the threshold).
       This repeats until no sum gives a protected cell away: the CMS cell-size suppression rule, no cell of
       1 .. threshold-1 derivable by subtraction from what is published. Table 1 keeps its unprinted 'false' counts unknown (without it, a small level hid the
       group sizes and the cohort's n).
    """
    relations = list(relations)
    for cell in cells.values():
        if is_small(cell.value, threshold):
            cell.suppression = SMALL_CELL
    # unprinted, unprotected cells a sum gives away (or zeros a reader may assume)
    derived: set[Hashable] = ({key for key, cell in cells.items() if not cell.published and cell.value == 0}
                              if derive_unprinted else set())
    unprotected: dict[SumRelation, None] = {}
    changed = True
    while changed:
        changed = False
        for relation in relations:
            unknown = [key for key in relation.keys if cells[key].hidden and key not in derived]
            if len(unknown) != 1 and not (derive_unprinted and _small_sum_of_unknown_parts(
                    cells, relation, unknown, threshold)):
                continue
            if len(unknown) == 1 and not cells[unknown[0]].protected:
                if derive_unprinted:
                    derived.add(unknown[0])
                    changed = True
                continue
            candidates = [key for key in relation.keys
                          if not cells[key].hidden and cells[key].value > 0 and not cells[key].fixed]
            # Nothing else left (a small arm of the cohort beside the cohort size): a fixed part, hidden where this
            # suppression publishes it; the earlier stage protects its own printing (Table 1 hides a small level).
            candidates = candidates or [key for key in relation.parts
                                        if not cells[key].hidden and cells[key].value > 0]
            if candidates:
                cheapest = min(candidates, key=lambda key: (cells[key].cost, key == relation.total,
                                                            cells[key].value))
                cells[cheapest].suppression = COMPLEMENTARY
                changed = True
            else:
                unprotected.setdefault(relation)
    return [relation for relation in unprotected
            if len([key for key in relation.keys if cells[key].hidden and key not in derived]) == 1]


def _small_sum_of_unknown_parts(cells: dict[Hashable, Cell], relation: SumRelation, unknown: list[Hashable],
                                threshold: int) -> bool:
    """Several unknown parts beside a known total add up to a count a reader can form (the total less the known
    parts); when that sum is 1 .. threshold-1 and holds a protected cell, it narrows the cell down to fewer persons
    than the threshold (an upper bound below it), so one more cell of the sum is hidden."""
    return (len(unknown) > 1 and relation.total not in unknown and any(cells[key].protected for key in unknown)
            and is_small(sum(cells[key].value for key in unknown), threshold))


class CountLedger:
    """The counts several published tables print, as one set of cells tied by sums.

    A count printed in two tables (the persons an estimate used, and the last step of that analysis's attrition) is
    one cell under one key, so it is hidden in both or in neither. Producers declare the sums a reader could form
    across tables (total = part + part + ...), including parts that are never printed but are differences of printed
    counts (persons dropped between two analyses, events after the end of treatment): hiding such a part when it is
    small hides enough printed cells that no subtraction gives it back (`suppress_cells`).
    """

    def __init__(self) -> None:
        self.cells: dict[Hashable, Cell] = {}
        self.relations: dict[SumRelation, None] = {}
        # Counts another table hides (SMALL_CELL or COMPLEMENTARY), hidden here whatever this ledger decides.
        self.hidden_elsewhere: dict[Hashable, str] = {}

    def count(self, key: Hashable, value: int, published: bool = True, cost: float = 0.0,
              fixed: bool = False) -> Hashable | None:
        """Register a count under `key` (a count already registered there is the same cell); None when `key` holds
        another value, i.e. the producer's claim that both are one count does not hold for this row. `cost`: the
        published numbers this printing of the count would lose if it were hidden (added up over the places that
        print it); `fixed`: printed by an earlier stage, never hidden as a complement."""
        value = int(value)
        cell = self.cells.get(key)
        if cell is None:
            self.cells[key] = Cell(value, published, cost=cost, fixed=fixed)
            return key
        if cell.value != value:
            return None
        cell.published = cell.published or published
        cell.cost += cost
        cell.fixed = cell.fixed or fixed
        return key

    def hide_as_elsewhere(self, key: Hashable, suppression: str) -> None:
        """A registered count another published table hides (Table 1 hides a cohort arm it also prints): the same
        cell, so it is hidden here too, and protected like this ledger's own hidden cells (what gives it back is
        hidden as well)."""
        self.hidden_elsewhere[key] = suppression

    def add_sum(self, total: Hashable, parts: Sequence[Hashable]) -> None:
        """total = sum(parts), all registered."""
        self.relations.setdefault(SumRelation(total, tuple(parts)))

    def add_difference(self, outer: Hashable, inner: Hashable, key: Hashable) -> None:
        """outer = inner + (outer - inner): the counts of a set and of a subset of it; the difference (never printed)
        is registered under `key`. Nothing is added when the subset claim does not hold (inner > outer)."""
        difference = self.cells[outer].value - self.cells[inner].value
        if difference < 0:
            return
        added = self.count(key, difference, published=False)
        if added is not None:
            self.add_sum(outer, (inner, added))

    def suppress(self, threshold: int) -> list[SumRelation]:
        """The small-cell rule over every cell (suppress_cells with unprinted differences derivable); returns the
        sums left giving a protected cell away (nothing left to hide in them)."""
        for key, cell in self.cells.items():
            cell.suppression = self.hidden_elsewhere.get(key)
        return suppress_cells(self.cells, sorted(self.relations, key=repr), threshold, derive_unprinted=True)

    def suppress_unlabelled(self, threshold: int) -> list[SumRelation]:
        """`suppress`, then audited as a reader of outputs that print a hidden count without saying why attacks it
        (the data-quality outputs: a hidden count is a small one or a complement, never 0, and no label tells
        which): the cheapest printed non-zero cell of each disclosing sum is hidden too, and the audit runs again
        (complement_until_undisclosed). Returns the sums left giving a protected cell away."""
        self.suppress(threshold)

        def disclosed() -> dict[Hashable, list[SumRelation]]:
            hidden = {key for key, cell in self.cells.items() if cell.hidden}
            printed_hidden = self.hidden_printed()
            return disclosing_sums(self.cells, self.relations, threshold, hidden, opaque=printed_hidden,
                                   nonzero=printed_hidden)

        return complement_until_undisclosed(self.cells, disclosed)

    def hidden_printed(self) -> set[Hashable]:
        """After `suppress`: the printed cells the rule hides (small, or complementary)."""
        return {key for key, cell in self.cells.items() if cell.published and cell.protected}

    def suppression(self, key: Hashable | None) -> str | None:
        """SMALL_CELL, COMPLEMENTARY or None for a registered key (None for None)."""
        return None if key is None else self.cells[key].suppression


# ---------------------------------------------------------------------------------------------------------------
# Estimate tables (results.associations, results.pooled_associations)
# ---------------------------------------------------------------------------------------------------------------

# Each pair adds up to a total published elsewhere (the cohort size, the outcome count of the cohort), so the
# partner of a hidden count is its complement.
COUNT_PAIRS = (("n_exposed", "n_unexposed"), ("events_exposed", "events_unexposed"))
ESTIMATE_GROUP_COLUMNS = ("study_id", "exposure", "outcome")
SUPPRESSION_COLUMNS = ("suppressed", "suppressed_columns", "complementary_columns")


def suppress_estimates(frame: pd.DataFrame, threshold: int, derived_columns: Sequence[str],
                       hidden: Mapping[str, pd.Series] | None = None,
                       complementary: Mapping[str, pd.Series] | None = None,
                       group_columns: Sequence[str] = ESTIMATE_GROUP_COLUMNS,
                       count_pairs: Sequence[tuple[str, str]] = COUNT_PAIRS,
                       ledger_rows: pd.Series | None = None) -> pd.DataFrame:
    """A copy of an estimate table with every cell that is, or recomputes, a small count set to NULL.

    Rows of one (study, exposure, outcome) describe the same persons by several methods, so a hidden count hides,
    in every row of that group:
      - its complement (the other count of its pair, since the pair's total is published);
      - every estimate, interval bound, p-value and person-years (`derived_columns`): a crude ratio with the
        shown counts, a rate times person-years, and the ratio of an exact Poisson interval's bounds each
        recompute the count.
    `hidden` marks further count cells to treat as hidden (e.g. pooled sums that contain a site's hidden count).
    `complementary` marks count cells that other published tables tie to a hidden count (a CountLedger's
    COMPLEMENTARY cells): they are hidden as complementary, and hide what recomputes them like a small count.
    A row with every count marked is withheld whole: its small counts are listed as complementary too.
    `ledger_rows` marks the rows whose every count is a CountLedger cell: the ledger has already hidden whatever
    would give their hidden counts away (the same count printed in another row is one cell, and every sum a reader
    can form is declared), so each such row is its own group: its estimates are hidden only when one of its own
    counts is, and the pair rule (which assumes a published total the ledger already accounts for) does not apply.

    Adds `suppressed` (any cell hidden), `suppressed_columns` (the counts hidden as small cells, printed
    "<threshold") and `complementary_columns` (the cells hidden because they would give one away).
    """
    published = frame.copy()
    count_columns = [column for pair in count_pairs for column in pair]
    # A table without some derived column (a pooled table has no propensity diagnostics) has nothing there to hide.
    derived_columns = [column for column in derived_columns if column in published.columns]
    if published.empty:
        for column, empty in zip(SUPPRESSION_COLUMNS, (pd.Series(dtype=bool), None, None)):
            published[column] = empty
        return published
    groups = [published[c].astype("string").fillna("\0") for c in group_columns]
    own_group = pd.Series(False, index=published.index)
    if ledger_rows is not None:
        own_group = pd.Series(pd.Series(ledger_rows).fillna(False).astype(bool).to_numpy(), index=published.index)
        row_marker = pd.Series([f"\1{position}" for position in range(len(published))], index=published.index,
                               dtype="string")
        groups = [group.where(~own_group, row_marker) for group in groups] or [row_marker.where(own_group, "")]
    small = {}
    for column in count_columns:
        values = pd.to_numeric(published[column], errors="coerce")
        small[column] = ((values >= 1) & (values < threshold)).fillna(False).astype(bool)
        if hidden is not None and column in hidden:
            small[column] = small[column] | hidden[column].fillna(False).astype(bool).to_numpy()
    if complementary is not None:
        # A row whose every count the caller marks complementary is withheld whole (the sparing rule, the audit's
        # repair): its small counts print "suppressed" too, so that no label of the row tells one count from
        # another (statistics.disclosure_audit.label_bounds: such a row's labels bound nothing).
        present = {column: published[column].notna() for column in count_columns}
        flagged = {column: (pd.Series(complementary[column], index=published.index).fillna(False).astype(bool)
                            if column in complementary else pd.Series(False, index=published.index))
                   for column in count_columns}
        whole = (pd.concat([flagged[c] | ~present[c] for c in count_columns], axis=1).all(axis=1)
                 & pd.concat(present.values(), axis=1).any(axis=1))
        for column in count_columns:
            small[column] = small[column] & ~whole
    tied = {}
    for column in count_columns:
        tied[column] = pd.Series(False, index=published.index)
        if complementary is not None and column in complementary:
            tied[column] = (pd.Series(complementary[column], index=published.index).fillna(False).astype(bool)
                            & ~small[column] & published[column].notna())
    hidden_in_group = {c: (small[c] | tied[c]).groupby(groups).transform("any").astype(bool) for c in count_columns}
    any_in_group = pd.concat(hidden_in_group.values(), axis=1).any(axis=1)

    complementary = {column: tied[column] for column in count_columns}
    for first, second in count_pairs:
        complementary[second] = complementary[second] | (hidden_in_group[first] & ~small[second] & ~own_group
                                                         & published[second].notna())
        complementary[first] = complementary[first] | (hidden_in_group[second] & ~small[first] & ~own_group
                                                       & published[first].notna())
    for column in derived_columns:
        complementary[column] = any_in_group & published[column].notna()

    def listed(masks: dict[str, pd.Series], columns: Sequence[str]) -> list[str | None]:
        return [",".join(c for c in columns if masks[c].iloc[i]) or None for i in range(len(published))]

    published["suppressed_columns"] = listed(small, count_columns)
    published["complementary_columns"] = listed(complementary, [*count_columns, *derived_columns])
    published["suppressed"] = published["suppressed_columns"].notna() | published["complementary_columns"].notna()
    for column in count_columns:
        published[column] = published[column].astype("object").where(~(small[column] | complementary[column]),
                                                                     None)
    for column in derived_columns:
        published[column] = published[column].astype("object").where(~complementary[column], None)
    return published


# ---------------------------------------------------------------------------------------------------------------
# Auditing a suppression pattern: what the sums still say about each hidden cell (linear programmes)
# ---------------------------------------------------------------------------------------------------------------

# A published value that differs from the ledger's by more than this, or a sum the published values break by more,
# is a contradiction (the LP's tolerance: HiGHS solves in floating point).
TOLERANCE = 1e-6


@dataclass(frozen=True)
class CellInterval:
    """What the published numbers and sums leave possible for one hidden cell: lower .. upper (upper = inf when
    nothing bounds it). `value` is the true count (for the verdict only: never printed)."""

    key: Hashable
    lower: float
    upper: float
    value: int
    threshold: int
    labelled_small: bool = False  # printed "<t": the label itself bounds it by t-1

    @property
    def sensitive(self) -> bool:
        """A count of 1 .. threshold-1 persons: it must not be derivable."""
        return is_small(self.value, self.threshold)

    @property
    def exact(self) -> bool:
        """One whole number only (the LP interval of counts, rounded inwards to whole persons)."""
        return self.upper < math.inf and math.floor(self.upper + TOLERANCE) <= math.ceil(self.lower - TOLERANCE)

    @property
    def disclosed(self) -> bool:
        """A small count the sums pin to one value, or, without a "<t" label, bound below the threshold. A "<t"
        count is pinned when the sums leave it one value of its label's 1 .. t-1: at most 1 is exactly 1."""
        if not self.sensitive:
            return False
        if self.labelled_small:
            return self.upper < math.inf and math.floor(self.upper + TOLERANCE) <= max(math.ceil(self.lower
                                                                                             - TOLERANCE), 1)
        return self.upper < self.threshold - TOLERANCE


@dataclass
class DisclosureAudit:
    """The audit of one suppression pattern: an interval per hidden cell, and the sums whose published values
    contradict each other (an infeasible system: the published tables do not match the ledger)."""

    threshold: int
    intervals: list[CellInterval] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)
    solves: int = 0  # the LPs solved (at most two per hidden cell; fewer when earlier solves decide a bound)

    @property
    def disclosed(self) -> list[CellInterval]:
        return [interval for interval in self.intervals if interval.disclosed]

    @property
    def passed(self) -> bool:
        return not self.disclosed and not self.contradictions

    def summary(self) -> dict[str, int]:
        """Counts of cells, never their values (for the check's metadata and the run log)."""
        return {"hidden cells audited": len(self.intervals),
                "small hidden cells": sum(interval.sensitive for interval in self.intervals),
                "small cells disclosed": len(self.disclosed),
                "exactly recomputable hidden cells": sum(interval.exact for interval in self.intervals),
                "contradictions": len(self.contradictions)}

    def failures(self) -> list[str]:
        """One line per disclosed cell or contradiction, naming the cell, not its value."""
        return ([f"{describe_cell(interval.key)}: "
                 + ("recomputable exactly" if interval.exact or interval.labelled_small  # pinned, with its label
                    else "bounded below the threshold")
                 for interval in self.disclosed] + self.contradictions)


def describe_cell(key: Hashable) -> str:
    if isinstance(key, tuple):
        return " / ".join(describe_cell(part) if isinstance(part, tuple) else str(part) for part in key)
    return str(key)


@dataclass
class _System:
    """The sums as equations over the unknown cells: `equations` @ x = `right`, x >= 0, split into the groups of
    cells the equations tie together (a cell's interval depends on its own group's equations only)."""

    keys: list[Hashable]
    relations: list[SumRelation]
    variables: np.ndarray  # positions in `keys` of the unknown cells, in LP order
    equations: sparse.csr_matrix
    right: np.ndarray
    rows: np.ndarray  # for each equation, its position in `relations`
    groups: list[tuple[np.ndarray, np.ndarray]]  # (members: LP columns, equations: LP rows)
    contradictions: list[str]
    lower: np.ndarray  # per unknown cell (LP order), what its printed label tells (label_bounds)
    upper: np.ndarray
    opaque: set[Hashable]  # the hidden cells whose "suppressed" label tells nothing (label_bounds)


def label_bounds(cell: Cell, threshold: int, opaque: bool = False,
                 small_labels: bool = False, nonzero: bool = False) -> tuple[float, float]:
    """What a hidden cell's printed label tells every reader, as bounds on its value (docs/disclosure.md, "Audit"):
    - printed "suppressed" in a row that prints another of its counts or a "<t" (a complement: never a zero,
      never small, so at least t): t and more;
    - `opaque`: printed "suppressed" only in rows whose every count is "suppressed" (a row withheld whole prints
      its small counts so too, disclosure.suppress_estimates; a reader cannot tell such a row from one of
      complements): 0 and more. A hidden printed zero is a count of a row withheld whole: 0 and more too;
    - printed "<t" (a small count): 1 and more in the statistics stage's ledger. Its label says 1 .. t-1, and
      the verdict accounts for the upper end (a labelled cell is disclosed only when the sums pin it to one
      value); as an LP bound, the labels of two small printed counts would bound every unprinted difference of them
      below t, which the labels already tell. Its lower end is an LP bound: a reader who sees "<11" beside a
      printed 11 and an unprinted rest knows the rest is at most 10. With `small_labels` (Table 1,
      cohorts.table1.protect_table1): 1 .. t-1, what a reader of the label knows (two "<t" levels whose sum is 2
      are both 1; 20, both 10);
    - `nonzero`: a hidden count whose printing tells nothing else, where the outputs hide no zero (the
      data-quality outputs: a small count or a complement, never 0): 1 and more;
    - never printed (a difference of printed counts: no label): 0 and more."""
    lower = 1.0 if nonzero else 0.0
    if cell.published and not opaque and cell.value > 0:
        if not is_small(cell.value, threshold):
            return float(threshold), math.inf
        return (1.0, threshold - 1.0) if small_labels else (1.0, math.inf)
    return lower, math.inf


def _system(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], hidden: set[Hashable],
            zeros_known: bool, threshold: int, opaque: set[Hashable] = frozenset(),
            small_labels: set[Hashable] = frozenset(), nonzero: set[Hashable] = frozenset()) -> _System:
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    keys = list(cells)
    position = {key: i for i, key in enumerate(keys)}
    values = np.array([cells[key].value for key in keys], dtype=float)
    unknown = np.array([key in hidden and not (zeros_known and not cells[key].published and cells[key].value == 0
                                               and not cells[key].protected) for key in keys], dtype=bool)
    relations = list(dict.fromkeys(relations))
    rows, columns, signs = [], [], []
    for row, relation in enumerate(relations):
        for sign, key in ((1.0, relation.total), *((-1.0, part) for part in relation.parts)):
            rows.append(row)
            columns.append(position[key])
            signs.append(sign)
    matrix = sparse.csr_matrix((signs, (rows, columns)), shape=(len(relations), len(keys)))  # duplicates summed
    variables = np.flatnonzero(unknown)
    equations = matrix[:, variables].tocsr()
    right = -(matrix[:, ~unknown] @ values[~unknown])  # the known cells moved to the right-hand side
    has_unknown = np.diff(equations.indptr) > 0
    contradictions = [f"published counts break the sum {describe_cell(relations[row].total)} = "
                      f"{' + '.join(describe_cell(part) for part in relations[row].parts)}"
                      for row in np.flatnonzero(~has_unknown & (np.abs(right) > TOLERANCE))]
    equation_rows = np.flatnonzero(has_unknown)
    equations, right = equations[has_unknown], right[has_unknown]
    # Cells tied by an equation are one group: the components of the bipartite graph of equations and cells.
    count, height = len(variables), equations.shape[0]
    incidence = (equations != 0).astype(float)
    graph = sparse.bmat([[sparse.csr_matrix((height, height)), incidence],
                         [incidence.T, sparse.csr_matrix((count, count))]]).tocsr()
    _, labels = connected_components(graph, directed=False)
    variable_labels, equation_labels = labels[height:], labels[:height]
    groups = [(np.flatnonzero(variable_labels == label), np.flatnonzero(equation_labels == label))
              for label in np.unique(variable_labels)]
    bounds = np.array([label_bounds(cells[keys[variable]], threshold, keys[variable] in opaque,
                                    keys[variable] in small_labels, keys[variable] in nonzero)
                       for variable in variables],
                      dtype=float).reshape(-1, 2)
    return _System(keys, relations, variables, equations, right, equation_rows, groups, contradictions,
                   bounds[:, 0], bounds[:, 1], set(opaque))


def audit_cells(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], threshold: int,
                hidden: Iterable[Hashable] | None = None, zeros_known: bool = True,
                opaque: Iterable[Hashable] = (), small_labels: Iterable[Hashable] = (),
                told_small: Iterable[Hashable] = (), nonzero: Iterable[Hashable] = ()) -> DisclosureAudit:
    """The feasible interval of every hidden cell given the others' values and `relations` (total = sum of parts),
    every count >= 0. `hidden`: the cells an attacker does not see (default: each cell's `hidden`, i.e. the
    suppression's decision and the unprinted cells). `zeros_known`: an unprinted zero counts as known (the ledger's
    convention: a reader who guesses that nothing lies outside a sum is right). `opaque`: the hidden cells whose
    "suppressed" label tells nothing (label_bounds). `small_labels`: the cells whose "<t" label bounds them by 1 ..
    t-1 (label_bounds; Table 1's). `told_small`: cells a printed label already says are small (every count of a Table 1 group
    whose n is printed "<t"): disclosed only when pinned, like a "<t" count. `nonzero`: hidden cells a reader
    knows are not zero (label_bounds).

    One sparse equation matrix over all cells; the unknown cells only are LP variables, in the groups the sums tie
    together."""
    hidden_keys = set(hidden) if hidden is not None else {key for key, cell in cells.items() if cell.hidden}
    opaque, told_small, small_labels, nonzero = set(opaque), set(told_small), set(small_labels), set(nonzero)
    system = _system(cells, relations, hidden_keys, zeros_known, threshold, opaque, small_labels, nonzero)
    audit = DisclosureAudit(threshold, contradictions=list(system.contradictions))
    for members, rows in system.groups:
        keys = [system.keys[system.variables[member]] for member in members]
        if not len(rows):  # in no sum: nothing but its label bounds it
            audit.intervals += [CellInterval(key, *label_bounds(cells[key], threshold, key in opaque,
                                                                key in small_labels, key in nonzero),
                                             int(cells[key].value),
                                             threshold, labelled_small=(cells[key].published and key not in opaque)
                                             or key in told_small)
                                for key in keys]
            continue
        intervals, solves = _group_intervals(system.equations[rows][:, members], system.right[rows],
                                             system.lower[members], system.upper[members], keys,
                                             np.array([cells[key].value for key in keys]),
                                             np.array([(cells[key].published and key not in opaque)
                                                       or key in told_small for key in keys]), threshold,
                                             audit.contradictions)
        audit.intervals += intervals
        audit.solves += solves
    return audit


class _GroupLP:
    """One HiGHS model of a group's equations (block @ x = right, lower <= x <= upper), solved again for each
    objective: only the costs change between solves, so HiGHS starts each solve from the previous optimal basis (a
    primal feasible point: a few simplex iterations where scipy's linprog would build and presolve the model anew).
    Presolve is off so that the basis carries over and an unbounded objective is reported as unbounded, not as
    "unbounded or infeasible".

    The model is the binding's own class (`highspy._Highs`, exported by highspy): highspy.Highs's constructor
    enables its callbacks, a HiGHS method that prints the "Running HiGHS ... Copyright" banner to the process's
    standard output before any option can turn the output off (HiGHS prints its header at the first call other than
    setting an option: ERGO-Code/HiGHS issue #1702); the run's terminal gets none of it."""

    def __init__(self, block: sparse.csr_matrix, right: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        import highspy
        from scipy import sparse

        self.highspy = highspy
        self.size = block.shape[1]
        self.highs = highspy._Highs()
        for option, value in (("output_flag", False), ("presolve", "off"), ("threads", 1)):
            self.highs.setOptionValue(option, value)
        columns = sparse.csc_matrix(block)
        columns.sort_indices()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.size, block.shape[0]
        lp.col_cost_ = np.zeros(self.size)
        lp.col_lower_ = np.asarray(lower, dtype=float)
        lp.col_upper_ = np.where(np.isinf(upper), highspy.kHighsInf, upper).astype(float)
        lp.row_lower_ = lp.row_upper_ = np.asarray(right, dtype=float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = columns.indptr.astype(np.int32)
        lp.a_matrix_.index_ = columns.indices.astype(np.int32)
        lp.a_matrix_.value_ = columns.data.astype(float)
        self.highs.passModel(lp)
        self.costed: list[int] = []
        self.solves = 0

    def optimum(self, costs: Mapping[int, float], what: str) -> float | None:
        """The least value of sum(cost * x) over the group's feasible points; None when it is unbounded below.
        `_Infeasible` when the group has no feasible point (the published numbers contradict its sums),
        RuntimeError when a solve fails."""
        for column in self.costed:
            if column not in costs:
                self.highs.changeColCost(column, 0.0)
        for column, cost in costs.items():
            self.highs.changeColCost(column, cost)
        self.costed = list(costs)
        self.highs.run()
        self.solves += 1
        status = self.highs.getModelStatus()
        statuses = self.highspy.HighsModelStatus
        if status == statuses.kOptimal:
            return self.highs.getInfo().objective_function_value
        if status == statuses.kUnbounded:
            return None
        if status == statuses.kInfeasible:
            raise _Infeasible(what)
        raise RuntimeError(f"disclosure audit: the LP of {what} failed: {self.highs.modelStatusToString(status)}")

    def point(self) -> np.ndarray:
        """The last solve's optimal point."""
        return np.asarray(self.highs.getSolution().col_value)

    def unbounded(self) -> np.ndarray:
        """After an unbounded solve, the cells that grow without bound along HiGHS's primal ray d (block @ d = 0,
        d >= 0: a feasible point plus any multiple of d is feasible, so every cell with d > 0 is unbounded above);
        none when HiGHS gives no ray."""
        status, exists, ray = self.highs.getPrimalRay()
        if not exists:
            return np.zeros(self.size, dtype=bool)
        ray = np.asarray(ray)[:self.size]
        return ray > TOLERANCE if (ray >= -TOLERANCE).all() else np.zeros(self.size, dtype=bool)

    def binding_rows(self) -> np.ndarray:
        """The equations whose dual value is not zero at the last optimum."""
        return np.flatnonzero(np.abs(np.asarray(self.highs.getSolution().row_dual)) > TOLERANCE)


class _Infeasible(RuntimeError):
    """The published numbers contradict the sums of a group."""


def disclosing_sums(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], threshold: int,
                    hidden: Iterable[Hashable], zeros_known: bool = True, opaque: Iterable[Hashable] = (),
                    small_labels: Iterable[Hashable] = (), told_small: Iterable[Hashable] = (),
                    nonzero: Iterable[Hashable] = ()) -> dict[Hashable, list[SumRelation]]:
    """The verdict of `audit_cells` without every interval: each disclosed small cell (upper bound below the
    threshold, and for a cell printed "<t" lower bound equal to it) with the sums that bind its upper bound (the
    equations whose dual value is not zero when the cell is maximised: loosening one of them is what can protect
    it). A first LP per group maximises the sum of min(cell, threshold) over its small cells: every cell that
    reaches the threshold there is safe, and only the others are maximised one by one (one HiGHS model per group,
    re-solved from the last basis; a cell that reaches the threshold in any solve needs no LP of its own)."""
    from scipy import sparse

    system = _system(cells, relations, set(hidden), zeros_known, threshold, set(opaque), set(small_labels),
                     set(nonzero))
    told_small = set(told_small)
    found: dict[Hashable, list[SumRelation]] = {}
    for members, rows in system.groups:
        keys = [system.keys[system.variables[member]] for member in members]
        small = [j for j, key in enumerate(keys) if is_small(cells[key].value, threshold)]
        if not small or not len(rows):
            continue
        block, right = system.equations[rows][:, members], system.right[rows]
        size = len(keys)
        # x (size) and y (one per small cell): maximise sum(y), y <= x (rows y - x + slack = 0, slack >= 0),
        # y <= threshold
        capped = sparse.bmat([[block, None, None],
                              [-sparse.csr_matrix((np.ones(len(small)), (range(len(small)), small)),
                                                  shape=(len(small), size)),
                               sparse.identity(len(small)), sparse.identity(len(small))]]).tocsr()
        lower, upper = system.lower[members], system.upper[members]
        first = _GroupLP(capped, np.r_[right, np.zeros(len(small))],
                         np.r_[lower, np.zeros(2 * len(small))],
                         np.r_[upper, np.full(len(small), float(threshold)), np.full(len(small), math.inf)])
        try:
            first.optimum({size + i: -1.0 for i in range(len(small))}, "the group's small cells")
        except _Infeasible as infeasible:
            raise RuntimeError(f"disclosure audit: the group LP failed: {infeasible} infeasible") from None
        reached = first.point()[:size] >= threshold - TOLERANCE
        group = _GroupLP(block, right, lower, upper)
        for j in small:
            if reached[j]:
                continue
            highest = group.optimum({j: -1.0}, describe_cell(keys[j]))
            if highest is None:
                reached |= group.unbounded()
                continue
            reached |= group.point() >= threshold - TOLERANCE
            if -highest < threshold - TOLERANCE:
                binding = group.binding_rows()
                printed_small = cells[keys[j]].published and keys[j] not in system.opaque
                if printed_small or keys[j] in told_small:  # a label says it is small: only when pinned
                    # (printed "<t", its label says at least 1: an upper bound of 1 pins it)
                    lowest = group.optimum({j: 1.0}, describe_cell(keys[j]))
                    if math.floor(-highest + TOLERANCE) > max(math.ceil(lowest - TOLERANCE), int(printed_small)):
                        continue
                found[keys[j]] = [system.relations[system.rows[rows[b]]] for b in binding]
    return found


def repair_until_undisclosed(disclosed: Callable[[], Mapping[Hashable, Sequence[SumRelation]]],
                             choose: Callable[[Hashable, Sequence[SumRelation], set], Hashable | None],
                             apply: Callable[[set], None], rounds: int) -> list[SumRelation]:
    """The audit's repair, one shape for every table that publishes counts: audit (`disclosed()`: each small cell
    the published numbers give away, with the sums that bind it), choose for each disclosed cell one change that
    loosens its binding sums (`choose(cell, binding, chosen)`: a cell to hide or a row to withhold; one already in
    `chosen` when a change of this round covers it; None when nothing is left to change), make every change of
    the round (`apply(chosen)`) and audit again, until nothing is disclosed, nothing is left to change or
    `rounds` have passed (the last round's verdict stands then). Returns the binding sums of the cells left
    disclosed with nothing to change in them: the caller reports them."""
    left: dict[Hashable, Sequence[SumRelation]] = {}
    for _ in range(rounds):
        chosen: set = set()
        left = {}
        for key, binding in disclosed().items():
            change = choose(key, binding, chosen)
            if change is None:
                left[key] = binding
            else:
                chosen.add(change)
        if not chosen:
            break
        apply(chosen)
    return [relation for binding in left.values() for relation in binding]


# Rounds of hiding and auditing again before the data-quality repair gives up (each round hides a cell for every
# disclosed one).
REPAIR_ROUNDS = 50


def complement_until_undisclosed(cells: Mapping[Hashable, Cell],
                                 disclosed: Callable[[], Mapping[Hashable, Sequence[SumRelation]]]
                                 ) -> list[SumRelation]:
    """The repair by complements (repair_until_undisclosed), in place: for each disclosed cell, the cheapest
    printed non-zero cell of its binding sums (least `cost`, a part before a total, then the smallest) is hidden as
    COMPLEMENTARY, unless a cell hidden this round is one of them. Returns the binding sums of the cells still
    disclosed when none of their printed cells is left to hide (zeros: a zero protects nothing)."""
    def cheapest(key: Hashable, binding: Sequence[SumRelation], chosen: set) -> Hashable | None:
        candidates = {cell for relation in binding for cell in relation.keys
                      if cells[cell].published and not cells[cell].hidden and cells[cell].value > 0}
        if not candidates or candidates & chosen:
            return min(candidates & chosen, key=repr, default=None)
        return min(candidates, key=lambda cell: (cells[cell].cost, any(cell == relation.total for relation in binding),
                                                 cells[cell].value, repr(cell)))

    def hide(chosen: set) -> None:
        for cell in chosen:
            cells[cell].suppression = COMPLEMENTARY

    return repair_until_undisclosed(disclosed, cheapest, hide, REPAIR_ROUNDS)


def _group_intervals(block: sparse.csr_matrix, right: np.ndarray, lowest: np.ndarray, highest: np.ndarray,
                     keys: list[Hashable], values: np.ndarray,
                     labelled: np.ndarray, threshold: int, contradictions: list[str]
                     ) -> tuple[list[CellInterval], int]:
    """Minimise and maximise each cell of one group subject to its equations and its cells' label bounds (`lowest`
    .. `highest`): one HiGHS model, re-solved for each objective. Every optimal point is a feasible one, so a cell
    at its label's lower bound in any of them has that lower bound without an LP of its own (the maxima come first:
    they leave most other cells at zero); and an unbounded maximum's ray leaves every cell it increases unbounded
    too (no LP of their own either)."""
    size = len(keys)
    group = _GroupLP(block, right, lowest, highest)
    upper, lower = np.full(size, math.nan), np.full(size, math.nan)
    try:
        for j in range(size):
            if not math.isnan(upper[j]):
                continue
            highest = group.optimum({j: -1.0}, describe_cell(keys[j]))
            if highest is None:
                upper[j] = math.inf
                upper[np.isnan(upper) & group.unbounded()] = math.inf
            else:
                upper[j] = -highest
                at_lowest = np.isnan(lower) & (group.point() <= lowest + TOLERANCE)
                lower[at_lowest] = lowest[at_lowest]
        for j in np.flatnonzero(np.isnan(lower)):
            lower[j] = max(group.optimum({j: 1.0}, describe_cell(keys[j])), lowest[j])
    except _Infeasible as infeasible:
        contradictions.append(f"published counts contradict the sums around {infeasible}")
        return [], group.solves
    return [CellInterval(keys[j], float(lower[j]), float(upper[j]), int(values[j]), threshold,
                         labelled_small=bool(labelled[j])) for j in range(size)], group.solves
