"""An attacker's audit of a study's published counts: what the sums of its ledger still say about each hidden cell.

The suppression (pipelines/disclosure.py, suppress_cells) chooses complements greedily, sum by sum. This module
checks the result the way an intruder would, and the way tau-ARGUS audits a suppression pattern (Hundepool et al.,
*Statistical Disclosure Control*, Wiley 2012, ch. 4, on auditing a suppression pattern; the audit of tau-ARGUS):
every published count is a known number, every hidden count an unknown >= 0, every sum of the study's
ledger (analysis_attrition.study_counts: attrition chains, estimate rows, nested populations, horizons, sensitivity
and negative-control differences, the outcome count) a linear equation. For each hidden cell two linear programmes
(minimise and maximise it; HiGHS through highspy, one model per group of tied cells re-solved from its last basis
for each objective, and no LP for a bound an earlier solve already decides) give its feasible interval: every value
an attacker cannot rule out.

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
that an unprinted difference which is zero is zero (`suppress_cells(derive_unprinted=True)`), that a count printed
"suppressed" is at least t (`label_bounds`), and the cohort cells Table 1 prints (`_printed_by_table1`). Not
modelled: the "<t" labels as LP bounds (the verdict accounts for them), estimates and intervals that recompute a
count (their whole row is hidden with any of its counts, suppress_estimates; a test checks the published tables),
Table 1's own sums and hidden cells, and any relation not declared in the ledger.

Used twice (docs/disclosure.md, "Audit"): `protect_derivable_counts` repairs the suppression before the tables are
written (one more complement per disclosed cell, audited again), and the blocking check
`no_small_count_derivable` (statistics/checks.py) audits the tables as written (`audit_published_study`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import highspy
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from pipelines import tables
from pipelines.disclosure import COMPLEMENTARY, Cell, SumRelation, is_small
from pipelines.statistics.analysis_attrition import (
    COUNT_COLUMNS as ATTRITION_COUNT_COLUMNS,
    ESTIMATE_COUNT_COLUMNS,
    MAIN,
    NEGATIVE_CONTROL,
    OUTCOME_COUNT,
    PRINTED_BY_THE_COHORT_STAGE,
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
    lower: np.ndarray  # per unknown cell (LP order), what its printed label tells (label_bounds)
    upper: np.ndarray


def label_bounds(cell: Cell, threshold: int) -> tuple[float, float]:
    """What a hidden cell's printed label tells every reader, as bounds on its value (docs/disclosure.md, "Audit"):
    - printed "suppressed" (a complement: never a zero, never small, so at least t): t and more. The same label
      also marks the counts of a row withheld whole (the sparing rule's sensitivity and negative-control rows),
      which may be anything: a hidden printed zero is such a count and keeps the bound 0 (a reader cannot tell
      it from a complement; the bound t, true of every other "suppressed" cell, is the reader's best knowledge);
    - printed "<t" (a small count): 0 and more here. Its label says 1 .. t-1, and the verdict accounts for it (a
      labelled cell is disclosed only when the sums pin it to one value); as LP bounds, the labels of two small
      printed counts would bound every unprinted difference of them below t, which the labels already tell;
    - never printed (a difference of printed counts: no label): 0 and more."""
    if cell.published and not is_small(cell.value, threshold) and cell.value > 0:
        return float(threshold), math.inf
    return 0.0, math.inf


def _system(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], hidden: set[Hashable],
            zeros_known: bool, threshold: int) -> _System:
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
    bounds = np.array([label_bounds(cells[keys[variable]], threshold) for variable in variables],
                      dtype=float).reshape(-1, 2)
    return _System(keys, relations, variables, equations, right, equation_rows, groups, contradictions,
                   bounds[:, 0], bounds[:, 1])


def audit_cells(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], threshold: int,
                hidden: Iterable[Hashable] | None = None, zeros_known: bool = True) -> DisclosureAudit:
    """The feasible interval of every hidden cell given the others' values and `relations` (total = sum of parts),
    every count >= 0. `hidden`: the cells an attacker does not see (default: each cell's `hidden`, i.e. the
    suppression's decision and the unprinted cells). `zeros_known`: an unprinted zero counts as known (the ledger's
    convention: a reader who guesses that nothing lies outside a sum is right).

    One sparse equation matrix over all cells; the unknown cells only are LP variables, in the groups the sums tie
    together."""
    hidden_keys = set(hidden) if hidden is not None else {key for key, cell in cells.items() if cell.hidden}
    system = _system(cells, relations, hidden_keys, zeros_known, threshold)
    audit = DisclosureAudit(threshold, contradictions=list(system.contradictions))
    for members, rows in system.groups:
        keys = [system.keys[system.variables[member]] for member in members]
        if not len(rows):  # in no sum: nothing but its label bounds it
            audit.intervals += [CellInterval(key, *label_bounds(cells[key], threshold), int(cells[key].value),
                                             threshold, labelled_small=cells[key].published) for key in keys]
            continue
        intervals, solves = _group_intervals(system.equations[rows][:, members], system.right[rows],
                                             system.lower[members], system.upper[members], keys,
                                             np.array([cells[key].value for key in keys]),
                                             np.array([cells[key].published for key in keys]), threshold,
                                             audit.contradictions)
        audit.intervals += intervals
        audit.solves += solves
    return audit


class _GroupLP:
    """One HiGHS model of a group's equations (block @ x = right, lower <= x <= upper), solved again for each
    objective: only the costs change between solves, so HiGHS starts each solve from the previous optimal basis (a
    primal feasible point: a few simplex iterations where scipy's linprog would build and presolve the model anew).
    Presolve is off so that the basis carries over and an unbounded objective is reported as unbounded, not as
    "unbounded or infeasible"."""

    def __init__(self, block: sparse.csr_matrix, right: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        self.size = block.shape[1]
        self.highs = highspy.Highs()
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
        if status == highspy.HighsModelStatus.kOptimal:
            return self.highs.getInfo().objective_function_value
        if status == highspy.HighsModelStatus.kUnbounded:
            return None
        if status == highspy.HighsModelStatus.kInfeasible:
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
                    hidden: Iterable[Hashable], zeros_known: bool = True
                    ) -> dict[Hashable, list[SumRelation]]:
    """The verdict of `audit_cells` without every interval: each disclosed small cell (upper bound below the
    threshold, and for a cell printed "<t" lower bound equal to it) with the sums that bind its upper bound (the
    equations whose dual value is not zero when the cell is maximised: loosening one of them is what can protect
    it). A first LP per group maximises the sum of min(cell, threshold) over its small cells: every cell that
    reaches the threshold there is safe, and only the others are maximised one by one (one HiGHS model per group,
    re-solved from the last basis; a cell that reaches the threshold in any solve needs no LP of its own)."""
    system = _system(cells, relations, set(hidden), zeros_known, threshold)
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
            highest = group.optimum({j: -1.0}, _describe(keys[j]))
            if highest is None:
                reached |= group.unbounded()
                continue
            reached |= group.point() >= threshold - TOLERANCE
            if -highest < threshold - TOLERANCE:
                binding = group.binding_rows()
                if cells[keys[j]].published:  # printed "<t": disclosed only when pinned to one value
                    lowest = group.optimum({j: 1.0}, _describe(keys[j]))
                    if math.floor(-highest + TOLERANCE) > math.ceil(lowest - TOLERANCE):
                        continue
                found[keys[j]] = [system.relations[system.rows[rows[b]]] for b in binding]
    return found


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
            highest = group.optimum({j: -1.0}, _describe(keys[j]))
            if highest is None:
                upper[j] = math.inf
                upper[np.isnan(upper) & group.unbounded()] = math.inf
            else:
                upper[j] = -highest
                at_lowest = np.isnan(lower) & (group.point() <= lowest + TOLERANCE)
                lower[at_lowest] = lowest[at_lowest]
        for j in np.flatnonzero(np.isnan(lower)):
            lower[j] = max(group.optimum({j: 1.0}, _describe(keys[j])), lowest[j])
    except _Infeasible as infeasible:
        contradictions.append(f"published counts contradict the sums around {infeasible}")
        return [], group.solves
    return [CellInterval(keys[j], float(lower[j]), float(upper[j]), int(values[j]), threshold,
                         labelled_small=bool(labelled[j])) for j in range(size)], group.solves


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
    control_exposures: pd.Series | None = None  # the rows of `results` that are a negative-control exposure's
    _counts: StudyCounts | None = field(default=None, init=False, repr=False, compare=False)

    def counts(self) -> StudyCounts:
        """The ledger's cells and sums, built once (the repair and the blocking check audit the same ledger; the
        audit only reads them)."""
        if self._counts is None:
            self._counts = study_counts(self.attrition, self.results, self.nested, self.outcome_count, self.controls,
                                        self.varied_exposures, self.hidden_arms)
        return self._counts


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
    known = {key for key, values in printed.items() if any(not math.isnan(value) for value in values)}
    hidden = _unknown_cells(counts, known | _printed_by_table1(con, study_id, counts), threshold)
    audit = audit_cells(cells, counts.ledger.relations, threshold, hidden=hidden)
    audit.contradictions[:0] = contradictions
    return audit


def _printed_by_table1(con: duckdb.DuckDBPyConnection, study_id: str, counts: StudyCounts) -> set[Hashable]:
    """The ledger's cells results.table1 prints, so known to every reader whatever the statistics tables hide: the
    cohort size (Table 1's overall n), each yes/no exposure's cohort arm of holders (its `true` count overall, or
    the sum of its two groups' counts when both are printed), and the arms of the variable Table 1 is split by (its
    groups' n). A cell counts as printed only where Table 1's value equals the ledger's (the same persons: the
    study population at index). Table 1's hidden cells and its other sums (levels, the unprinted `false` counts)
    are not modelled here: Table 1 protects them itself (tests/cohorts/test_table1_disclosure_attack.py)."""
    if not _table_exists(con, tables.TABLE1):
        return set()
    rows = con.execute(
        f"""SELECT by_variable, variable, "group", statistic, count FROM {tables.TABLE1}
            WHERE study_id = ? AND (statistic = 'n' OR (statistic = 'n_pct' AND level = 'true'))""",
        [study_id]).fetchall()
    printed: dict[tuple[str, str], list[int | None]] = {}
    for by_variable, variable, group, statistic, count in rows:
        if statistic == "n":  # the groups of the split variable are its arms; overall, the cohort size
            target = (by_variable, "both" if group == "overall" else group)
            printed.setdefault(target, []).append(count)
        elif group == "overall":
            printed.setdefault((variable, "exposed"), []).append(count)
        else:  # a yes/no variable's holders in one group: with the other group's, its holders overall
            printed.setdefault((variable, f"holders {group}"), []).append(count)
    values = {target: {count for count in found if count is not None} for target, found in printed.items()}
    for variable in {variable for variable, what in printed if what.startswith("holders ")}:
        groups = [printed.get((variable, f"holders {group}"), [None]) for group in ("exposed", "unexposed")]
        if all(len(found) == 1 and found[0] is not None for found in groups):
            values.setdefault((variable, "exposed"), set()).add(groups[0][0] + groups[1][0])
    cohort_size = {count for (_, what), found in values.items() if what == "both" for count in found}
    known = set()
    for key, cell in counts.ledger.cells.items():
        # the cohort per arm and the cohort size: (MAIN, exposure, (the cohort stage's step,), "persons", arm); a
        # time-varying analysis's first step (any exposed time) is another count
        if not (isinstance(key, tuple) and len(key) == 5 and key[0] == MAIN and key[3] == "persons"
                and key[2] == (PRINTED_BY_THE_COHORT_STAGE,)):
            continue
        found = cohort_size if key[4] == "both" else values.get((key[1], key[4]), set())
        if cell.value in found:
            known.add(key)
    return known


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
    row's first hidden count takes its estimates with it; a sensitivity or negative-control row, outcome or exposure
    control, weighs SECONDARY_ROW_COST_WEIGHT)."""
    lost = float(key == OUTCOME_COUNT)
    for table, row, _ in printings:
        if table == "attrition":
            lost += 1
            continue
        control = (isinstance(row, tuple) and row[0] == NEGATIVE_CONTROL) or bool(
            ledger.control_exposures is not None and ledger.control_exposures.get(row, False))
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
