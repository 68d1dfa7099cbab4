"""results.analysis_attrition, and the disclosure control of a study's published counts across its tables.

CohortMethod publishes an attrition table per analysis (getAttritionTable: the study population, then the persons
each step removes, e.g. "Have at least 1 days at risk", "Matched on propensity score"); this is that table, with the
reason the excluded persons left.

Its counts and those of results.associations are one set of cells for the small-cell rule (pipelines/disclosure.py,
CountLedger), tied by the sums a reader can form across the tables:
  - each arm's steps chain by subtraction (persons before = persons after + excluded), and the first step's two arms
    add up to the cohort size published in results.attrition;
  - an estimate's n_exposed and n_unexposed are the last step of its analysis's attrition: one cell, not two;
  - events: the events of a population are those of a sub-population (the matched, the sampled, the trimmed) plus
    those of the persons left out; events over the whole follow-up are those up to the risk horizon plus those
    after it; and a time at risk nested in another (on treatment within intention to treat: same cohort, follow-up
    censored earlier) has at most its persons and events, the difference being persons without a day on treatment
    and events after treatment ended.
  - the cohort's outcome count is each exposure's events of both arms plus the outcomes outside its follow-up;
  - a sensitivity analysis's and a negative control's persons are the main analysis's less those with a prior
    variant or control outcome (and a variant's events nest with the main events).
The differences are never printed, but a reader can form them, so a small one is protected like a small printed
count: enough printed cells are hidden that no subtraction gives it back. The complements are the cheapest cells
(the published numbers lost with them: an estimate row's count costs its estimates too); the cohort size and the
cohort per arm, printed by the cohort stage, are fixed (a time-varying analysis's arms, any exposed time or none,
are not printed there: not fixed); the outcome count, printed only after this decision, is
hidden when that is cheaper than the estimates it would otherwise cost (docs/disclosure.md). A cohort arm Table 1
hides (small, or as its complement) is the same count: hidden here too, with what gives it back.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from pipelines import tables
from pipelines.disclosure import COMPLEMENTARY, SMALL_CELL, SUPPRESSED_TEXT, CountLedger, small_cell_text
from pipelines.statistics.results import COHORT_STEP, DERIVED_COLUMNS

ANALYSIS_ATTRITION_TABLE = tables.ANALYSIS_ATTRITION
OUTCOME_COUNTS_TABLE = tables.OUTCOME_COUNTS
ARMS = ("exposed", "unexposed")
COUNT_COLUMNS = ("persons_exposed", "persons_unexposed", "excluded_exposed", "excluded_unexposed")
ESTIMATE_COUNT_COLUMNS = ("n_exposed", "n_unexposed", "events_exposed", "events_unexposed")
# Estimate rows whose events are counted up to the risk horizon (Kaplan-Meier and Aalen-Johansen risks), not over
# the whole follow-up.
HORIZON_ANALYSIS_PREFIXES = ("km_", "aj_")
FOLLOW_UP, HORIZON = "follow-up", "horizon"
# The cells of the main analysis's rows; a sensitivity analysis's rows are cells of their own, under its id.
MAIN = "main"
# Row ids of results.negative_control_estimates in the ledger: (NEGATIVE_CONTROL, index).
NEGATIVE_CONTROL = "negative control"
# The first attrition step whose arms the cohort stage prints (Table 1: the exposure's holders at index, or the
# groups of a new-user comparison), so fixed here. A time-varying analysis's first step splits the same cohort by
# any exposed time during follow-up: no earlier table prints those arms (the study report shows the steps after the
# first), so they are cells like any other; the cohort size they add up to stays fixed.
PRINTED_BY_THE_COHORT_STAGE = COHORT_STEP
# The cohort's persons with the outcome: one number, printed by the statistics stage once this ledger keeps it.
OUTCOME_COUNT = ("outcome count",)

# The weight of a sensitivity-analysis or negative-control row's numbers against the main analysis's when the ledger
# chooses complements (tau-ARGUS-style cost weights, Fischetti & Salazar-Gonzalez 2001): up to ten of them are hidden
# before one main number is.
SECONDARY_ROW_COST_WEIGHT = 0.1


@dataclass
class StudyCounts:
    """A study's published counts as cells: the ledger, and where each attrition and estimate cell is printed."""

    ledger: CountLedger = field(default_factory=CountLedger)
    attrition_cells: dict[tuple[Hashable, str], Hashable] = field(default_factory=dict)  # (row index, column)
    result_cells: dict[tuple[Hashable, str], Hashable] = field(default_factory=dict)
    # Per exposure, the attrition steps its analyses share. Analyses that split the cohort into other arms from the
    # first step (time-varying exposure: any exposed time or none) share steps only among themselves, so the paths
    # are grouped by their first step: (exposure, first step) -> shared steps.
    shared_paths: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # The estimate rows whose every count is a cell here, and the published numbers each row holds besides its
    # counts (estimates, intervals, person-years: hidden with any of its counts).
    ledger_rows: set[Hashable] = field(default_factory=set)
    row_numbers: dict[Hashable, int] = field(default_factory=dict)
    # (partition, exposure, "persons"/"events", kind, arm) -> path -> the estimate cells counted there
    cells_at: dict[tuple, dict[tuple[str, ...], list[Hashable]]] = field(default_factory=dict)


