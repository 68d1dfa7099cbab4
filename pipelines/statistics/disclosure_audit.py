"""An attacker's audit of a study's published counts: what the sums of its ledger still say about each hidden cell.

The suppression (pipelines/disclosure.py, suppress_cells) chooses complements greedily, sum by sum. This module
checks the result the way an intruder would, and the way tau-ARGUS audits a suppression pattern (Hundepool et al.,
*Statistical Disclosure Control*, Wiley 2012, ch. 4, on auditing a suppression pattern; the audit of tau-ARGUS):
every published count is a known number, every hidden count an unknown >= 0, every sum of the study's
ledger (analysis_attrition.study_counts: attrition chains, estimate rows, nested populations, horizons, sensitivity
and negative-control differences, the outcome count) a linear equation. For each hidden cell two linear programmes
(minimise and maximise it; HiGHS through scipy.optimize.linprog) give its feasible interval: every value an
attacker cannot rule out.

Protection rule, for a hidden count of 1 .. threshold-1 persons:
- printed "<t": its label already tells every reader it lies in 1 .. t-1, so the sums disclose it only when they
  pin it to one value (exactly recomputable: "no cell of 1-10 may be displayed or derived", as in the CMS cell-size
  suppression policy);
- a small unprinted difference (no label says it is small): disclosed when the largest value the published numbers
  allow is below the threshold, i.e. its interval lies inside [0, threshold-1] (the upper protection level of
  tau-ARGUS set at the threshold, and the rule `suppress_cells` itself applies to a small sum of hidden parts).
A hidden zero or a hidden count >= threshold discloses nothing by itself; the intervals of the small cells already
account for what such a cell gives away.

What the attacker is assumed to know, as the ledger assumes it: the published numbers, the sums, counts >= 0, and
that an unprinted difference which is zero is zero (`suppress_cells(derive_unprinted=True)`). Not modelled: the
"<t" and "suppressed" labels as bounds, estimates and intervals that recompute a count (their whole row is hidden
with any of its counts, suppress_estimates), Table 1's own sums, and any relation not declared in the ledger.

Used twice (docs/disclosure.md, "Audit"): `protect_derivable_counts` repairs the suppression before the tables are
written (one more complement per disclosed cell, audited again), and the blocking check
`no_small_count_derivable` (statistics/checks.py) audits the tables as written (`audit_published_study`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from pipelines import tables
from pipelines.disclosure import COMPLEMENTARY, Cell, SumRelation, is_small
from pipelines.statistics.analysis_attrition import (
    COUNT_COLUMNS as ATTRITION_COUNT_COLUMNS,
    ESTIMATE_COUNT_COLUMNS,
    NEGATIVE_CONTROL,
    OUTCOME_COUNT,
    SECONDARY_ROW_COST_WEIGHT,
    StudyCounts,
    StudySuppression,
    study_counts,
)

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
        """A small count the sums pin to one value, or, without a "<t" label, bound below the threshold."""
        if not self.sensitive:
            return False
        return self.exact if self.labelled_small else self.upper < self.threshold - TOLERANCE


@dataclass
class DisclosureAudit:
    """The audit of one suppression pattern: an interval per hidden cell, and the sums whose published values
    contradict each other (an infeasible system: the published tables do not match the ledger)."""

    threshold: int
    intervals: list[CellInterval] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)

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
        return ([f"{_describe(interval.key)}: "
                 + ("recomputable exactly" if interval.exact else "bounded below the threshold")
                 for interval in self.disclosed] + self.contradictions)


def _describe(key: Hashable) -> str:
    if isinstance(key, tuple):
        return " / ".join(_describe(part) if isinstance(part, tuple) else str(part) for part in key)
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


def _system(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], hidden: set[Hashable],
            zeros_known: bool) -> _System:
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
    contradictions = [f"published counts break the sum {_describe(relations[row].total)} = "
                      f"{' + '.join(_describe(part) for part in relations[row].parts)}"
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
    return _System(keys, relations, variables, equations, right, equation_rows, groups, contradictions)


def audit_cells(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], threshold: int,
                hidden: Iterable[Hashable] | None = None, zeros_known: bool = True) -> DisclosureAudit:
    """The feasible interval of every hidden cell given the others' values and `relations` (total = sum of parts),
    every count >= 0. `hidden`: the cells an attacker does not see (default: each cell's `hidden`, i.e. the
    suppression's decision and the unprinted cells). `zeros_known`: an unprinted zero counts as known (the ledger's
    convention: a reader who guesses that nothing lies outside a sum is right).

    One sparse equation matrix over all cells; the unknown cells only are LP variables, in the groups the sums tie
    together."""
    hidden_keys = set(hidden) if hidden is not None else {key for key, cell in cells.items() if cell.hidden}
    system = _system(cells, relations, hidden_keys, zeros_known)
    audit = DisclosureAudit(threshold, contradictions=list(system.contradictions))
    for members, rows in system.groups:
        keys = [system.keys[system.variables[member]] for member in members]
        if not len(rows):  # in no sum: nothing bounds it
            audit.intervals += [CellInterval(key, 0.0, math.inf, int(cells[key].value), threshold,
                                             labelled_small=cells[key].published) for key in keys]
            continue
        audit.intervals += _group_intervals(system.equations[rows][:, members], system.right[rows], keys,
                                            np.array([cells[key].value for key in keys]),
                                            np.array([cells[key].published for key in keys]), threshold,
                                            audit.contradictions)
    return audit


def disclosing_sums(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], threshold: int,
                    hidden: Iterable[Hashable], zeros_known: bool = True
                    ) -> dict[Hashable, list[SumRelation]]:
    """The verdict of `audit_cells` without every interval: each disclosed small cell (upper bound below the
    threshold, and for a cell printed "<t" lower bound equal to it) with the sums that bind its upper bound (the equations whose dual value is not zero when the cell
    is maximised: loosening one of them is what can protect it). A first LP per group maximises the sum of
    min(cell, threshold) over its small cells: every cell that reaches the threshold there is safe, and only the
    others are maximised one by one."""
    system = _system(cells, relations, set(hidden), zeros_known)
    found: dict[Hashable, list[SumRelation]] = {}
    for members, rows in system.groups:
        keys = [system.keys[system.variables[member]] for member in members]
        small = [j for j, key in enumerate(keys) if is_small(cells[key].value, threshold)]
        if not small or not len(rows):
            continue
        block, right = system.equations[rows][:, members], system.right[rows]
        size = len(keys)
        # x (size) and y (one per small cell): maximise sum(y), y <= x, y <= threshold
        capped = sparse.hstack([-sparse.csr_matrix((np.ones(len(small)), (range(len(small)), small)),
                                                   shape=(len(small), size)), sparse.identity(len(small))])
        result = linprog(np.r_[np.zeros(size), -np.ones(len(small))],
                         A_ub=capped, b_ub=np.zeros(len(small)),
                         A_eq=sparse.hstack([block, sparse.csr_matrix((block.shape[0], len(small)))]), b_eq=right,
                         bounds=[(0, None)] * size + [(0, threshold)] * len(small), method="highs")
        if result.status != 0:
            raise RuntimeError(f"disclosure audit: the group LP failed: {result.message}")
        reached = result.x[:size] >= threshold - TOLERANCE
        for j in small:
            if reached[j]:
                continue
            objective = np.zeros(size)
            objective[j] = -1.0
            single = linprog(objective, A_eq=block, b_eq=right, bounds=(0, None), method="highs")
            if single.status == 3:
                continue
            if single.status != 0:
                raise RuntimeError(f"disclosure audit: the LP of {_describe(keys[j])} failed: {single.message}")
            reached |= single.x >= threshold - TOLERANCE
            if -single.fun < threshold - TOLERANCE:
                if cells[keys[j]].published:  # printed "<t": disclosed only when pinned to one value
                    lowest = linprog(-objective, A_eq=block, b_eq=right, bounds=(0, None), method="highs")
                    if lowest.status != 0:
                        raise RuntimeError(f"disclosure audit: the LP of {_describe(keys[j])} failed: "
                                           f"{lowest.message}")
                    if math.floor(-single.fun + TOLERANCE) > math.ceil(lowest.fun - TOLERANCE):
                        continue
                binding = np.flatnonzero(np.abs(single.eqlin.marginals) > TOLERANCE)
                found[keys[j]] = [system.relations[system.rows[rows[b]]] for b in binding]
    return found


def _group_intervals(block: sparse.csr_matrix, right: np.ndarray, keys: list[Hashable], values: np.ndarray,
                     labelled: np.ndarray, threshold: int, contradictions: list[str]) -> list[CellInterval]:
    """Minimise and maximise each cell of one group subject to its equations, cells >= 0."""
    size = len(keys)
    intervals = []
    for j in range(size):
        bounds = []
        for sense in (1.0, -1.0):
            objective = np.zeros(size)
            objective[j] = sense
            result = linprog(objective, A_eq=block, b_eq=right, bounds=(0, None), method="highs")
            if result.status == 2:  # infeasible: the published numbers contradict the sums
                contradictions.append(f"published counts contradict the sums around {_describe(keys[j])}")
                return intervals
            if result.status == 3:  # unbounded (only upwards: cells are >= 0)
                bounds.append(math.inf)
            elif result.status != 0:
                raise RuntimeError(f"disclosure audit: the LP of {_describe(keys[j])} failed: {result.message}")
            else:
                bounds.append(sense * result.fun)
        lower, upper = bounds
        intervals.append(CellInterval(keys[j], max(lower, 0.0), upper, int(values[j]), threshold,
                                      labelled_small=bool(labelled[j])))
    return intervals


# ---------------------------------------------------------------------------------------------------------------
# A study as published: the ledger's sums, what the database prints
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class StudyLedger:
    """What a study's ledger is built from (the arguments of analysis_attrition.suppress_study_counts_sparing_main,
    before suppression: every row, sensitivity and negative-control rows included), kept so that the published
    tables can be audited against every sum a reader can form across them."""

    attrition: pd.DataFrame
    results: pd.DataFrame | None
    nested: Sequence[tuple[str, str]] = ()
    outcome_count: int | None = None
    controls: pd.DataFrame | None = None
    varied_exposures: Mapping[str, str] | None = None
    hidden_arms: Mapping[tuple[str, str, str], str] | None = None

    def counts(self) -> StudyCounts:
        return study_counts(self.attrition, self.results, self.nested, self.outcome_count, self.controls,
                            self.varied_exposures, self.hidden_arms)


# How each published table's rows are identified (the same rows as the ledger's frames), and its count columns.
_ATTRITION_ROW = ("exposure", "analysis_id", "step_order")
_ESTIMATE_ROW = ("exposure", "outcome", "analysis_id", "estimand", "sensitivity_analysis")
_CONTROL_ROW = ("exposure", "outcome", "analysis_id", "estimand")


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name || '.' || table_name = ?",
                       [table]).fetchall()[0][0] > 0


def _printed_values(con: duckdb.DuckDBPyConnection, table: str, study_id: str, frame: pd.DataFrame | None,
                    row_columns: Sequence[str], count_columns: Sequence[str]) -> dict[tuple[Hashable, str], float]:
    """(frame index, count column) -> the value the database prints there (NaN: NULL, or no such row)."""
    if frame is None or frame.empty:
        return {}
    present = _table_exists(con, table)
    printed = con.execute(f"SELECT * FROM {table} WHERE study_id = ?", [study_id]).df() if present \
        else pd.DataFrame(columns=[*row_columns, *count_columns])
    rows = [column for column in row_columns if column in frame.columns and column in printed.columns]

    def row_key(table_frame: pd.DataFrame) -> pd.DataFrame:
        return table_frame[rows].astype(object).where(table_frame[rows].notna(), "").astype(str)

    wanted = row_key(frame).assign(_position=range(len(frame)))
    found = row_key(printed).join(printed[list(count_columns)].apply(pd.to_numeric, errors="coerce"))
    merged = wanted.merge(found.drop_duplicates(rows), on=rows, how="left").sort_values("_position")
    return {(index, column): value for column in count_columns
            for index, value in zip(frame.index, merged[column].to_numpy(dtype=float))}


def _estimate_rows_printed(con: duckdb.DuckDBPyConnection, study_id: str,
                           frame: pd.DataFrame | None) -> dict[tuple[Hashable, str], float]:
    """_printed_values of the ledger's estimate rows: in results.associations, or, for a negative-control
    exposure's rows (estimate rows of the ledger, published with the controls), in results.negative_control_estimates."""
    printed = _printed_values(con, tables.ASSOCIATIONS, study_id, frame, _ESTIMATE_ROW, ESTIMATE_COUNT_COLUMNS)
    controls = _printed_values(con, tables.NEGATIVE_CONTROL_ESTIMATES, study_id, frame, _CONTROL_ROW,
                               ESTIMATE_COUNT_COLUMNS)
    return {position: value if not math.isnan(value) else controls.get(position, math.nan)
            for position, value in printed.items()}


