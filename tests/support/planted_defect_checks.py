"""Which check catches each kind of implausible row the synthetic generator plants.

The generator writes implausible rows of these kinds (they load, so the ingest does not reject them; the checks
must find them). A kind can occur in several tables, so it maps to the checks of every table where it can occur;
the number of planted rows of a kind is the sum of those checks' unexpected counts. Each planted row is counted by
exactly one check (see the "each row is counted once" rules in suites.py):

    counts = planted_defect_counts(run_layer(database, "staging"))
    assert counts == truth["implausible_rows"]   # {kind: number of planted rows}

Only these checks may count planted rows, and they count nothing else on a clean extract, provided that the
generator's clean rows are plausible by the same rules (for example, no exact duplicate events of its own).
"""

from __future__ import annotations

from typing import Iterable

from pipelines.quality import suites
from pipelines.quality.runner import SuiteResult


def _staging(table: str) -> str:
    return suites.suite_name(suites.STAGING_LAYER, table)


# kind -> ((suite, check name), ...)
PLANTED_DEFECT_CHECKS: dict[str, tuple[tuple[str, str], ...]] = {
    # The same event twice: a copy of a row with a new id.
    "duplicate_event": tuple((_staging(table), "no_duplicate_events") for table in suites.DUPLICATE_EVENT_TABLES),
    # An event dated after the person's death.
    "event_after_death": tuple(
        (_staging(table), f"{date_column}_not_after_death")
        for table, (_, date_column) in suites.EVENT_DATES.items()
    ),
    # An event outside every observation period of the person (e.g. after the last one ends), in life.
    "event_outside_observation": tuple(
        (_staging(table), f"{date_column}_within_observation_period")
        for table, (_, date_column) in suites.EVENT_DATES.items()
    ),
    # An end date before the start date: loaded, and counted by no phenotype or cohort (sql/record_spans.sql).
    "end_before_start": tuple(
        (_staging(table), f"{end_column}_not_before_start")
        for table, (_, _, end_column) in suites.SPANS.items()
    ),
    # A laboratory or ABI value no living person can have.
    "impossible_lab_value": tuple(
        (_staging("measurement"), r.check_name) for r in suites.PLAUSIBLE_MEASUREMENT_RANGES
    ),
    # A well-formed code that does not exist. Only ICD-10-CM has a code list here (dq.valid_icd10cm_codes).
    "unknown_code": ((_staging("condition_occurrence"), "condition_code_icd10cm_exists"),),
}


def planted_defect_counts(suite_results: Iterable[SuiteResult]) -> dict[str, int]:
    """{kind: rows the mapped checks found}; raises if a mapped check was not run or could not be evaluated."""
    found: dict[tuple[str, str], int | None] = {}
    errors: dict[tuple[str, str], str] = {}
    for suite_result in suite_results:
        for check in suite_result.results:
            found[(suite_result.suite, check.name)] = check.unexpected_count
            if check.error:
                errors[(suite_result.suite, check.name)] = check.error
    counts: dict[str, int] = {}
    for kind, checks in PLANTED_DEFECT_CHECKS.items():
        missing = [c for c in checks if c not in found]
        if missing:
            raise KeyError(f"{kind}: these checks were not run: {missing}")
        broken = {c: errors[c] for c in checks if c in errors}
        if broken:
            raise RuntimeError(f"{kind}: checks could not be evaluated: {broken}")
        counts[kind] = sum(found[c] or 0 for c in checks)
    return counts