def _persons_key(partition: str, exposure: str, root: str, path: tuple[str, ...], arm: str) -> tuple:
    # The first step is the study population per arm: one cell for every time at risk analysed on it.
    return (partition, root if len(path) == 1 else exposure, path, "persons", arm)


def _events_key(partition: str, exposure: str, path: tuple[str, ...], kind: str, arm: str) -> tuple:
    return (partition, exposure, path, "events", kind, arm)


def study_counts(attrition: pd.DataFrame, results: pd.DataFrame | None = None,
                 nested: Sequence[tuple[str, str]] = (), outcome_count: int | None = None,
                 controls: pd.DataFrame | None = None,
                 varied_exposures: Mapping[str, str] | None = None,
                 hidden_arms: Mapping[tuple[str, str, str], str] | None = None) -> StudyCounts:
    """The cells and sums of a study's analysis attrition (study_analysis.attrition_frame) and estimates
    (study_analysis.results_frame, sensitivity rows included). `nested`: (outer, inner) exposures where inner is the
    same cohort as outer with follow-up censored earlier (StudyAnalysis.nested_exposures). `outcome_count`: the
    cohort's persons with the outcome (cohorts.attrition.cohort_counts), which the statistics stage prints only
    if the ledger keeps it. `controls`: the negative-control estimates (the primary analysis with each control as
    the outcome), whose rows are registered under (NEGATIVE_CONTROL, index). `varied_exposures`: variant exposure
    -> the exposure it replaces in a sensitivity analysis; the variant's rows are cells of the replaced exposure's
    population, tied to its main rows. `hidden_arms`: (exposure, first step, arm) -> how Table 1 hides that cohort
    arm (cohorts.table1.hidden_cohort_arms): the same count, so hidden here too."""
    counts = StudyCounts()
    ledger = counts.ledger
    root_of = {inner: outer for outer, inner in nested}
    final_path: dict[tuple[str, str], tuple[str, ...]] = {}
    paths_of: dict[str, list[tuple[str, ...]]] = {}
    for (analysis_id, exposure), rows in attrition.groupby(["analysis_id", "exposure"], sort=False):
        root = root_of.get(exposure, exposure)
        path: tuple[str, ...] = ()
        previous: dict[str, Hashable] = {}
        for index, row in rows.sort_values("step_order").iterrows():
            path = (*path, row["step"])
            # The cohort per arm is the study population the cohort stage describes (Table 1): never a complement.
            first = not previous
            printed_earlier = first and row["step"] == PRINTED_BY_THE_COHORT_STAGE
            current = {}
            for arm in ARMS:
                key = _persons_key(MAIN, exposure, root, path, arm)
                # A step of the same name with another count (not expected) is this analysis's own cell.
                remaining = (ledger.count(key, row[f"persons_{arm}"], cost=1, fixed=printed_earlier)
                             or ledger.count((*key, analysis_id), row[f"persons_{arm}"], cost=1,
                                             fixed=printed_earlier))
                current[arm] = remaining
                counts.attrition_cells[(index, f"persons_{arm}")] = remaining
                hidden = (hidden_arms or {}).get((exposure, row["step"], arm)) if first else None
                if hidden and remaining is not None:
                    ledger.hide_as_elsewhere(remaining, hidden)
                if previous:
                    key = (MAIN, exposure, path, "excluded", arm)
                    excluded = (ledger.count(key, row[f"excluded_{arm}"], cost=1)
                                or ledger.count((*key, analysis_id), row[f"excluded_{arm}"], cost=1))
                    counts.attrition_cells[(index, f"excluded_{arm}")] = excluded
                    ledger.add_sum(previous[arm], (remaining, excluded))
            if first:  # the cohort: its size is published in results.attrition
                total = ledger.count((MAIN, root, path, "persons", "both"),
                                     int(row["persons_exposed"]) + int(row["persons_unexposed"]), fixed=True)
                ledger.add_sum(total, (current["exposed"], current["unexposed"]))
            previous = current
        final_path[(exposure, analysis_id)] = path
        paths_of.setdefault(exposure, []).append(path)
    for exposure, paths in paths_of.items():
        for first_step in dict.fromkeys(path[0] for path in paths):
            counts.shared_paths[(exposure, first_step)] = _common_prefix(
                [path for path in paths if path[0] == first_step])
    if results is not None and not results.empty:
        _estimate_cells(counts, results, final_path, root_of, varied_exposures=varied_exposures or {})
    if controls is not None and not controls.empty:
        _estimate_cells(counts, controls, final_path, root_of, control_rows=True)
    _nested_relations(counts, nested)
    if outcome_count is not None:
        _outcome_relations(counts, int(outcome_count))
    return counts


