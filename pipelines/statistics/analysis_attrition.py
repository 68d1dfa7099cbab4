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
The differences are never printed, but a reader can form them, so a small one is protected like a small printed
count: enough printed cells are hidden that no subtraction gives it back. Complementary cells are taken from the
parts of a sum before its total, so an estimate's counts are hidden rather than the cohort size.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from pipelines import tables
from pipelines.disclosure import COMPLEMENTARY, SMALL_CELL, CountLedger

ANALYSIS_ATTRITION_TABLE = tables.ANALYSIS_ATTRITION
ARMS = ("exposed", "unexposed")
COUNT_COLUMNS = ("persons_exposed", "persons_unexposed", "excluded_exposed", "excluded_unexposed")
# Estimate rows whose events are counted up to the risk horizon, not over the whole follow-up.
HORIZON_ANALYSIS_PREFIX = "km_"
FOLLOW_UP, HORIZON = "follow-up", "horizon"


@dataclass
class StudyCounts:
    """A study's published counts as cells: the ledger, and where each attrition and estimate cell is printed."""

    ledger: CountLedger = field(default_factory=CountLedger)
    attrition_cells: dict[tuple[Hashable, str], Hashable] = field(default_factory=dict)  # (row index, column)
    result_cells: dict[tuple[Hashable, str], Hashable] = field(default_factory=dict)
    # exposure -> the path of attrition steps every analysis of the exposure goes through
    # Per exposure, the attrition steps its analyses share. Analyses that split the cohort into other arms from the
    # first step (time-varying exposure: any exposed time or none) share steps only among themselves, so the paths
    # are grouped by their first step: (exposure, first step) -> shared steps.
    shared_paths: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)


def _persons_key(exposure: str, root: str, path: tuple[str, ...], arm: str) -> tuple:
    # The first step is the study population per arm: one cell for every time at risk analysed on it.
    return (root if len(path) == 1 else exposure, path, "persons", arm)


def study_counts(attrition: pd.DataFrame, results: pd.DataFrame | None = None,
                 nested: Sequence[tuple[str, str]] = (), outcome_count: int | None = None,
                 varied_exposures: Mapping[str, str] | None = None) -> StudyCounts:
    """The cells and sums of a study's analysis attrition (study_analysis.attrition_frame) and estimates
    (study_analysis.results_frame). `nested`: (outer, inner) exposures where inner is the same cohort as outer with
    follow-up censored earlier (StudyAnalysis.nested_exposures). `outcome_count`: the cohort's persons with the
    outcome, published by the cohort stage (cohorts.attrition.cohort_counts). `varied_exposures`: variant exposure
    -> the exposure it replaces in a sensitivity analysis (whose main rows its rows are tied to)."""
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
            current = {}
            for arm in ARMS:
                key = _persons_key(exposure, root, path, arm)
                # A step of the same name with another count (not expected) is this analysis's own cell.
                remaining = (ledger.count(key, row[f"persons_{arm}"])
                             or ledger.count((*key, analysis_id), row[f"persons_{arm}"]))
                current[arm] = remaining
                counts.attrition_cells[(index, f"persons_{arm}")] = remaining
                if previous:
                    key = (exposure, path, "excluded", arm)
                    excluded = (ledger.count(key, row[f"excluded_{arm}"])
                                or ledger.count((*key, analysis_id), row[f"excluded_{arm}"]))
                    counts.attrition_cells[(index, f"excluded_{arm}")] = excluded
                    ledger.add_sum(previous[arm], (remaining, excluded))
            if not previous:  # the cohort: its size is published in results.attrition
                total = ledger.count((root, path, "persons", "both"),
                                     int(row["persons_exposed"]) + int(row["persons_unexposed"]))
                ledger.add_sum(total, (current["exposed"], current["unexposed"]))
            previous = current
        final_path[(exposure, analysis_id)] = path
        paths_of.setdefault(exposure, []).append(path)
    for exposure, paths in paths_of.items():
        for first_step in dict.fromkeys(path[0] for path in paths):
            counts.shared_paths[(exposure, first_step)] = _common_prefix(
                [path for path in paths if path[0] == first_step])
    if results is not None and not results.empty:
        _estimate_cells(counts, results, final_path, root_of)
    if results is not None and not results.empty:
        _sensitivity_relations(counts, results, varied_exposures or {})
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


def _estimate_cells(counts: StudyCounts, results: pd.DataFrame, final_path: dict[tuple[str, str], tuple[str, ...]],
                    root_of: dict[str, str]) -> None:
    """Each estimate's persons are the last attrition step of its analysis (the same cell); its events are a cell
    of that population, shared by the analyses that count the same events there."""
    ledger = counts.ledger
    events_at: dict[tuple[str, str, str], dict[tuple[str, ...], Hashable]] = {}  # (exposure, kind, arm) -> path
    for index, row in results.iterrows():
        if _present(row.get("sensitivity_analysis")):  # tied to its main row by _sensitivity_relations
            continue
        path = final_path.get((row["exposure"], row["analysis_id"]))
        if path is None:  # no attrition (sequence symmetry): the row's own rule in suppress_estimates
            continue
        exposure = row["exposure"]
        kind = HORIZON if str(row["analysis_id"]).startswith(HORIZON_ANALYSIS_PREFIX) else FOLLOW_UP
        for arm in ARMS:
            if _present(row[f"n_{arm}"]):
                counts.result_cells[(index, f"n_{arm}")] = ledger.count(
                    _persons_key(exposure, root_of.get(exposure, exposure), path, arm), row[f"n_{arm}"])
            if _present(row[f"events_{arm}"]):
                key = ledger.count((exposure, path, "events", kind, arm), row[f"events_{arm}"])
                if key is None:  # another count of events than the population's shared one
                    key = ledger.count((exposure, path, "events", kind, arm, row["analysis_id"]),
                                       row[f"events_{arm}"])
                else:
                    events_at.setdefault((exposure, kind, arm), {})[path] = key
                counts.result_cells[(index, f"events_{arm}")] = key
    for (exposure, kind, arm), by_path in events_at.items():
        for outer_path, outer in by_path.items():
            for inner_path, inner in by_path.items():
                if len(inner_path) > len(outer_path) and inner_path[:len(outer_path)] == outer_path:
                    ledger.add_difference(outer, inner, ("events left out", exposure, outer_path, inner_path, kind,
                                                         arm))
            if kind == HORIZON and (exposure, FOLLOW_UP, arm) in events_at:
                follow_up = events_at[(exposure, FOLLOW_UP, arm)].get(outer_path)
                if follow_up is not None:
                    ledger.add_difference(follow_up, outer, ("events after the horizon", exposure, outer_path, arm))


