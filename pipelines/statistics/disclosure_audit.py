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
- a small unprinted difference, or a small count of a row withheld whole (no label says it is small): disclosed
  when the largest value the published numbers allow is below the threshold, i.e. its interval lies inside [0, threshold-1] (the upper protection level of
  tau-ARGUS set at the threshold, and the rule `suppress_cells` itself applies to a small sum of hidden parts).
A hidden zero or a hidden count >= threshold discloses nothing by itself; the intervals of the small cells already
account for what such a cell gives away.

What the attacker is assumed to know, as the ledger assumes it: the published numbers, the sums, counts >= 0, and
that an unprinted difference which is zero is zero (`suppress_cells(derive_unprinted=True)`), that a count printed
"suppressed" in a row that prints another count or a "<t" is at least t (`label_bounds`; in a row withheld whole it
may be anything), and the cohort cells Table 1 prints (`_printed_by_table1`). Not
modelled: the "<t" labels as LP bounds (the verdict accounts for them), estimates and intervals that recompute a
count (their whole row is hidden with any of its counts, suppress_estimates; a test checks the published tables),
Table 1's own sums and hidden cells, and any relation not declared in the ledger.

Used twice (docs/disclosure.md, "Audit"): `protect_derivable_counts` repairs the suppression before the tables are
written (a main complement for a chain of the main analysis alone, a non-main result withheld whole for any other
chain, audited again), and the blocking check
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
    CONTROL_PAIR_COLUMNS,
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
    opaque: set[Hashable]  # the hidden cells whose "suppressed" label tells nothing (label_bounds)


def label_bounds(cell: Cell, threshold: int, opaque: bool = False) -> tuple[float, float]:
    """What a hidden cell's printed label tells every reader, as bounds on its value (docs/disclosure.md, "Audit"):
    - printed "suppressed" in a row that prints another of its counts or a "<t" (a complement: never a zero,
      never small, so at least t): t and more;
    - `opaque`: printed "suppressed" only in rows whose every count is "suppressed" (a row withheld whole prints
      its small counts so too, disclosure.suppress_estimates; a reader cannot tell such a row from one of
      complements): 0 and more. A hidden printed zero is a count of a row withheld whole: 0 and more too;
    - printed "<t" (a small count): 0 and more here. Its label says 1 .. t-1, and the verdict accounts for it (a
      labelled cell is disclosed only when the sums pin it to one value); as LP bounds, the labels of two small
      printed counts would bound every unprinted difference of them below t, which the labels already tell;
    - never printed (a difference of printed counts: no label): 0 and more."""
    if cell.published and not opaque and not is_small(cell.value, threshold) and cell.value > 0:
        return float(threshold), math.inf
    return 0.0, math.inf


def _system(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], hidden: set[Hashable],
            zeros_known: bool, threshold: int, opaque: set[Hashable] = frozenset()) -> _System:
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
    bounds = np.array([label_bounds(cells[keys[variable]], threshold, keys[variable] in opaque)
                       for variable in variables],
                      dtype=float).reshape(-1, 2)
    return _System(keys, relations, variables, equations, right, equation_rows, groups, contradictions,
                   bounds[:, 0], bounds[:, 1], set(opaque))