def _common_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    prefix = paths[0]
    for path in paths[1:]:
        length = 0
        while length < min(len(prefix), len(path)) and prefix[length] == path[length]:
            length += 1
        prefix = prefix[:length]
    return prefix


def _present(value) -> bool:
    return value is not None and not pd.isna(value)


def _kind(analysis_id) -> str:
    return HORIZON if str(analysis_id).startswith(HORIZON_ANALYSIS_PREFIXES) else FOLLOW_UP


def _estimate_cells(counts: StudyCounts, results: pd.DataFrame, final_path: dict[tuple[str, str], tuple[str, ...]],
                    root_of: dict[str, str], control_rows: bool = False,
                    varied_exposures: Mapping[str, str] | None = None) -> None:
    """Each estimate's persons are the last attrition step of its analysis (the same cell); its events are a cell
    of that population, shared by the analyses that count the same events there. A sensitivity analysis's rows
    (the same analyses with the outcome replaced by a variant) are cells of their own, tied the same way among
    themselves, and each to the main analysis's same cell. `control_rows`: negative-control estimates, each
    control's rows a partition of their own whose persons (the main analysis's less those with a prior control
    outcome) are tied to the main analysis's; their events count another outcome, tied to nothing."""
    ledger = counts.ledger
    derived = [column for column in DERIVED_COLUMNS if column in results.columns]
    # (partition, exposure, what, kind, arm) -> path -> the cells counted there
    cells_at = counts.cells_at
    # the columns read here as plain dicts: a pandas Series per row of every column (iterrows) was most of the
    # time of the ledger's construction, which the sparing rule repeats for every trial
    read = [column for column in ("exposure", "outcome", "analysis_id", "sensitivity_analysis",
                                  *ESTIMATE_COUNT_COLUMNS, *derived) if column in results.columns]
    for position, row in zip(results.index, results[read].to_dict("records")):
        index = (NEGATIVE_CONTROL, position) if control_rows else position
        variant = row.get("sensitivity_analysis")
        # An exposure variant's rows split the replaced exposure's population another way: its cells.
        exposure = (varied_exposures or {}).get(row["exposure"], row["exposure"]) if _present(variant) \
            else row["exposure"]
        path = final_path.get((exposure, row["analysis_id"]))
        if path is None:  # no attrition (sequence symmetry): the row's own rule in suppress_estimates
            continue
        partition = (f"{NEGATIVE_CONTROL} {row['outcome']}" if control_rows
                     else variant if _present(variant) else MAIN)
        kind = _kind(row["analysis_id"])
        # Hiding one count of the row hides the row's estimates with it (suppress_estimates): what that costs. A
        # sensitivity analysis's or a negative control's numbers weigh less than the main analysis's, so a small
        # difference between a variant and its main row hides the variant's row, not the main one.
        counts.row_numbers[index] = sum(_present(row[column]) for column in derived)
        cost = (1 + counts.row_numbers[index]) * (1.0 if partition == MAIN else SECONDARY_ROW_COST_WEIGHT)
        for arm in ARMS:
            for column, key, what in (
                    (f"n_{arm}", _persons_key(partition, exposure, root_of.get(exposure, exposure), path, arm),
                     ("persons", None)),
                    (f"events_{arm}", _events_key(partition, exposure, path, kind, arm), ("events", kind))):
                if not _present(row[column]):
                    continue
                cell = ledger.count(key, row[column], cost=cost)
                if cell is None:  # another count than the population's shared one: this analysis's own cell
                    cell = ledger.count((*key, row["analysis_id"]), row[column], cost=cost)
                counts.result_cells[(index, column)] = cell
                cells_at.setdefault((partition, exposure, *what, arm), {}).setdefault(path, []).append(cell)
        counts.ledger_rows.add(index)
    for (partition, exposure, what, kind, arm), by_path in cells_at.items():
        for outer_path, outers in by_path.items():
            # The main analysis's persons chain through its published attrition steps already.
            for inner_path, inners in (by_path.items() if partition != MAIN or what == "events" else ()):
                nested_path = len(inner_path) > len(outer_path) and inner_path[:len(outer_path)] == outer_path
                for outer in outers:
                    for inner in inners:
                        if nested_path or (inner_path == outer_path and inner != outer
                                           and ledger.cells[inner].value < ledger.cells[outer].value):
                            ledger.add_difference(outer, inner, ("left out", outer, inner))
            if what == "events" and kind == HORIZON:
                for follow_up in cells_at.get((partition, exposure, what, FOLLOW_UP, arm), {}).get(outer_path, []):
                    for horizon in outers:
                        ledger.add_difference(follow_up, horizon, ("after the horizon", follow_up, horizon))
            if partition != MAIN and not (control_rows and what == "events"):
                main = cells_at.get((MAIN, exposure, what, kind, arm), {}).get(outer_path, [])
                for cell in outers:
                    for main_cell in main:
                        larger, smaller = ((main_cell, cell) if ledger.cells[main_cell].value
                                           >= ledger.cells[cell].value else (cell, main_cell))
                        ledger.add_difference(larger, smaller, ("sensitivity difference", larger, smaller))


