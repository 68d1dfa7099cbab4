"""What the published data-quality outputs may show of a suite's counts: the project's one small-cell rule
(pipelines/disclosure.py, CountLedger) applied to the counts `dq.check_results` and the Data Docs print, tied by the
sums a reader can form from them (docs/disclosure.md, "Data quality").

The counts a check prints, and what a reader computes from them:

    element_count     E   rows judged (for staging.person's checks and the phenotype suite: persons)
    unexpected_count  U   failing rows
    missing_count     M   empty values (GX's column checks; printed in the Data Docs)
    E - M             N   the values judged (also U / unexpected_percent: GX's percentage is of the non-empty values)
    N - U             X   the rows that pass (person_has_condition_occurrence: the persons WITH a condition)

One check's E is the count of its table's (or its phenotype's) rows wherever it is printed, so the checks that print
the same value there are one cell. A per-phenotype check prints, in the Data Docs, its totals over every phenotype
(E and U summed). A small E, U, M, N or X is hidden, and so is whatever recomputes it (`suppress_cells`: the
cheapest printed count of the sum, a part before a total); percentages and the observed value go with any count they
are computed from (DERIVED_FROM). The decision is made once per suite result, from the same counts, for both
outputs (a reader has both), so a count hidden in one is hidden in the other.

Counts of columns, not rows (a table's column names and types against the extract's layout), tie into no sum.

A cohort suite (suites.build_cohort_suite) checks one study's rows of cohort.study_population, but its
element_count is the rows of that table, every study's cohort: with the other studies' cohort sizes, which
results.attrition prints, it gives back a study's cohort that attrition hides ("<t"). Its element_count (and the
percentages of it) are not published; its failing counts are the study's persons, under the study's threshold.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.disclosure import CountLedger

ELEMENT, UNEXPECTED, MISSING = "element_count", "unexpected_count", "missing_count"
# A printed percentage or observed value, and the counts it is computed from: hidden when any of them is.
DERIVED_FROM = {
    "unexpected_percent": (UNEXPECTED, ELEMENT, MISSING),
    "unexpected_percent_total": (UNEXPECTED, ELEMENT),
    "unexpected_percent_nonmissing": (UNEXPECTED, ELEMENT, MISSING),
    "missing_percent": (MISSING, ELEMENT),
    "observed_value": (UNEXPECTED,),
}
# The SQL checks (violating_rows.py): their observed value is the failing count. A column check's observed value in
# dq.check_results is its failing percentage (runner.expectation_result), hidden with it.
SQL_CHECK_TYPES = ("expect_no_violating_rows", "expect_no_violating_rows_per_phenotype")
# Checks whose counts are of a table's columns (the layout), not of its rows.
COLUMN_LAYOUT_TYPES = ("expect_table_columns_to_match_set",)
COLUMN_LAYOUT_CHECKS = ("column_types_match_spec",)
# Where a check's counts are printed: dq.check_results and the Data Docs; a per-phenotype check's totals and GX's
# missing_count only in the Data Docs. The cost of hiding a count as a complement (the published numbers lost) is the
# sum of its printings.
PRINTED_TWICE, PRINTED_ONCE = 2.0, 1.0


@dataclass(frozen=True)
class Publication:
    """How a suite's counts are published: the small-cell threshold, and whether its element_count is."""

    threshold: int
    element_count_published: bool = True


def publication(suite_json: Mapping[str, Any], run_threshold: int) -> Publication:
    """A suite's publication: the run's threshold, or the suite's own when it is higher (a cohort suite counts
    one study's persons: that study's threshold); its element_count unless the suite says it counts more than its
    own rows (the meta that suites.build_cohort_suite writes)."""
    meta = suite_json.get("meta") or {}
    return Publication(max(run_threshold, int(meta.get("small_cell_threshold") or 0)),
                       bool(meta.get("element_count_published", True)))


@dataclass(frozen=True)
class PrintedCounts:
    """The counts one published result of a check holds: a check of a table, one phenotype's result of a check
    judged per phenotype, or (`totals_of` the phenotypes) that check's totals over them."""

    check: str
    phenotype: str | None
    column: str | None
    element: int | None
    unexpected: int | None
    missing: int | None = None
    counts_rows: bool = True  # False: a check of the table's columns (COLUMN_LAYOUT_*)
    totals_of: tuple[str, ...] = ()

    @property
    def where(self) -> tuple[str, str | None]:
        return self.check, self.phenotype


def counts_rows(expectation_type: str, check: str) -> bool:
    return expectation_type not in COLUMN_LAYOUT_TYPES and check not in COLUMN_LAYOUT_CHECKS


def check_name(expectation_config: Mapping[str, Any]) -> str:
    """A check's name as the runner reports it (its meta's name, else the expectation type)."""
    return (expectation_config.get("meta") or {}).get("name") or expectation_config.get("type", "")