def audit_cells(cells: Mapping[Hashable, Cell], relations: Iterable[SumRelation], threshold: int,
                hidden: Iterable[Hashable] | None = None, zeros_known: bool = True,
                opaque: Iterable[Hashable] = ()) -> DisclosureAudit:
    """The feasible interval of every hidden cell given the others' values and `relations` (total = sum of parts),
    every count >= 0. `hidden`: the cells an attacker does not see (default: each cell's `hidden`, i.e. the
    suppression's decision and the unprinted cells). `zeros_known`: an unprinted zero counts as known (the ledger's
    convention: a reader who guesses that nothing lies outside a sum is right). `opaque`: the hidden cells whose
    "suppressed" label tells nothing (label_bounds).

    One sparse equation matrix over all cells; the unknown cells only are LP variables, in the groups the sums tie
    together."""
    hidden_keys = set(hidden) if hidden is not None else {key for key, cell in cells.items() if cell.hidden}
    opaque = set(opaque)
    system = _system(cells, relations, hidden_keys, zeros_known, threshold, opaque)
    audit = DisclosureAudit(threshold, contradictions=list(system.contradictions))
    for members, rows in system.groups:
        keys = [system.keys[system.variables[member]] for member in members]
        if not len(rows):  # in no sum: nothing but its label bounds it
            audit.intervals += [CellInterval(key, *label_bounds(cells[key], threshold, key in opaque),
                                             int(cells[key].value),
                                             threshold, labelled_small=cells[key].published and key not in opaque)
                                for key in keys]
            continue
        intervals, solves = _group_intervals(system.equations[rows][:, members], system.right[rows],
                                             system.lower[members], system.upper[members], keys,
                                             np.array([cells[key].value for key in keys]),
                                             np.array([cells[key].published and key not in opaque
                                                       for key in keys]), threshold,
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
                    hidden: Iterable[Hashable], zeros_known: bool = True, opaque: Iterable[Hashable] = ()
                    ) -> dict[Hashable, list[SumRelation]]:
    """The verdict of `audit_cells` without every interval: each disclosed small cell (upper bound below the
    threshold, and for a cell printed "<t" lower bound equal to it) with the sums that bind its upper bound (the
    equations whose dual value is not zero when the cell is maximised: loosening one of them is what can protect
    it). A first LP per group maximises the sum of min(cell, threshold) over its small cells: every cell that
    reaches the threshold there is safe, and only the others are maximised one by one (one HiGHS model per group,
    re-solved from the last basis; a cell that reaches the threshold in any solve needs no LP of its own)."""
    system = _system(cells, relations, set(hidden), zeros_known, threshold, set(opaque))
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
                if cells[keys[j]].published and keys[j] not in system.opaque:  # printed "<t": only when pinned
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

# The non-main results a repair withholds whole before it may hide a main cell, in the order it withholds them
# (the reverse of the order in which the sparing rule decides them): a sensitivity analysis first (it feeds nothing
# else), then a negative-control outcome's pair, then a control drug (the published controls calibrate the main
# estimates, empirical_calibration.py: withholding one changes main numbers).
SENSITIVITY_ROWS, CONTROL_OUTCOME_ROWS, CONTROL_DRUG_ROWS = 0, 1, 2