def audit_published_study(con: duckdb.DuckDBPyConnection, study_id: str, threshold: int,
                          ledger: StudyLedger) -> DisclosureAudit:
    """The study's published tables (results.analysis_attrition, results.associations,
    results.negative_control_estimates, results.outcome_counts) audited against its ledger: a cell is known when
    any of these tables prints it (or, the cohort size, results.attrition); every other cell, printed NULL or
    never printed, is unknown."""
    counts = ledger.counts()
    cells = counts.ledger.cells
    printed: dict[Hashable, list[float]] = {}
    for positions, values in (
            (counts.attrition_cells, _printed_values(con, tables.ANALYSIS_ATTRITION, study_id, ledger.attrition,
                                                     _ATTRITION_ROW, ATTRITION_COUNT_COLUMNS)),
            ({position: key for position, key in counts.result_cells.items()
              if not (isinstance(position[0], tuple) and position[0][0] == NEGATIVE_CONTROL)},
             _estimate_rows_printed(con, study_id, ledger.results)),
            ({(position[0][1], position[1]): key for position, key in counts.result_cells.items()
              if isinstance(position[0], tuple) and position[0][0] == NEGATIVE_CONTROL},
             _printed_values(con, tables.NEGATIVE_CONTROL_ESTIMATES, study_id, ledger.controls, _CONTROL_ROW,
                             ESTIMATE_COUNT_COLUMNS))):
        for position, key in positions.items():
            if key is not None:
                printed.setdefault(key, []).append(values.get(position, math.nan))
    if OUTCOME_COUNT in cells:
        rows = con.execute(f"SELECT persons_with_outcome FROM {tables.OUTCOME_COUNTS} WHERE study_id = ?",
                           [study_id]).fetchall() if _table_exists(con, tables.OUTCOME_COUNTS) else []
        printed.setdefault(OUTCOME_COUNT, []).append(math.nan if not rows or rows[0][0] is None else float(rows[0][0]))
    contradictions = [f"{_describe(key)}: a printed value differs from the count the ledger holds"
                      for key, values in printed.items()
                      if any(not math.isnan(value) and abs(value - cells[key].value) > TOLERANCE
                             for value in values)]
    hidden = _unknown_cells(counts, {key for key, values in printed.items()
                                     if any(not math.isnan(value) for value in values)}, threshold)
    audit = audit_cells(cells, counts.ledger.relations, threshold, hidden=hidden)
    audit.contradictions[:0] = contradictions
    return audit


