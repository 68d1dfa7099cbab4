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
"suppressed" in a row that prints another count or a "<t" is at least t and a count printed "<t" at least 1
(`label_bounds`; in a row withheld whole it may be anything), and Table 1's counts and sums as results.table1
prints them (Table1Cells, tied to the cohort cells it prints). Not modelled: the upper end of the "<t" labels as LP
bounds (the verdict accounts for it), estimates and
intervals that recompute a count (their whole row is hidden with any of its counts, suppress_estimates; a test
checks the published tables), and any relation not declared in the ledger.

Used twice (docs/disclosure.md, "Audit"): `protect_derivable_counts` repairs the suppression before the tables are
written (a main complement for a chain of the main analysis alone, a non-main result withheld whole for any other
chain, audited again), and the blocking check
`no_small_count_derivable` (statistics/checks.py) audits the tables as written (`audit_published_study`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from pipelines import tables
from pipelines.cohorts.build import query, study_parameters
from pipelines.cohorts.study import StudyDefinition
from pipelines.cohorts.table1 import opaque_cells, table1_cells, told_small
from pipelines.disclosure import (
    COMPLEMENTARY,
    SMALL_CELL,
    TOLERANCE,
    Cell,
    CellInterval,
    DisclosureAudit,
    SumRelation,
    CountLedger,
    audit_cells,
    describe_cell,
    disclosing_sums,
    is_small,
)
from pipelines.engine import as_engine
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


# Table 1's cells in a study's ledger: (TABLE1, *Table 1's own key), e.g. (TABLE1, "level", "statins", "true", "overall").
TABLE1 = "table 1"


@dataclass
class Table1Cells:
    """Table 1's counts as cells of the study's ledger (docs/disclosure.md, "Table 1"): every count Table 1 prints or
    hides, and the ones it never prints (the persons without a yes/no condition, with a value), with their true
    values; its sums (per group, n = levels + missing + the unprinted counts; per count, overall = the two groups);
    and how it printed each (`suppression`, as results.table1 holds it). Its cells are fixed for the statistics
    stage (the cohort stage printed them), and tied to the ledger's cohort cells Table 1 prints: the cohort size
    (its overall n), each yes/no exposure's holders (the exposed arm at the cohort step) and the groups of the
    variable it is split by (the arms of that exposure, or of every time at risk of a new-user comparison)."""

    cells: dict[tuple, Cell]
    relations: list[SumRelation]
    groups: tuple[str, ...]  # the split's two groups (exposed, unexposed or target, comparator); () unsplit
    split_exposure: str | None  # the exposure whose arms the groups are, or a new-user comparison's name
    split_by_treatment: bool  # a new-user comparison: every time at risk of it ("<target> vs <comparator>...")

    @staticmethod
    def key(key: tuple) -> tuple:
        return (TABLE1, *key)

    def add_to(self, ledger: CountLedger) -> None:
        """Table 1's cells and sums into `ledger`, each cohort cell it prints tied to the ledger's (the same count
        printed twice: an equation of one part), where the two hold the same value."""
        for key, cell in self.cells.items():
            ledger.count(self.key(key), cell.value, published=cell.published, fixed=True)
        for relation in self.relations:
            ledger.add_sum(self.key(relation.total), tuple(self.key(part) for part in relation.parts))
        arms = dict(zip(("exposed", "unexposed"), self.groups))
        for key in list(ledger.cells):
            if not (isinstance(key, tuple) and len(key) == 5 and key[0] == MAIN and key[3] == "persons"
                    and key[2] == (PRINTED_BY_THE_COHORT_STAGE,)):
                continue
            exposure, arm = key[1], key[4]
            if arm == "both":
                printed = ("n", "overall")
            elif self.split_exposure is not None and arm in arms and (
                    exposure == self.split_exposure
                    or (self.split_by_treatment and str(exposure).startswith(self.split_exposure))):
                printed = ("n", arms[arm])
            elif arm == "exposed":
                printed = ("level", exposure, "true", "overall")
            else:
                continue
            if printed in self.cells and self.cells[printed].value == ledger.cells[key].value:
                ledger.add_sum(key, (self.key(printed),))

    def printing(self, printed: Mapping[tuple, str | None] | None = None
                 ) -> tuple[set[tuple], set[tuple], set[tuple]]:
        """What a reader of Table 1 knows, as the audit takes it: the cells it prints, those whose "suppressed"
        label tells nothing (cohorts.table1.opaque_cells) and those a label says are small (told_small). Its "<t"
        labels bound their counts from below by 1 here, as the ledger's own do (disclosure.label_bounds), and not
        from above: as upper bounds, a cohort arm Table 1 prints "<t" would bound every count of persons inside it
        below t, which its label already tells; Table 1's own audit takes both ends (cohorts.table1.protect_table1). `printed`: Table 1's key -> its
        `suppression` as a table prints it (default: as built)."""
        cells = {key: Cell(cell.value, cell.published, cell.suppression if printed is None else
                           printed.get(key, SMALL_CELL if cell.published else cell.suppression), fixed=cell.fixed)
                 for key, cell in self.cells.items()}
        known = {self.key(key) for key, cell in cells.items() if not cell.hidden}
        return (known, {self.key(key) for key in opaque_cells(cells, self.relations)},
                {self.key(key) for key in told_small(cells)})


def table1_cells_of(con: duckdb.DuckDBPyConnection, study: StudyDefinition,
                    aggregates: list[dict] | None = None) -> Table1Cells | None:
    """Table 1's cells of a study as the cohort stage printed them: the true counts from the cohort tables
    (`aggregates`, default sql/cohorts/table1_aggregates.sql run again, as the cohort stage computes them) and each
    count's suppression read back from results.table1. None before Table 1 exists."""
    if not _table_exists(con, tables.TABLE1):
        return None
    groups = ("overall", *(study.table1_groups or ()))
    if aggregates is None:
        aggregates = query(as_engine(con), "table1_aggregates", study_parameters(study))
    cells, relations = table1_cells(aggregates, list(groups), study.threshold)
    printed = _table1_printed(con, study.id)
    for key, cell in cells.items():
        if cell.published:
            cell.suppression = printed.get(key, SMALL_CELL)
    split = {"treatment": f"{study.index.target} vs {study.index.comparator}" if study.is_new_user else None,
             "variable": study.table1_by, "none": None}[study.table1_split]
    return Table1Cells(cells, relations, tuple(groups[1:]), split, study.table1_split == "treatment")


def _table1_printed(con: duckdb.DuckDBPyConnection, study_id: str) -> dict[tuple, str | None]:
    """Table 1's key -> how results.table1 prints the count (None: printed; SMALL_CELL; COMPLEMENTARY)."""
    if not _table_exists(con, tables.TABLE1):
        return {}
    rows = con.execute(f"""SELECT variable, level, "group", statistic, suppression FROM {tables.TABLE1}
                           WHERE study_id = ? AND statistic IN ('n', 'n_pct', 'missing')""", [study_id]).fetchall()
    return {(("n", group) if statistic == "n" else ("level", variable, level, group) if statistic == "n_pct"
             else ("missing", variable, group)): suppression
            for variable, level, group, statistic, suppression in rows}


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
    table1: Table1Cells | None = None  # Table 1's counts, tied to the cohort cells it prints (table1_cells_of)
    _counts: StudyCounts | None = field(default=None, init=False, repr=False, compare=False)

    def counts(self) -> StudyCounts:
        """The ledger's cells and sums, built once (the repair and the blocking check audit the same ledger; the
        audit only reads them)."""
        if self._counts is None:
            self._counts = study_counts(self.attrition, self.results, self.nested, self.outcome_count, self.controls,
                                        self.varied_exposures, self.hidden_arms)
            if self.table1 is not None:
                self.table1.add_to(self._counts.ledger)
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
                           self.outcome_count, None, None, self.hidden_arms, None, self.table1)

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
    contradictions = [f"{describe_cell(key)}: a printed value differs from the count the ledger holds"
                      for key, values in printed.items()
                      if any(not math.isnan(value) and abs(value - cells[key].value) > TOLERANCE
                             for value in values)]
    known = {key for key, values in printed.items() if any(not math.isnan(value) for value in values)}
    known |= _printed_by_table1(con, study_id, counts)
    opaque = _opaque_cells(counts, known, _opaque_printed_rows(ledger, *tables_printed))
    told: set[Hashable] = set()
    if ledger.table1 is not None:  # Table 1 as results.table1 prints it
        table1_known, table1_opaque, told = ledger.table1.printing(_table1_printed(con, study_id))
        known |= table1_known
        opaque |= table1_opaque
    hidden = _unknown_cells(counts, known, threshold)
    audit = audit_cells(cells, counts.ledger.relations, threshold, hidden=hidden, opaque=opaque, told_small=told)
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
    study population at index). Table 1's other counts and sums are cells of the ledger when it carries them
    (StudyLedger.table1, Table1Cells)."""
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
    placed |= {key for key in counts.ledger.cells if isinstance(key, tuple) and key[:1] == (TABLE1,)}
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
    """Every count of one attrition row hidden, as complementary: nothing of a withheld row is printed, and its
    small counts lose their "<t" too, so that no label tells one count from another (the row then bounds nothing:
    label_bounds; as suppress_estimates prints a row withheld whole). Returns the published numbers this hides."""
    lost = 0
    hidden = {*filter(None, str(frame.at[index, "complementary_columns"] or "").split(",")),
              *filter(None, str(frame.at[index, "suppressed_columns"] or "").split(","))}
    for column in ATTRITION_COUNT_COLUMNS:
        if column in frame and not pd.isna(frame.at[index, column]):
            lost += 1
            frame.at[index, column] = None
            hidden.add(column)
    if hidden:
        frame.at[index, "complementary_columns"] = ",".join(c for c in ATTRITION_COUNT_COLUMNS if c in hidden)
        frame.at[index, "suppressed_columns"] = None
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
    told: set[Hashable] = set()
    if ledger.table1 is not None:  # printed by the cohort stage already
        table1_known, table1_opaque, told = ledger.table1.printing()
        known |= table1_known
        opaque |= table1_opaque
    return (disclosing_sums(counts.ledger.cells, counts.ledger.relations, threshold,
                            _unknown_cells(counts, known, threshold), opaque=opaque, told_small=told),
            known, rows_hidden)


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