@dataclass(frozen=True)
class WithholdableRows:
    """The rows of one non-main result, published or withheld together (StudyLedger.withholdable): `rank` its place
    in the order of withholding, `name` (sensitivity analysis, exposure), (exposure, control outcome) or (control
    drug, its outcomes...), and its rows in the ledger's frames."""

    rank: int
    name: tuple[str, ...]
    results: tuple[Hashable, ...] = ()  # indices of StudyLedger.results
    controls: tuple[Hashable, ...] = ()  # indices of StudyLedger.controls
    attrition: tuple[Hashable, ...] = ()  # indices of StudyLedger.attrition (a control drug's steps)

    def printings(self) -> set[tuple[str, Hashable]]:
        """Its rows as _printings names them: ("estimate", row id) and ("attrition", row index)."""
        return ({("estimate", row) for row in self.results}
                | {("estimate", (NEGATIVE_CONTROL, row)) for row in self.controls}
                | {("attrition", row) for row in self.attrition})


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

    def _control_exposure_rows(self) -> pd.Series:
        if self.results is None:
            return pd.Series(dtype=bool)
        if self.control_exposures is None:
            return pd.Series(False, index=self.results.index)
        return pd.Series(self.control_exposures, index=self.results.index).fillna(False).astype(bool)

    def _sensitivity_rows(self) -> pd.Series:
        if self.results is None:
            return pd.Series(dtype=bool)
        if "sensitivity_analysis" not in self.results:
            return pd.Series(False, index=self.results.index)
        return self.results["sensitivity_analysis"].notna()

    def _control_drug_steps(self) -> pd.Series:
        """The attrition rows of the control drugs (published and withheld with the drug's rows)."""
        controls = self._control_exposure_rows()
        drugs = set(self.results.loc[controls, "exposure"]) if controls.any() else set()
        return self.attrition["exposure"].isin(drugs) if not self.attrition.empty \
            else pd.Series(False, index=self.attrition.index)

    def main_only(self) -> StudyLedger:
        """The ledger of the main analysis alone: its estimate rows and attrition, the outcome count, the cohort;
        no sensitivity-analysis row, no negative control (outcome or exposure). It is the same whether or not the
        study configures sensitivity analyses or controls, so what its audit decides is too."""
        secondary = self._sensitivity_rows() | self._control_exposure_rows()
        has_controls = self.controls is not None and not self.controls.empty
        if not secondary.any() and not has_controls:
            return self
        return StudyLedger(self.attrition[~self._control_drug_steps()],
                           None if self.results is None else self.results[~secondary], self.nested,
                           self.outcome_count, None, None, self.hidden_arms, None)

    def withholdable(self) -> list[WithholdableRows]:
        """The non-main results, each as the rows the sparing rule publishes or withholds together
        (analysis_attrition.suppress_study_counts_sparing_main): a sensitivity analysis's rows of one exposure (an
        exposure variant's rows go with the exposure they replace), a negative-control outcome's pair (the
        exposure and the control outcome), a control drug with its attrition."""
        units: list[WithholdableRows] = []
        if self.results is not None and not self.results.empty:
            sensitivity, drugs = self._sensitivity_rows(), self._control_exposure_rows()
            replaced = dict(self.varied_exposures or {})
            exposure_of = self.results["exposure"].map(lambda exposure: replaced.get(exposure, exposure))
            for (analysis, exposure), rows in self.results[sensitivity].groupby(
                    [self.results.loc[sensitivity, "sensitivity_analysis"], exposure_of[sensitivity]], sort=False):
                units.append(WithholdableRows(SENSITIVITY_ROWS, (str(analysis), str(exposure)),
                                              results=tuple(rows.index)))
            steps = self._control_drug_steps()
            for drug, rows in self.results[drugs].groupby("exposure", sort=False):
                units.append(WithholdableRows(
                    CONTROL_DRUG_ROWS, (str(drug), *dict.fromkeys(rows["outcome"].astype(str))),
                    results=tuple(rows.index),
                    attrition=tuple(self.attrition.index[steps & (self.attrition["exposure"] == drug)])))
        if self.controls is not None and not self.controls.empty:
            for pair, rows in self.controls.groupby(list(CONTROL_PAIR_COLUMNS), sort=False):
                units.append(WithholdableRows(CONTROL_OUTCOME_ROWS, tuple(str(part) for part in pair),
                                              controls=tuple(rows.index)))
        return units


# How each published table's rows are identified (the same rows as the ledger's frames), and its count columns.
SMALL_LABEL = "small label"  # _printed_values: whether a row marks a count small
_ATTRITION_ROW = ("exposure", "analysis_id", "step_order")
_ESTIMATE_ROW = ("exposure", "outcome", "analysis_id", "estimand", "sensitivity_analysis")
_CONTROL_ROW = ("exposure", "outcome", "analysis_id", "estimand")


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name || '.' || table_name = ?",
                       [table]).fetchall()[0][0] > 0