def _unknown_cells(counts: StudyCounts, known: set[Hashable], threshold: int) -> set[Hashable]:
    """The cells a reader does not see: every printed cell not in `known`, and every cell that is never printed.
    A published cell printed nowhere in the study's tables is the cohort size, which results.attrition and the
    run log print unless it is small."""
    placed = {key for key in (*counts.attrition_cells.values(), *counts.result_cells.values()) if key is not None}
    placed.add(OUTCOME_COUNT)
    return {key for key, cell in counts.ledger.cells.items()
            if key not in known and (key in placed or not cell.published or is_small(cell.value, threshold))}


# ---------------------------------------------------------------------------------------------------------------
# Protecting what the audit finds: one more complement per disclosed cell, until the audit passes
# ---------------------------------------------------------------------------------------------------------------

# Rounds of added complements before giving up (each round hides one more cell per disclosed cell).
PROTECTION_ROUNDS = 30


def _planned_printing(counts: StudyCounts, suppression: StudySuppression, ledger: StudyLedger,
                      threshold: int) -> tuple[set[Hashable], set[Hashable]]:
    """What a suppression will print (before the tables are written, as publish_study_results writes them): the
    cells printed somewhere, and the estimate rows with a hidden count (whose estimates are hidden already)."""
    cells = counts.ledger.cells
    known: set[Hashable] = set()
    rows_hidden: set[Hashable] = set()
    for (index, column), key in counts.attrition_cells.items():
        if key is not None and not pd.isna(suppression.attrition.at[index, column]):
            known.add(key)
    for (row, column), key in counts.result_cells.items():
        control = isinstance(row, tuple) and row[0] == NEGATIVE_CONTROL
        flags = (suppression.control_complementary if control else suppression.result_complementary).get(column)
        index = row[1] if control else row
        hidden = is_small(cells[key].value, threshold) or bool(flags is not None and flags.get(index, False))
        if hidden:
            rows_hidden.add(row)
        else:
            known.add(key)
    if OUTCOME_COUNT in cells and suppression.outcome_count_suppression is None:
        known.add(OUTCOME_COUNT)
    return known, rows_hidden


