"""Small-cell suppression of published person counts (Table 1 and attrition).

The rule, for a threshold t (default 11):

1. Primary suppression: a count of 1 to t-1 persons is hidden and printed as "<t". Zero is shown as 0: it is not a
   small cell, and hiding it would make the other hidden cells look larger than they are.
2. Complementary suppression: a hidden count must not be recoverable by subtraction. Counts are tied by sums
   (the levels and the missing count of a variable add up to the group's n; a group's count plus the other group's
   count is the overall count; persons before a step = persons removed + persons after). Whenever such a sum has
   exactly one hidden cell that needs protecting, one more of its cells is hidden (printed "suppressed"): the
   smallest non-zero part, else the total. This repeats until no sum gives a protected cell away.

The work here is on aggregates (a few hundred cells), never on persons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable

SMALL_CELL = "small_cell"
COMPLEMENTARY = "complementary"
SUPPRESSED_TEXT = "suppressed"


def small_cell_text(threshold: int) -> str:
    return f"<{threshold}"


def is_small(count: int | None, threshold: int) -> bool:
    """Between 1 and threshold - 1 persons: must not be published."""
    return count is not None and 1 <= count < threshold


@dataclass
class Cell:
    """A count tied into sums. `published=False` marks a count that is never printed but can be derived (the
    'false' count of a yes/no variable); it still needs protecting when it is small."""

    value: int
    published: bool = True
    suppression: str | None = None  # None, SMALL_CELL or COMPLEMENTARY

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


def suppress_cells(cells: dict[Hashable, Cell], relations: Iterable[SumRelation], threshold: int) -> None:
    """Apply primary and complementary suppression in place (see the module docstring)."""
    relations = list(relations)
    for cell in cells.values():
        if is_small(cell.value, threshold):
            cell.suppression = SMALL_CELL
    changed = True
    while changed:
        changed = False
        for relation in relations:
            hidden = [key for key in relation.keys if cells[key].hidden]
            if len(hidden) != 1 or not cells[hidden[0]].protected:
                continue
            # Parts before the total, smallest first; a zero cell protects nothing.
            candidates = sorted((key for key in relation.parts if not cells[key].hidden and cells[key].value > 0),
                                key=lambda key: cells[key].value)
            if not candidates and not cells[relation.total].hidden and cells[relation.total].value > 0:
                candidates = [relation.total]
            if candidates:
                cells[candidates[0]].suppression = COMPLEMENTARY
                changed = True


# ---------------------------------------------------------------------------------------------------------------
# Attrition: a chain of sums
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class AttritionSuppression:
    """Which counts of an attrition table are hidden. Index k: row k (row 0 = persons in the extract)."""

    after: dict[int, str] = field(default_factory=dict)    # k -> SMALL_CELL / COMPLEMENTARY
    removed: dict[int, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def before(self, k: int) -> str | None:
        """Persons before step k are the persons after step k - 1 (row 0: the extract itself)."""
        return self.after.get(k - 1 if k > 0 else 0)


def suppress_attrition(persons_after: list[int], persons_removed: list[int], threshold: int) -> AttritionSuppression:
    """Suppression for an attrition chain N0 -> N1 -> ... -> NK with N(k-1) = removed(k) + N(k).

    persons_after[k] is N(k) (persons_after[0] = persons in the extract), persons_removed[k] the persons step k
    removes (persons_removed[0] = 0).

    1. Primary: any N(k) or removed(k) of 1..t-1 is hidden.
    2. The first small N(k): removed(k) is hidden too, or N(k) = N(k-1) - removed(k) would give it away.
    3. Runs: consecutive steps whose removed counts are hidden, with the counts between them hidden, show only their
       total removal (persons before the run minus persons after it). A run whose total is 1..t-1 is extended to
       the next step (hiding the count between them and the next step's removed count), or to the previous step
       when it already ends at the last step. A run with a hidden end count is safe (the total is unknown).
    """
    last = len(persons_after) - 1
    result = AttritionSuppression()
    for k in range(last + 1):
        if is_small(persons_after[k], threshold):
            result.after[k] = SMALL_CELL
        if k > 0 and is_small(persons_removed[k], threshold):
            result.removed[k] = SMALL_CELL
    for k in range(1, last + 1):
        if k in result.after and (k - 1) not in result.after:
            result.removed.setdefault(k, COMPLEMENTARY)
            break

    while True:
        unsafe = None
        for first, final in _runs(result, last):
            before_hidden = (first - 1) in result.after
            after_hidden = final in result.after
            total_removed = persons_after[first - 1] - persons_after[final]
            if not before_hidden and not after_hidden and is_small(total_removed, threshold):
                unsafe = (first, final)
                break
        if unsafe is None:
            return result
        first, final = unsafe
        if final < last:
            result.after.setdefault(final, COMPLEMENTARY)
            result.removed.setdefault(final + 1, COMPLEMENTARY)
        elif first > 1:
            result.after.setdefault(first - 1, COMPLEMENTARY)
            result.removed.setdefault(first - 1, COMPLEMENTARY)
        else:
            result.warnings.append(
                f"all inclusion steps together remove only {total_removed} persons (< {threshold}); the extract "
                "size and the cohort size, published elsewhere, reveal that total")
            return result


def _runs(result: AttritionSuppression, last: int) -> list[tuple[int, int]]:
    """Maximal runs [first, final] of steps with hidden removed counts joined by hidden counts between them."""
    runs: list[tuple[int, int]] = []
    k = 1
    while k <= last:
        if k not in result.removed:
            k += 1
            continue
        first = k
        while k + 1 <= last and k in result.after and (k + 1) in result.removed:
            k += 1
        runs.append((first, k))
        k += 1
    return runs