def _printed_values(con: duckdb.DuckDBPyConnection, table: str, study_id: str, frame: pd.DataFrame | None,
                    row_columns: Sequence[str], count_columns: Sequence[str]) -> dict[tuple[Hashable, str], float]:
    """(frame index, count column) -> the value the database prints there (NaN: NULL, or no such row); and
    (frame index, SMALL_LABEL) -> 1 when the row marks a count small (printed "<t"), 0 when not, NaN: no row."""
    if frame is None or frame.empty:
        return {}
    present = _table_exists(con, table)
    printed = con.execute(f"SELECT * FROM {table} WHERE study_id = ?", [study_id]).df() if present \
        else pd.DataFrame(columns=[*row_columns, *count_columns, "suppressed_columns"])
    printed[SMALL_LABEL] = (printed["suppressed_columns"].fillna("").astype(str) != "").astype(float)
    count_columns = [*count_columns, SMALL_LABEL]
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
    tables_printed = (_printed_values(con, tables.ANALYSIS_ATTRITION, study_id, ledger.attrition, _ATTRITION_ROW,
                                      ATTRITION_COUNT_COLUMNS),
                      _estimate_rows_printed(con, study_id, ledger.results),
                      _printed_values(con, tables.NEGATIVE_CONTROL_ESTIMATES, study_id, ledger.controls,
                                      _CONTROL_ROW, ESTIMATE_COUNT_COLUMNS))
    for positions, values in (
            (counts.attrition_cells, tables_printed[0]),
            ({position: key for position, key in counts.result_cells.items()
              if not (isinstance(position[0], tuple) and position[0][0] == NEGATIVE_CONTROL)}, tables_printed[1]),
            ({(position[0][1], position[1]): key for position, key in counts.result_cells.items()
              if isinstance(position[0], tuple) and position[0][0] == NEGATIVE_CONTROL}, tables_printed[2])):
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
    known |= _printed_by_table1(con, study_id, counts)
    opaque = _opaque_cells(counts, known, _opaque_printed_rows(ledger, *tables_printed))
    hidden = _unknown_cells(counts, known, threshold)
    audit = audit_cells(cells, counts.ledger.relations, threshold, hidden=hidden, opaque=opaque)
    audit.contradictions[:0] = contradictions
    return audit


def _opaque_printed_rows(ledger: StudyLedger, attrition: Mapping, results: Mapping, controls: Mapping
                         ) -> set[tuple[str, Hashable]]:
    """The ledger's rows that the database prints without any count and without a "<t" (label_bounds), named as
    _printings names them; `attrition`, `results`, `controls`: _printed_values of the three tables."""
    opaque: set[tuple[str, Hashable]] = set()
    for table, frame, values, columns, row_id in (
            ("attrition", ledger.attrition, attrition, ATTRITION_COUNT_COLUMNS, lambda index: index),
            ("estimate", ledger.results, results, ESTIMATE_COUNT_COLUMNS, lambda index: index),
            ("estimate", ledger.controls, controls, ESTIMATE_COUNT_COLUMNS, lambda index: (NEGATIVE_CONTROL, index))):
        if frame is None or frame.empty:
            continue
        for index in frame.index:
            shown = any(not math.isnan(values.get((index, column), math.nan)) for column in columns)
            if not shown and values.get((index, SMALL_LABEL), math.nan) != 1.0:
                opaque.add((table, row_id(index)))
    return opaque


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
# Protecting what the audit finds: main chains by main complements, the others by withholding non-main rows
# ---------------------------------------------------------------------------------------------------------------

# Rounds of added complements before giving up (each round hides one more cell per disclosed cell).
PROTECTION_ROUNDS = 30


def _opaque_cells(counts: StudyCounts, known: set[Hashable], opaque_rows: set[tuple[str, Hashable]]
                  ) -> set[Hashable]:
    """The hidden cells whose every printing is in a row that prints no count and no "<t" (label_bounds)."""
    where = _printings(counts)
    return {key for key, printings in where.items()
            if key not in known and printings and all((table, row) in opaque_rows for table, row, _ in printings)}


def _opaque_attrition_rows(published: pd.DataFrame, original: pd.DataFrame) -> set[tuple[str, Hashable]]:
    """The rows of a published attrition frame that print none of their counts and mark none small."""
    if original.empty:
        return set()
    columns = [column for column in ATTRITION_COUNT_COLUMNS if column in original]
    shown = published.loc[original.index, columns].notna() & original[columns].notna()
    labelled = published.loc[original.index, "suppressed_columns"].fillna("").astype(str) != ""
    return {("attrition", index) for index in original.index[~shown.any(axis=1) & ~labelled]}