def _printings(counts: StudyCounts) -> dict[Hashable, list[tuple[str, Hashable, str]]]:
    """Where each cell is printed: ("attrition", row index, column) or ("estimate", row id, column)."""
    where: dict[Hashable, list[tuple[str, Hashable, str]]] = {}
    for (index, column), key in counts.attrition_cells.items():
        if key is not None:
            where.setdefault(key, []).append(("attrition", index, column))
    for (row, column), key in counts.result_cells.items():
        where.setdefault(key, []).append(("estimate", row, column))
    return where


def _numbers_lost_by_hiding(counts: StudyCounts, ledger: StudyLedger, printings: list[tuple[str, Hashable, str]],
                            key: Hashable, rows_hidden: set[Hashable]) -> float:
    """The published numbers hiding `key` withholds beyond what is hidden already (the ledger's costs: an estimate
    row's first hidden count takes its estimates with it; a sensitivity or negative-control row weighs
    SECONDARY_ROW_COST_WEIGHT)."""
    lost = float(key == OUTCOME_COUNT)
    for table, row, _ in printings:
        if table == "attrition":
            lost += 1
            continue
        control = isinstance(row, tuple) and row[0] == NEGATIVE_CONTROL
        secondary = control or (ledger.results is not None and "sensitivity_analysis" in ledger.results
                                and not pd.isna(ledger.results.at[row, "sensitivity_analysis"]))
        numbers = 1 + (0 if row in rows_hidden else counts.row_numbers.get(row, 0))
        lost += numbers * (SECONDARY_ROW_COST_WEIGHT if secondary else 1.0)
    return lost