def _first_group(counts: StudyCounts, exposure: str) -> tuple[str, str] | None:
    """The (exposure, first step) group of an exposure's analyses that starts at the cohort (the first listed)."""
    return next((key for key in counts.shared_paths if key[0] == exposure), None)


def _nested_relations(counts: StudyCounts, nested: Sequence[tuple[str, str]]) -> None:
    """A time at risk nested in another (same cohort, follow-up censored earlier) has, on every step all its
    analyses share, at most the other's persons and events: the difference is a count of persons a reader can form."""
    ledger = counts.ledger
    for outer, inner in nested:
        shared = _common_prefix([counts.shared_paths.get(_first_group(counts, outer), ()),
                                 counts.shared_paths.get(_first_group(counts, inner), ())])
        for key in list(ledger.cells):
            if not (isinstance(key, tuple) and len(key) in (5, 6) and key[1] == inner):
                continue
            path = key[2]
            if len(path) < 2 or path != shared[:len(path)] or key[3] not in ("persons", "events"):
                continue
            outer_key = (key[0], outer, *key[2:])
            if outer_key in ledger.cells:
                ledger.add_difference(outer_key, key, ("nested", outer_key, key))


def _outcome_relations(counts: StudyCounts, outcome_count: int) -> None:
    """The cohort's persons with the outcome = each exposure's events of both arms over the follow-up of everyone
    with time at risk + the outcomes outside that follow-up (e.g. an unexposed person's after they start the
    exposure and are censored): the last a reader gets by subtraction. The outcome count costs one published
    number (the statistics stage prints it in its log, its metadata and results.outcome_counts)."""
    ledger = counts.ledger
    total = ledger.count(OUTCOME_COUNT, outcome_count, cost=1)
    for (exposure, first_step), shared in counts.shared_paths.items():
        arms = [_events_key(MAIN, exposure, shared, FOLLOW_UP, arm) for arm in ARMS]
        if not all(key in ledger.cells for key in arms):
            continue
        outside = outcome_count - sum(ledger.cells[key].value for key in arms)
        if outside < 0:
            continue
        key = ledger.count(("outcomes outside the follow-up", exposure, first_step), outside, published=False)
        ledger.add_sum(total, (*arms, key))


def _numbers_lost(counts: StudyCounts) -> int:
    """The published numbers a suppression of the ledger withholds: every hidden count of an estimate row and the
    estimates that go with it, every hidden attrition count, and the outcome count."""
    ledger = counts.ledger
    hidden = [index for (index, _), key in counts.result_cells.items() if ledger.suppression(key) is not None]
    lost = len(hidden) + sum(counts.row_numbers.get(index, 0) for index in set(hidden))
    lost += sum(ledger.suppression(key) is not None for key in counts.attrition_cells.values())
    return lost + (OUTCOME_COUNT in ledger.cells and ledger.suppression(OUTCOME_COUNT) is not None)