def _planned_printing(counts: StudyCounts, suppression: StudySuppression, ledger: StudyLedger,
                      threshold: int) -> tuple[set[Hashable], set[Hashable], set[Hashable]]:
    """What a suppression will print (before the tables are written, as publish_study_results writes them): the
    cells printed somewhere, the estimate rows with a hidden count (whose estimates are hidden already), and the
    hidden cells whose "suppressed" label tells nothing (printed only in rows that print no count and no "<t", as
    a row withheld whole: label_bounds)."""
    cells = counts.ledger.cells
    known: set[Hashable] = set()
    rows_hidden: set[Hashable] = set()
    for (index, column), key in counts.attrition_cells.items():
        if key is not None and not pd.isna(suppression.attrition.at[index, column]):
            known.add(key)
    flagged: dict[Hashable, dict[str, bool]] = {}
    for (row, column), key in counts.result_cells.items():
        control = isinstance(row, tuple) and row[0] == NEGATIVE_CONTROL
        flags = (suppression.control_complementary if control else suppression.result_complementary).get(column)
        index = row[1] if control else row
        flagged.setdefault(row, {})[column] = bool(flags is not None and flags.get(index, False))
    opaque_rows = _opaque_attrition_rows(suppression.attrition, ledger.attrition)
    for row, columns in flagged.items():
        whole = all(columns.values())  # withheld whole: its small counts print "suppressed" (suppress_estimates)
        small = {column: is_small(cells[counts.result_cells[(row, column)]].value, threshold) for column in columns}
        for column, hidden in columns.items():
            if not (hidden or small[column]):
                known.add(counts.result_cells[(row, column)])
        if any(columns.values()) or any(small.values()):
            rows_hidden.add(row)
        if whole or (all(columns[c] or small[c] for c in columns) and not any(small.values())):
            opaque_rows.add(("estimate", row))
    if OUTCOME_COUNT in cells and suppression.outcome_count_suppression is None:
        known.add(OUTCOME_COUNT)
    return known, rows_hidden, _opaque_cells(counts, known, opaque_rows)


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


def _withhold_attrition_row(frame: pd.DataFrame, index: Hashable) -> int:
    """Every count of one attrition row hidden (as complementary: nothing of a withheld row is printed); returns the
    published numbers this hides."""
    lost = 0
    for column in ATTRITION_COUNT_COLUMNS:
        if column in frame and not pd.isna(frame.at[index, column]):
            lost += 1
            frame.at[index, column] = None
            listed = frame.at[index, "complementary_columns"]
            frame.at[index, "complementary_columns"] = ",".join(filter(None, (listed, column)))
            frame.at[index, "suppressed"] = True
    return lost


def _withhold_estimate_row(suppression: StudySuppression, row: Hashable, own_group: bool,
                           numbers: int = 0) -> int:
    """Every count of one estimate row hidden as complementary (its estimates go with them, suppress_estimates).
    `own_group=False` takes the row out of the ledger's rows, as the sparing rule does with the rows it withholds
    (_with_withheld): nothing of it is printed. Returns the published numbers this hides (its counts not hidden
    yet, and its `numbers` of estimates when no count of it was hidden before; a small count is not counted)."""
    control = isinstance(row, tuple) and row[0] == NEGATIVE_CONTROL
    flags = suppression.control_complementary if control else suppression.result_complementary
    index = row[1] if control else row
    before = [bool(flags[column].at[index]) for column in ESTIMATE_COUNT_COLUMNS]
    for column in ESTIMATE_COUNT_COLUMNS:
        flags[column].at[index] = True
    covered = suppression.control_ledger_rows if control else suppression.ledger_rows
    if covered is not None and not own_group:
        covered.at[index] = False
    return before.count(False) + (0 if any(before) else numbers)


