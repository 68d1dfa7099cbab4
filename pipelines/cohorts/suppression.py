"""Small-cell suppression of an attrition table (results.attrition): a chain of sums.

The rule itself (threshold, small cell, complementary suppression of counts tied by sums) is in
pipelines/disclosure.py; this module applies it to the chain N0 -> N1 -> ... -> NK of an attrition table, where
persons before a step = persons removed + persons after, so a hidden count must not be recoverable from its
neighbours. The work here is on aggregates, never on persons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.disclosure import COMPLEMENTARY, SMALL_CELL, is_small


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
                f"all inclusion steps together remove fewer than {threshold} persons; the extract size and the "
                "cohort size, published elsewhere, reveal that total")
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