@dataclass
class StudySuppression:
    """The published analysis attrition, the estimate cells hidden to protect a count of another table, the rows
    the ledger covers, and the suppression of the cohort's outcome count (None: it may be printed)."""

    attrition: pd.DataFrame
    result_complementary: dict[str, pd.Series]
    ledger_rows: pd.Series | None = None
    outcome_count_suppression: str | None = None
    numbers_lost: int = 0
    unprotected: list = field(default_factory=list)
    # the same for results.negative_control_estimates
    control_complementary: dict[str, pd.Series] = field(default_factory=dict)
    control_ledger_rows: pd.Series | None = None
    # sensitivity-analysis rows withheld whole because publishing them would hide main-analysis numbers
    withheld_sensitivity_rows: int = 0
    # negative-control (exposure, outcome) pairs withheld whole for the same reason
    withheld_control_pairs: list[tuple] = field(default_factory=list)
    # main estimate or attrition rows withheld whole by the audit's repair (a binding printed zero, nothing else to
    # hide: disclosure_audit._protect_main)
    withheld_main_rows: int = 0


def _suppress_cheapest(counts: StudyCounts, threshold: int) -> list:
    """The ledger suppressed at the least cost: the greedy choice (suppress_cells) is made twice, once free to hide
    the cohort's outcome count (one number, but hiding it can cost a complement in every sum that would give it
    back) and once keeping it; the one that withholds fewer published numbers is kept (ties keep the count)."""
    ledger = counts.ledger
    if OUTCOME_COUNT not in ledger.cells:
        return ledger.suppress(threshold)
    outcome = ledger.cells[OUTCOME_COUNT]
    outcome.fixed = False
    free = ledger.suppress(threshold)
    free_cost = (_numbers_lost(counts), len(free))
    outcome.fixed = True
    kept = ledger.suppress(threshold)
    if (_numbers_lost(counts), len(kept)) <= free_cost:
        return kept
    outcome.fixed = False
    return ledger.suppress(threshold)


def suppress_study_counts(attrition: pd.DataFrame, results: pd.DataFrame | None, threshold: int,
                          nested: Sequence[tuple[str, str]] = (), outcome_count: int | None = None,
                          controls: pd.DataFrame | None = None,
                          varied_exposures: Mapping[str, str] | None = None,
                          hidden_arms: Mapping[tuple[str, str, str], str] | None = None) -> StudySuppression:
    """The small-cell rule over a study's analysis attrition and estimates together: the attrition frame with
    every small count, and every count that would give one away, set to NULL and listed in
    suppressed_columns/complementary_columns; per count column of `results`, the rows whose count is hidden
    to protect a count elsewhere (for suppress_estimates); and whether the outcome count may be printed."""
    counts = study_counts(attrition, results, nested, outcome_count, controls, varied_exposures, hidden_arms)
    unprotected = _suppress_cheapest(counts, threshold)
    published = attrition.copy()
    for column in COUNT_COLUMNS:
        published[column] = published[column].astype(object)
    published["suppressed_columns"] = None
    published["complementary_columns"] = None
    published["suppressed"] = False
    for index in published.index:
        status = {column: counts.ledger.suppression(counts.attrition_cells.get((index, column)))
                  for column in COUNT_COLUMNS}
        small = [column for column in COUNT_COLUMNS if status[column] == SMALL_CELL]
        complementary = [column for column in COUNT_COLUMNS if status[column] == COMPLEMENTARY]
        for column in (*small, *complementary):
            published.at[index, column] = None
        published.at[index, "suppressed_columns"] = ",".join(small) or None
        published.at[index, "complementary_columns"] = ",".join(complementary) or None
        published.at[index, "suppressed"] = bool(small or complementary)
    result_complementary, ledger_rows = _row_suppression(counts, results, lambda index: index)
    control_complementary, control_ledger_rows = _row_suppression(counts, controls,
                                                                  lambda index: (NEGATIVE_CONTROL, index))
    return StudySuppression(published, result_complementary, ledger_rows,
                            counts.ledger.suppression(OUTCOME_COUNT) if OUTCOME_COUNT in counts.ledger.cells
                            else None, _numbers_lost(counts), unprotected, control_complementary,
                            control_ledger_rows)