def hidden_counts(printed: Sequence[PrintedCounts], published: Publication) -> dict[tuple[str, str | None], set[str]]:
    """For each printed result (check, phenotype), the counts of it the rule hides: small ones, and those that would
    give a small one away through the sums above (one CountLedger over the suite's results); every element_count
    when the suite's is not published."""
    ledger = CountLedger()
    keys: dict[tuple[tuple[str, str | None], str], Hashable] = {}

    def register(counts: PrintedCounts, name: str, value: int, shared: Hashable) -> Hashable:
        cost = PRINTED_ONCE if counts.totals_of or name == MISSING else PRINTED_TWICE
        # `shared`: the cell of the same count printed by other checks; their own cell when the value differs there
        key = ledger.count(shared, value, cost=cost)
        if key is None:
            key = ledger.count((name, *counts.where), value, cost=cost)
        keys[(counts.where, name)] = key
        return key

    for counts in printed:
        element = unexpected = None
        if counts.element is not None and published.element_count_published:
            element = register(counts, ELEMENT, counts.element, ("rows", counts.phenotype))
        if counts.unexpected is not None:
            unexpected = register(counts, UNEXPECTED, counts.unexpected, (UNEXPECTED, *counts.where))
        judged = element
        if counts.missing is not None:
            missing = register(counts, MISSING, counts.missing, (MISSING, counts.column, counts.phenotype))
            if element is not None and counts.counts_rows:
                judged = ("judged", *counts.where)
                ledger.add_difference(element, missing, judged)
        if judged in ledger.cells and unexpected is not None and counts.counts_rows:
            ledger.add_difference(judged, unexpected, ("passing", *counts.where))
    for counts in printed:
        for name in (ELEMENT, UNEXPECTED):
            parts = [keys.get(((counts.check, phenotype), name)) for phenotype in counts.totals_of]
            if counts.totals_of and (counts.where, name) in keys and None not in parts:
                ledger.add_sum(keys[(counts.where, name)], parts)
    ledger.suppress_unlabelled(published.threshold)
    hidden = ledger.hidden_printed()
    found: dict[tuple[str, str | None], set[str]] = {}
    if not published.element_count_published:
        for counts in printed:
            if counts.element is not None:
                found.setdefault(counts.where, set()).add(ELEMENT)
    for (where, name), key in keys.items():
        if key in hidden:
            found.setdefault(where, set()).add(name)
    return found


def derived_hidden(hidden: set[str]) -> set[str]:
    """The percentages and observed value computed from a hidden count."""
    return {key for key, counts in DERIVED_FROM.items() if hidden & set(counts)}


# ---------------------------------------------------------------------------------------------------------------
# GX's stored validation result (the Data Docs' source)
# ---------------------------------------------------------------------------------------------------------------

def printed_counts_of_validation(results: Sequence[Mapping[str, Any]]) -> list[PrintedCounts]:
    """The counts of a suite's GX validation result as stored (its `results`, JSON form)."""
    printed = []
    for expectation in results:
        config = expectation.get("expectation_config") or {}
        check = check_name(config)
        if config.get("type") in COLUMN_LAYOUT_TYPES:  # its counts are the runner's, of column names
            continue
        column = (config.get("kwargs") or {}).get("column") or (config.get("meta") or {}).get("column")
        rows = counts_rows(config.get("type", ""), check)
        result = expectation.get("result") or {}
        per_phenotype = (result.get("details") or {}).get("per_phenotype")
        if isinstance(per_phenotype, Mapping):
            for phenotype, found in sorted(per_phenotype.items()):
                printed.append(PrintedCounts(check, phenotype, column, found.get(ELEMENT), found.get(UNEXPECTED),
                                             counts_rows=rows))
        printed.append(PrintedCounts(check, None, column, result.get(ELEMENT), result.get(UNEXPECTED),
                                     result.get(MISSING), rows,
                                     tuple(sorted(per_phenotype)) if isinstance(per_phenotype, Mapping) else ()))
    return printed


def printed_counts_of_results(results: Sequence[Any]) -> list[PrintedCounts]:
    """The same counts from the runner's ExpectationResults of one suite (in the validation's order; a check judged
    per phenotype is one result per phenotype, and its totals their sums, as GX's result holds them)."""
    printed: list[PrintedCounts] = []
    pending: list[Any] = []  # the per-phenotype results of the check being read

    def add_totals() -> None:
        if pending:
            first = pending[0]
            printed.append(PrintedCounts(first.name, None, first.column,
                                         sum(r.element_count or 0 for r in pending),
                                         sum(r.unexpected_count or 0 for r in pending),
                                         counts_rows=counts_rows(first.expectation_type, first.name),
                                         totals_of=tuple(r.phenotype_id for r in pending)))
            pending.clear()

    for result in results:
        if pending and (result.phenotype_id is None or result.name != pending[0].name):
            add_totals()
        if result.expectation_type in COLUMN_LAYOUT_TYPES:
            continue
        printed.append(PrintedCounts(result.name, result.phenotype_id, result.column, result.element_count,
                                     result.unexpected_count, result.missing_count,
                                     counts_rows(result.expectation_type, result.name)))
        if result.phenotype_id is not None:
            pending.append(result)
    add_totals()
    return printed


def publishable_counts(result: Mapping[str, Any], hidden: set[str]) -> dict[str, Any]:
    """`result` (a GX result, or one phenotype's part of it) without the `hidden` counts and what they recompute."""
    dropped = hidden | derived_hidden(hidden)
    return {key: value for key, value in result.items() if key not in dropped}