def _withhold(suppression: StudySuppression, unit: WithholdableRows, counts: StudyCounts) -> None:
    """A non-main result withheld whole, as the sparing rule withholds it: every count of its rows (and of a
    control drug's attrition) hidden, recorded for the run's notes and in `numbers_lost`."""
    for row in (*unit.results, *((NEGATIVE_CONTROL, row) for row in unit.controls)):
        suppression.numbers_lost += _withhold_estimate_row(suppression, row, own_group=False,
                                                           numbers=counts.row_numbers.get(row, 0))
    for row in unit.attrition:
        suppression.numbers_lost += _withhold_attrition_row(suppression.attrition, row)
    if unit.rank == SENSITIVITY_ROWS:
        suppression.withheld_sensitivity_rows += len(unit.results)
    elif unit.rank == CONTROL_OUTCOME_ROWS:
        suppression.withheld_control_pairs.append(unit.name)
    else:
        suppression.withheld_control_pairs += [(unit.name[0], outcome) for outcome in unit.name[1:]]


def _disclosed(counts: StudyCounts, suppression: StudySuppression, ledger: StudyLedger, threshold: int
               ) -> tuple[dict[Hashable, list[SumRelation]], set[Hashable], set[Hashable]]:
    """What the audit finds in the suppression as planned: each disclosed cell with its binding sums, the cells
    printed somewhere, and the estimate rows with a hidden count."""
    known, rows_hidden, opaque = _planned_printing(counts, suppression, ledger, threshold)
    return (disclosing_sums(counts.ledger.cells, counts.ledger.relations, threshold,
                            _unknown_cells(counts, known, threshold), opaque=opaque), known, rows_hidden)


def _protect_main(suppression: StudySuppression, ledger: StudyLedger, threshold: int) -> list[SumRelation]:
    """The main analysis's own chains (`ledger`: StudyLedger.main_only), protected by hiding main cells: the
    complementary suppression of a table against the audit of its linked sums (Hundepool et al. 2012, ch. 4).
    For each disclosed cell, the cheapest printed non-zero cell of its binding sums is hidden (the least published
    numbers lost, cells printed by the cohort stage never); when a binding sum holds no such cell but a printed
    zero, the rows printing that zero are withheld whole (a zero is never a complement: only a row whose every
    count is hidden can hide one). Returns the binding sums of the cells left disclosed: made only of cells
    that must be published (the cohort size and the cohort per arm, printed by the cohort stage) and of hidden
    cells."""
    counts = ledger.counts()
    cells = counts.ledger.cells
    where = _printings(counts)
    left: dict[Hashable, list[SumRelation]] = {}
    for _ in range(PROTECTION_ROUNDS):
        disclosed, known, rows_hidden = _disclosed(counts, suppression, ledger, threshold)
        hides: set[Hashable] = set()
        withheld_rows: set[tuple[str, Hashable]] = set()
        left = {}
        for key, binding in disclosed.items():
            chain = {cell for relation in binding for cell in relation.keys if cell in known}
            hideable = {cell for cell in chain if cells[cell].value > 0
                        and (cell == OUTCOME_COUNT or not cells[cell].fixed)}
            if hideable:
                if not hideable & hides:
                    hides.add(min(hideable, key=lambda cell: (
                        _numbers_lost_by_hiding(counts, ledger, where.get(cell, []), cell, rows_hidden),
                        cells[cell].value, repr(cell))))
                continue
            zeros = sorted(((table, row) for cell in chain if cells[cell].value == 0 and not cells[cell].fixed
                            for table, row, _ in where.get(cell, [])), key=repr)
            if zeros:
                withheld_rows.add(zeros[0])
            else:
                left[key] = binding
        if not hides and not withheld_rows:
            break
        for key in hides:
            suppression.numbers_lost += _numbers_lost_by_hiding(counts, ledger, where.get(key, []), key, rows_hidden)
            _hide(suppression, where.get(key, []), key)
        for table, row in withheld_rows:
            suppression.numbers_lost += (
                _withhold_attrition_row(suppression.attrition, row) if table == "attrition" else
                _withhold_estimate_row(suppression, row, own_group=True, numbers=counts.row_numbers.get(row, 0)))
            suppression.withheld_main_rows += 1
    else:  # still disclosed after every round
        left, _, _ = _disclosed(counts, suppression, ledger, threshold)
    return [relation for binding in left.values() for relation in binding]