# How many times one sensitivity analysis's rows of further exposures are withheld before all of its rows are.
_SPARING_ROUNDS = 3
# A negative control is an exposure-outcome pair (OHDSI's negative-control pairs: a control outcome with a study
# exposure, or a control exposure with the study outcome): the rows of one pair are published or withheld together.
CONTROL_PAIR_COLUMNS = ("exposure", "outcome")


def suppress_study_counts_sparing_main(attrition: pd.DataFrame, results: pd.DataFrame, threshold: int,
                                       nested: Sequence[tuple[str, str]] = (), outcome_count: int | None = None,
                                       controls: pd.DataFrame | None = None,
                                       varied_exposures: Mapping[str, str] | None = None,
                                       hidden_arms: Mapping[tuple[str, str, str], str] | None = None,
                                       control_exposures: pd.Series | None = None) -> StudySuppression:
    """suppress_study_counts, where the negative controls and the sensitivity analyses are published only when they
    cost the main analysis nothing. `control_exposures` marks the rows of `results` that are a negative-control
    exposure's (a control drug against the study outcome, published in results.negative_control_estimates): they
    are controls here, not main rows, and their drug's attrition rows with them. Their rows are tied to the main
    rows by small differences (the persons with a prior control or variant outcome), and hiding them as complements
    can cascade into main cells (on the bundled sample, four variants cost 78 of leg_cramps's 115 main estimates).
    So the main rows' (and the attrition's and outcome count's) suppression is decided alone first; then the
    negative controls are added, each exposure-outcome pair withheld whole when its rows would hide a main cell (the
    control outcomes' pairs, then each control drug with its attrition: the OHDSI pair of a control exposure and the
    study outcome); then each sensitivity analysis in turn, an exposure whose main cells its rows would hide further
    having them withheld whole; until the main analysis publishes exactly what it publishes alone. Withheld rows
    print nothing a reader could combine (every count hidden). As with primary and secondary endpoints in a trial
    report, the secondary results never change the primary ones. Withheld rows count as complementary in
    `result_complementary` and `control_complementary`, and the withheld pairs are listed in
    `withheld_control_pairs`."""
    secondary = (results["sensitivity_analysis"].notna() if "sensitivity_analysis" in results
                 else pd.Series(False, index=results.index))
    arguments = dict(nested=nested, outcome_count=outcome_count, varied_exposures=varied_exposures,
                     hidden_arms=hidden_arms)
    has_controls = controls is not None and not controls.empty
    control_exposure = (pd.Series(False, index=results.index) if control_exposures is None
                        else pd.Series(control_exposures, index=results.index).fillna(False).astype(bool))
    if not secondary.any() and not has_controls and not control_exposure.any():
        return suppress_study_counts(attrition, results, threshold, controls=controls, **arguments)
    drugs = list(dict.fromkeys(results.loc[control_exposure, "exposure"]))
    control_attrition = (attrition["exposure"].isin(drugs) if not attrition.empty
                         else pd.Series(False, index=attrition.index))
    not_main = secondary | control_exposure
    kept, kept_attrition = ~not_main, ~control_attrition
    suppression = suppress_study_counts(attrition[kept_attrition], results[kept], threshold, **arguments)
    baseline = _main_hidden(suppression, not_main, control_attrition)

    kept_controls = None
    withheld_pairs: list[tuple] = []
    if has_controls:
        def costs_main(candidate: pd.Series) -> tuple[bool, StudySuppression]:
            trial = suppress_study_counts(attrition[kept_attrition], results[kept], threshold,
                                          controls=controls[candidate], **arguments)
            return _main_hidden(trial, not_main, control_attrition) != baseline, trial

        pair = pd.Series(list(zip(*(controls[column] for column in CONTROL_PAIR_COLUMNS))), index=controls.index)
        every = pd.Series(True, index=controls.index)
        costly, trial = costs_main(every)  # usually no control costs anything: one trial
        if not costly:
            kept_controls, suppression = every, trial
        else:
            kept_controls = pd.Series(False, index=controls.index)
            for control in pair.unique():
                candidate = kept_controls | (pair == control)
                costly, trial = costs_main(candidate)
                if costly:
                    withheld_pairs.append(control)
                else:
                    kept_controls, suppression = candidate, trial
        arguments["controls"] = controls[kept_controls]
    for drug in drugs:
        rows = kept | (control_exposure & (results["exposure"] == drug))
        steps = kept_attrition | (attrition["exposure"] == drug)
        trial = suppress_study_counts(attrition[steps], results[rows], threshold, **arguments)
        if _main_hidden(trial, not_main, control_attrition) == baseline:
            kept, kept_attrition, suppression = rows, steps, trial
        else:
            outcomes = results.loc[control_exposure & (results["exposure"] == drug), "outcome"]
            withheld_pairs += [(drug, outcome) for outcome in dict.fromkeys(outcomes)]

    replaced = dict(varied_exposures or {})
    exposure_of = results["exposure"].map(lambda exposure: replaced.get(exposure, exposure))
    for sensitivity_id in results.loc[secondary, "sensitivity_analysis"].unique():
        candidate = secondary & (results["sensitivity_analysis"] == sensitivity_id)
        for _ in range(_SPARING_ROUNDS):
            trial = suppress_study_counts(attrition[kept_attrition], results[kept | candidate], threshold,
                                          **arguments)
            costs_main = _main_hidden(trial, not_main, control_attrition) - baseline
            if not costs_main:
                kept, suppression = kept | candidate, trial
                break
            hit = {results.at[index, "exposure"] for kind, index, _ in costs_main if kind == "row"}
            candidate = candidate & ~exposure_of.isin(hit)
            if not hit or not candidate.any():
                break
    withheld = not_main & ~kept
    suppression.result_complementary, suppression.ledger_rows = _with_withheld(
        suppression.result_complementary, suppression.ledger_rows, results.index, withheld)
    suppression.withheld_sensitivity_rows = int((withheld & secondary).sum())
    suppression.attrition = _with_withheld_attrition(suppression.attrition, attrition, ~kept_attrition)
    if has_controls:
        suppression.control_complementary, suppression.control_ledger_rows = _with_withheld(
            suppression.control_complementary, suppression.control_ledger_rows, controls.index, ~kept_controls)
    suppression.withheld_control_pairs = withheld_pairs
    return suppression


