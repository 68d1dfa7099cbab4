"""Small vectorised helpers shared by the simulation modules (no Python loops over rows)."""

from __future__ import annotations

import numpy as np

DAY_KEY = 1 << 16  # days since 1970 stay below 65,536 until the year 2149; person * DAY_KEY + day is a sort key


def to_day(iso: str) -> int:
    """ISO date -> days since 1970-01-01 (the int32 value of a date32 / datetime64[D])."""
    return int(np.datetime64(iso, "D").astype(np.int64))


def logistic(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1.0 - p))


def weighted_choice(u: np.ndarray, weights: list[float] | tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Index of the weighted option each uniform u in [0, 1) falls in."""
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    cum = cum / cum[-1]
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For counts [2, 0, 3] return owners [0, 0, 2, 2, 2] and positions [0, 1, 0, 1, 2]."""
    counts = np.asarray(counts, dtype=np.int64)
    owners = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    positions = np.arange(owners.size, dtype=np.int64) - np.repeat(starts, counts)
    return owners, positions


def first_per_group(group: np.ndarray, n_groups: int, values: np.ndarray, fill: int = -1) -> np.ndarray:
    """The value at each group's first row (rows must already be in the wanted order); ``fill`` where absent."""
    out = np.full(n_groups, fill, dtype=values.dtype if values.size else np.int64)
    if group.size:
        uniq, first = np.unique(group, return_index=True)
        out[uniq] = values[first]
    return out


def min_per_group(group: np.ndarray, n_groups: int, values: np.ndarray, fill) -> np.ndarray:
    out = np.full(n_groups, fill, dtype=np.result_type(values.dtype, type(fill)))
    np.minimum.at(out, group, values)
    return out


def max_per_group(group: np.ndarray, n_groups: int, values: np.ndarray, fill) -> np.ndarray:
    out = np.full(n_groups, fill, dtype=np.result_type(values.dtype, type(fill)))
    np.maximum.at(out, group, values)
    return out


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A fixed integer hash (splitmix64 finaliser): pseudo-random but a pure function of its input."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def merge_intervals(person: np.ndarray, start: np.ndarray, end: np.ndarray, join_gap_days: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of inclusive day intervals [start, end] per person, as (person, start, end) sorted by person and
    start; intervals at most ``join_gap_days`` days apart are joined into one."""
    order = np.lexsort((start, person))
    p, s, e = person[order].astype(np.int64), start[order].astype(np.int64), end[order].astype(np.int64)
    if p.size == 0:
        return p, s, e
    run_end = np.maximum.accumulate(p * DAY_KEY + e)  # the person term keeps it increasing across persons
    new = np.r_[True, p[1:] * DAY_KEY + s[1:] > run_end[:-1] + 1 + join_gap_days]
    last = np.r_[new[1:], True]
    return p[new], s[new], run_end[last] - p[new] * DAY_KEY


def in_intervals(intervals: tuple[np.ndarray, np.ndarray, np.ndarray], person: np.ndarray,
                 day: np.ndarray) -> np.ndarray:
    """Whether each (person, day) lies inside one of the person's intervals (as returned by merge_intervals)."""
    i_person, i_start, i_end = intervals
    if i_person.size == 0:
        return np.zeros(np.shape(person), dtype=bool)
    j = np.searchsorted(i_person * DAY_KEY + i_start, person * DAY_KEY + day, side="right") - 1
    jj = np.maximum(j, 0)
    return (j >= 0) & (i_person[jj] == person) & (day <= i_end[jj])


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2's hash-based np.unique is many times slower on millions of int64 keys)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if values.size else values