def _protect_by_withholding(suppression: StudySuppression, ledger: StudyLedger, threshold: int
                            ) -> list[SumRelation]:
    """The chains through non-main rows (`ledger`: the whole study's), protected by withholding non-main results
    whole (StudyLedger.withholdable), never by hiding a main cell: for each disclosed cell, one result that prints
    a cell of its binding sums, a result printing a cell the reader sees before one whose cells are hidden
    already, in the order of SENSITIVITY_ROWS .. CONTROL_DRUG_ROWS, the smallest first. Returns the binding sums
    of the cells left disclosed with no such result left to withhold."""
    counts = ledger.counts()
    where = _printings(counts)
    units = ledger.withholdable()
    unit_of = {printing: unit for unit in units for printing in unit.printings()}
    withheld: set[WithholdableRows] = set()
    left: dict[Hashable, list[SumRelation]] = {}
    for _ in range(PROTECTION_ROUNDS):
        disclosed, known, _ = _disclosed(counts, suppression, ledger, threshold)
        chosen: set[WithholdableRows] = set()
        left = {}
        for key, binding in disclosed.items():
            seen: dict[WithholdableRows, bool] = {}
            for cell in {cell for relation in binding for cell in relation.keys}:
                for table, row, _ in where.get(cell, []):
                    unit = unit_of.get((table, row))
                    if unit is not None and unit not in withheld:
                        seen[unit] = seen.get(unit, False) or cell in known
            if not seen:
                left[key] = binding
            elif not chosen & set(seen):
                chosen.add(min(seen, key=lambda unit: (not seen[unit], unit.rank,
                                                       len(unit.results) + len(unit.controls), unit.name)))
        if not chosen:
            break
        for unit in sorted(chosen, key=lambda unit: (unit.rank, unit.name)):
            _withhold(suppression, unit, counts)
        withheld |= chosen
    else:
        left, _, _ = _disclosed(counts, suppression, ledger, threshold)
    return [relation for binding in left.values() for relation in binding]


def protect_derivable_counts(suppression: StudySuppression, ledger: StudyLedger,
                             threshold: int) -> StudySuppression:
    """`suppression` (analysis_attrition.suppress_study_counts_sparing_main) repaired until the audit finds no small
    count disclosed (docs/disclosure.md, "Repair"). The greedy choice sees one sum at a time; a chain of sums with
    two unknown cells each (the outcome count hidden, but pinned by the exposures' events) can still bound a small
    count below the threshold. The repair keeps the sparing rule's promise, that the main analysis publishes the
    same numbers whether or not the study has sensitivity analyses or negative controls:
    1. the main analysis's ledger alone (StudyLedger.main_only) is audited and repaired by hiding main cells
       (_protect_main): the same ledger, so the same cells, in every configuration;
    2. the whole study's ledger is then audited, and a chain through non-main rows is broken by withholding a
       non-main result whole (_protect_by_withholding), as the sparing rule withholds one; never a main cell.
    Each step audits again after each round of changes. The binding sums of a cell still disclosed at the end
    (nothing left to hide or withhold in them) are added to `suppression.unprotected`: the run notes report them,
    and the blocking check no_small_count_derivable then stops the run before anything is published."""
    main = ledger.main_only()
    suppression.unprotected += _protect_main(suppression, main, threshold)
    if main is not ledger:
        suppression.unprotected += _protect_by_withholding(suppression, ledger, threshold)
    return suppression