def _with_withheld_attrition(published: pd.DataFrame, attrition: pd.DataFrame, withheld: pd.Series) -> pd.DataFrame:
    """The published attrition with the rows of a withheld control drug added back, every count hidden (as
    complementary: nothing of a withheld control is printed), in the original order."""
    if not withheld.any():
        return published
    rows = attrition[withheld].copy()
    present = [column for column in COUNT_COLUMNS if column in rows]
    listed = rows[present].notna()
    for column in present:
        rows[column] = None
    rows = rows.astype({column: object for column in present})
    rows["suppressed_columns"] = None
    rows["complementary_columns"] = [",".join(c for c in present if listed.at[i, c]) or None for i in rows.index]
    rows["suppressed"] = True
    return pd.concat([published, rows]).loc[attrition.index]


def _with_withheld(complementary: dict[str, pd.Series], ledger_rows: pd.Series | None, index: pd.Index,
                   withheld: pd.Series) -> tuple[dict[str, pd.Series], pd.Series]:
    """The row suppression of a frame of which only some rows went through the ledger: the withheld rows have every
    count hidden as complementary and, being outside the ledger, keep suppress_estimates's group rule (a hidden
    count hides every estimate of its exposure and outcome), so nothing of them is printed."""
    complementary = {column: complementary.get(column, pd.Series(False, index=index)).reindex(index, fill_value=False)
                     | withheld for column in ESTIMATE_COUNT_COLUMNS}
    covered = (ledger_rows if ledger_rows is not None else pd.Series(True, index=index))
    return complementary, covered.reindex(index, fill_value=True) & ~withheld


def _main_hidden(suppression: StudySuppression, secondary: pd.Series,
                 secondary_attrition: pd.Series | None = None) -> set[tuple]:
    """The main analysis's cells a suppression hides: main estimate rows' counts (`secondary`: the rows that are
    not main), attrition counts (`secondary_attrition`: the control drugs' steps, not main), the outcome count."""
    hidden = {("row", index, column) for column, flags in suppression.result_complementary.items()
              for index in flags.index[flags.to_numpy()] if not secondary.get(index, False)}
    attrition = suppression.attrition
    main = (~secondary_attrition.reindex(attrition.index, fill_value=False).to_numpy()
            if secondary_attrition is not None else np.ones(len(attrition), dtype=bool))
    hidden |= {("attrition", index, column) for column in COUNT_COLUMNS if column in attrition
               for index in attrition.index[attrition[column].isna().to_numpy() & main]}
    if suppression.outcome_count_suppression is not None:
        hidden.add(("outcome count", None, None))
    return hidden