def _sensitivity_relations(counts: StudyCounts, results: pd.DataFrame, varied_exposures: Mapping[str, str]) -> None:
    """A sensitivity analysis's row (the same analysis with the outcome or an exposure replaced by a variant)
    against its main row (for an exposure variant, the replaced exposure's row: `varied_exposures`): its persons are
    the main persons less those with a prior variant outcome, or the same persons split into other arms, and its
    events and the main events count nested outcomes or nested arms (a narrower or broader code list or threshold in
    the same persons). Either difference is a count a reader can form, so each pair is a sum (the larger = the
    smaller + the difference). Declaring a pair that is not truly nested only hides more."""
    if "sensitivity_analysis" not in results:
        return
    ledger = counts.ledger
    main_rows = {(row["exposure"], row["analysis_id"]): index for index, row in results.iterrows()
                 if not _present(row["sensitivity_analysis"])}
    for index, row in results.iterrows():
        variant = row["sensitivity_analysis"]
        main = main_rows.get((varied_exposures.get(row["exposure"], row["exposure"]), row["analysis_id"]))
        if not _present(variant) or main is None:
            continue
        for column in ("n_exposed", "n_unexposed", "events_exposed", "events_unexposed"):
            main_cell = counts.result_cells.get((main, column))
            if main_cell is None or not _present(row[column]):
                continue
            cell = ledger.count((variant, row["exposure"], row["analysis_id"], column), row[column])
            counts.result_cells[(index, column)] = cell
            larger, smaller = ((main_cell, cell) if ledger.cells[main_cell].value >= ledger.cells[cell].value
                               else (cell, main_cell))
            ledger.add_difference(larger, smaller, ("sensitivity difference", variant, row["exposure"],
                                                    row["analysis_id"], column))


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
            if not (isinstance(key, tuple) and key[0] == inner and len(key) in (4, 5)):
                continue
            path = key[1]
            if len(path) < 2 or path != shared[:len(path)] or key[2] not in ("persons", "events"):
                continue
            outer_key = (outer, *key[1:])
            if outer_key in ledger.cells:
                ledger.add_difference(outer_key, key, ("nested", outer, inner, *key[1:]))


def _outcome_relations(counts: StudyCounts, outcome_count: int) -> None:
    """The cohort's persons with the outcome = each exposure's events of both arms over the follow-up of everyone
    with time at risk + the outcomes outside that follow-up (e.g. an unexposed person's after they start the
    exposure and are censored): the last a reader gets by subtraction."""
    ledger = counts.ledger
    total = ledger.count(("outcome count",), outcome_count)
    for (exposure, first_step), shared in counts.shared_paths.items():
        arms = [(exposure, shared, "events", FOLLOW_UP, arm) for arm in ARMS]
        if not all(key in ledger.cells for key in arms):
            continue
        outside = outcome_count - sum(ledger.cells[key].value for key in arms)
        if outside < 0:
            continue
        key = ledger.count(("outcomes outside the follow-up", exposure, first_step), outside, published=False)
        ledger.add_sum(total, (*arms, key))


@dataclass
class StudySuppression:
    """The published analysis attrition, and the estimate cells hidden to protect a count of another table."""

    attrition: pd.DataFrame
    result_complementary: dict[str, pd.Series]


def suppress_study_counts(attrition: pd.DataFrame, results: pd.DataFrame | None, threshold: int,
                          nested: Sequence[tuple[str, str]] = (), outcome_count: int | None = None,
                          varied_exposures: Mapping[str, str] | None = None) -> StudySuppression:
    """The small-cell rule over a study's analysis attrition and estimates together: the attrition frame with
    every small count, and every count that would give one away, set to NULL and listed in
    suppressed_columns/complementary_columns; and, per count column of `results`, the rows whose count is hidden
    to protect a count elsewhere (for suppress_estimates)."""
    counts = study_counts(attrition, results, nested, outcome_count, varied_exposures)
    counts.ledger.suppress(threshold)
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
    result_complementary: dict[str, pd.Series] = {}
    if results is not None:
        for column in ("n_exposed", "n_unexposed", "events_exposed", "events_unexposed"):
            result_complementary[column] = pd.Series(
                [counts.ledger.suppression(counts.result_cells.get((index, column))) == COMPLEMENTARY
                 for index in results.index], index=results.index, dtype=bool)
    return StudySuppression(published, result_complementary)


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