def _hide(suppression: StudySuppression, printings: list[tuple[str, Hashable, str]], key: Hashable) -> None:
    """Hide `key` wherever the suppression prints it, as a complementary cell."""
    frame = suppression.attrition
    for table, row, column in printings:
        if table == "attrition":
            if not pd.isna(frame.at[row, column]):
                frame.at[row, column] = None
                listed = frame.at[row, "complementary_columns"]
                frame.at[row, "complementary_columns"] = ",".join(filter(None, (listed, column)))
                frame.at[row, "suppressed"] = True
        elif isinstance(row, tuple) and row[0] == NEGATIVE_CONTROL:
            suppression.control_complementary[column].at[row[1]] = True
        else:
            suppression.result_complementary[column].at[row] = True
    if key == OUTCOME_COUNT and suppression.outcome_count_suppression is None:
        suppression.outcome_count_suppression = COMPLEMENTARY


def protect_derivable_counts(suppression: StudySuppression, ledger: StudyLedger,
                             threshold: int) -> StudySuppression:
    """`suppression` (analysis_attrition.suppress_study_counts_sparing_main) with more complementary cells until no
    small count is disclosed by the audit's rule. The greedy choice sees one sum at a time; a chain of sums with
    two unknown cells each (the outcome count hidden, but pinned by the exposures' events) can still bound a small
    count below the threshold. For each disclosed cell, the cheapest printed non-zero cell of the sums that bind its
    upper bound is hidden (the cost-driven secondary suppression of the ledger, Fischetti & Salazar-Gonzalez 2001,
    applied to the audit's binding sums, as tau-ARGUS's audit-and-repair loop); the audit is then repeated. Cells
    printed by an earlier stage (the ledger's fixed cells, the cohort size) are never chosen. The sums binding a
    disclosed cell left without a candidate (or still disclosed after PROTECTION_ROUNDS) are added to
    `suppression.unprotected`, which the run notes report."""
    counts = ledger.counts()
    cells = counts.ledger.cells
    where = _printings(counts)
    unprotectable: dict[Hashable, list[SumRelation]] = {}
    for _ in range(PROTECTION_ROUNDS):
        known, rows_hidden = _planned_printing(counts, suppression, ledger, threshold)
        hidden = _unknown_cells(counts, known, threshold)
        disclosed = disclosing_sums(cells, counts.ledger.relations, threshold, hidden)
        chosen: set[Hashable] = set()
        for key, binding in disclosed.items():
            candidates = {cell for relation in binding for cell in relation.keys
                          if cell in known and cells[cell].value > 0
                          and (cell == OUTCOME_COUNT or not cells[cell].fixed)}
            if not candidates:
                unprotectable.setdefault(key, binding)
            elif not candidates & chosen:
                chosen.add(min(candidates, key=lambda cell: (
                    _numbers_lost_by_hiding(counts, ledger, where.get(cell, []), cell, rows_hidden),
                    cells[cell].value, repr(cell))))
        if not chosen:
            suppression.unprotected += [relation for key, binding in unprotectable.items() if key in disclosed
                                        for relation in binding]
            return suppression
        for key in chosen:
            suppression.numbers_lost += _numbers_lost_by_hiding(counts, ledger, where.get(key, []), key, rows_hidden)
            _hide(suppression, where.get(key, []), key)
    # Still disclosed after every round: reported like the sums with nothing left to hide; the blocking check
    # no_small_count_derivable then stops the run before anything is published.
    known, _ = _planned_printing(counts, suppression, ledger, threshold)
    hidden = _unknown_cells(counts, known, threshold)
    disclosed = disclosing_sums(cells, counts.ledger.relations, threshold, hidden)
    suppression.unprotected += [relation for binding in disclosed.values() for relation in binding]
    return suppression