def _row_suppression(counts: StudyCounts, frame: pd.DataFrame | None, row_id
                     ) -> tuple[dict[str, pd.Series], pd.Series | None]:
    """Per count column of an estimate frame, the rows whose count the ledger hid as a complement; and the rows
    the ledger covers (for suppress_estimates)."""
    if frame is None:
        return {}, None
    complementary = {column: pd.Series(
        [counts.ledger.suppression(counts.result_cells.get((row_id(index), column))) == COMPLEMENTARY
         for index in frame.index], index=frame.index, dtype=bool) for column in ESTIMATE_COUNT_COLUMNS}
    covered = pd.Series([row_id(index) in counts.ledger_rows for index in frame.index], index=frame.index, dtype=bool)
    return complementary, covered


def suppress_analysis_attrition(frame: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """The attrition frame alone under the small-cell rule (suppress_study_counts without estimates)."""
    return suppress_study_counts(frame, None, threshold).attrition


def create_analysis_attrition_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS results")
    con.execute(f"""CREATE TABLE IF NOT EXISTS {ANALYSIS_ATTRITION_TABLE} (
        study_id VARCHAR, analysis_id VARCHAR, exposure VARCHAR, step_order INTEGER, step VARCHAR, reason VARCHAR,
        persons_exposed BIGINT, persons_unexposed BIGINT, excluded_exposed BIGINT, excluded_unexposed BIGINT,
        suppressed BOOLEAN, suppressed_columns VARCHAR, complementary_columns VARCHAR)""")


def publish_analysis_attrition(con: duckdb.DuckDBPyConnection, study_id: str, frame: pd.DataFrame,
                               threshold: int) -> pd.DataFrame:
    """Replace the study's rows of results.analysis_attrition, small cells and their complements hidden (the
    attrition alone; a study's publication suppresses it with its estimates: write_analysis_attrition)."""
    return write_analysis_attrition(con, study_id, suppress_analysis_attrition(frame, threshold))


def write_analysis_attrition(con: duckdb.DuckDBPyConnection, study_id: str, published: pd.DataFrame) -> pd.DataFrame:
    """Replace the study's rows of results.analysis_attrition with an already suppressed frame."""
    create_analysis_attrition_table(con)
    con.execute(f"DELETE FROM {ANALYSIS_ATTRITION_TABLE} WHERE study_id = ?", [study_id])
    if not published.empty:
        con.register("new_analysis_attrition", published.astype(object).where(published.notna(), None))
        con.execute(f"INSERT INTO {ANALYSIS_ATTRITION_TABLE} BY NAME SELECT * FROM new_analysis_attrition")
        con.unregister("new_analysis_attrition")
    return published


def outcome_count_text(count: int, suppression: str | None, threshold: int) -> str:
    """The cohort's outcome count as printed: the count, "<t" when small, "suppressed" when it would give a small
    count away (StudySuppression.outcome_count_suppression)."""
    if suppression == SMALL_CELL:
        return small_cell_text(threshold)
    if suppression == COMPLEMENTARY:
        return SUPPRESSED_TEXT
    return f"{count:,}"


def publish_outcome_count(con: duckdb.DuckDBPyConnection, study_id: str, outcome: str, count: int,
                          suppression: str | None, threshold: int) -> str:
    """Replace the study's row of results.outcome_counts (the count NULL when hidden); the printed text."""
    text = outcome_count_text(count, suppression, threshold)
    con.execute("CREATE SCHEMA IF NOT EXISTS results")
    con.execute(f"""CREATE TABLE IF NOT EXISTS {OUTCOME_COUNTS_TABLE} (
        study_id VARCHAR, outcome VARCHAR, persons_with_outcome BIGINT, persons_with_outcome_text VARCHAR,
        suppressed BOOLEAN, small_cell_threshold INTEGER)""")
    con.execute(f"DELETE FROM {OUTCOME_COUNTS_TABLE} WHERE study_id = ?", [study_id])
    con.execute(f"INSERT INTO {OUTCOME_COUNTS_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
                [study_id, outcome, None if suppression else int(count), text, suppression is not None, threshold])
    return text


def published_outcome_count_text(con: duckdb.DuckDBPyConnection, study_id: str) -> str | None:
    """What results.outcome_counts prints for the study (None: not published yet)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name || '.' || table_name = ?",
                       [OUTCOME_COUNTS_TABLE]).fetchall()[0][0]:
        return None
    rows = con.execute(f"SELECT persons_with_outcome_text FROM {OUTCOME_COUNTS_TABLE} WHERE study_id = ?",
                       [study_id]).fetchall()
    return rows[0][0] if rows else None
