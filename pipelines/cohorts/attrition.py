"""Inclusion steps of a study, in order, and the published attrition table (results.attrition).

Every person in the extract carries the code of the first step they fail (sql/cohorts/eligibility.sql); a step
removes the persons with its code. The codes below are those the SQL writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipelines import tables
from pipelines.engine import as_engine
from pipelines.cohorts.study import FirstVisitIndex, LabTestIndex, NewUserIndex, StudyDefinition
from pipelines.cohorts.suppression import suppress_attrition
from pipelines.disclosure import COMPLEMENTARY, SMALL_CELL, SUPPRESSED_TEXT, small_cell_text
from pipelines.sql import RECORD_SPANS_SQL


@dataclass(frozen=True)
class InclusionStep:
    code: str  # exclusion_reason written by the SQL for persons who fail this step ("in_extract": nobody)
    description: str  # what the persons who remain satisfy


def inclusion_steps(study: StudyDefinition) -> list[InclusionStep]:
    period = f"{study.study_period.start} to {study.study_period.end}"
    prior = study.prior_observation_days
    steps = [
        InclusionStep("in_extract", "persons in the extract"),
        InclusionStep("no_observation_in_study_period", f"observation period overlapping the study period ({period})"),
    ]
    if isinstance(study.index, FirstVisitIndex):
        visit_types = " or ".join(study.index.visit_types) if study.index.visit_types else "any"
        steps += [
            InclusionStep("no_visit_in_study_period",
                          f"a visit ({visit_types}) in the study period during observation"),
            InclusionStep("insufficient_prior_observation",
                          f"index = the first such visit with >= {prior} days of prior observation in the same "
                          "observation period"),
        ]
    elif isinstance(study.index, NewUserIndex):
        target, comparator, washout = study.index.target, study.index.comparator, study.index.washout_days
        steps.append(InclusionStep("no_new_use_in_study_period",
                                   f"a fill of {target} or {comparator} in the study period (index = the first)"))
        if study.index.exclude_combination_products:
            partners = ", ".join(["the other study class", *study.index.combination_partners])
            steps.append(InclusionStep("combination_product_at_index",
                                       f"monotherapy at index: no product filled on the index date that counts for "
                                       f"{target} or {comparator} and also for {partners}"))
        steps += [
            InclusionStep("started_both_on_index", f"not starting both {target} and {comparator} on the index date"),
            InclusionStep("insufficient_prior_observation",
                          f">= {prior} days of observation before index in the same observation period"),
            InclusionStep("use_in_washout", f"no use of {target} or {comparator} in the {washout} days before index"),
        ]
        indication = study.index.indication
        if indication is not None:
            steps.append(InclusionStep("no_indication_in_lookback",
                                       f"{indication.phenotype} recorded in the {indication.lookback_days} days "
                                       "before index (index day included)"))
    elif isinstance(study.index, LabTestIndex):
        finding = study.index.finding
        steps += [
            InclusionStep("no_test_in_study_period",
                          f"a {finding} test (a plausible value of its codes) in the study period during observation; "
                          "untested persons are not compared"),
            InclusionStep("insufficient_prior_observation",
                          f"index = the first such test with >= {prior} days of prior observation in the same "
                          f"observation period; exposure = that test is low ({finding}), comparator = it is normal"),
        ]
    washout = study.outcome.washout
    outcome = study.outcome.phenotype
    washout_text = {
        "any_time_prior": f"no {outcome} before the time at risk starts",
        "lookback_days": f"no {outcome} in the {washout.days} days before index up to the start of time at risk",
        "none": f"outcome washout: none ({outcome} before the time at risk does not exclude)",
    }[washout.kind]
    steps += [
        InclusionStep("age_out_of_range", study.age_at_index.describe()),
        InclusionStep("died_before_index", "alive at index (no death recorded before the index date)"),
        InclusionStep("outcome_before_time_at_risk", washout_text),
        InclusionStep("no_time_at_risk",
                      f"at least one day at risk (follow-up from index + {study.time_at_risk.start_offset_days} "
                      "days)"),
    ]
    return steps


@dataclass(frozen=True)
class AttritionRow:
    """One published row of results.attrition. Counts are None where suppressed; *_text is what is printed."""

    study_id: str
    step_order: int
    step_code: str
    step: str
    persons_before: int | None
    persons_after: int | None
    persons_removed: int | None
    persons_before_text: str
    persons_after_text: str
    persons_removed_text: str
    suppressed: bool
    small_cell_threshold: int  # the threshold of this run: what "<t" means in every table of the study


def _shown(count: int, suppression: str | None, threshold: int) -> tuple[int | None, str]:
    if suppression == SMALL_CELL:
        return None, small_cell_text(threshold)
    if suppression == COMPLEMENTARY:
        return None, SUPPRESSED_TEXT
    return count, f"{count:,}"


def published_attrition(study: StudyDefinition, counts: list[tuple[str, int, int, int]],
                        threshold: int) -> tuple[list[AttritionRow], list[str]]:
    """Suppressed attrition rows from (step_code, persons_before, persons_after, persons_removed) in step order,
    and any warnings of the suppression."""
    steps = inclusion_steps(study)
    if [code for code, *_ in counts] != [step.code for step in steps]:
        raise ValueError(f"attrition steps {[c for c, *_ in counts]} do not match {[s.code for s in steps]}")
    persons_after = [after for _, _, after, _ in counts]
    persons_removed = [removed for _, _, _, removed in counts]
    suppression = suppress_attrition(persons_after, persons_removed, threshold)
    rows = []
    for k, (step, (_, before, after, removed)) in enumerate(zip(steps, counts)):
        before_suppression = suppression.before(k)
        after_suppression = suppression.after.get(k)
        removed_suppression = suppression.removed.get(k)
        before_value, before_text = _shown(before, before_suppression, threshold)
        after_value, after_text = _shown(after, after_suppression, threshold)
        removed_value, removed_text = _shown(removed, removed_suppression, threshold)
        rows.append(AttritionRow(
            study_id=study.id, step_order=k + 1, step_code=step.code, step=step.description,
            persons_before=before_value, persons_after=after_value, persons_removed=removed_value,
            persons_before_text=before_text, persons_after_text=after_text, persons_removed_text=removed_text,
            suppressed=any((before_suppression, after_suppression, removed_suppression)),
            small_cell_threshold=threshold,
        ))
    return rows, suppression.warnings


def cohort_counts(target: Any, study_id: str) -> tuple[int, int]:
    """(cohort size, persons with the outcome) of a study. The cohort stage prints the size (small as "<t"); the
    outcome count is printed only by the statistics stage, after the cross-table small-cell rule has decided
    whether it may be (statistics.analysis_attrition, results.outcome_counts). `target`: a DuckDB connection, a
    SparkSession or an Engine."""
    [sizes] = as_engine(target).records(
        f"SELECT count(*) AS persons, count(outcome_date) AS outcomes FROM {tables.STUDY_POPULATION} "
        "WHERE study_id = $study_id", {"study_id": study_id})
    return sizes["persons"], sizes["outcomes"]


def study_period_warning(target: Any, study: StudyDefinition,
                         counts: list[tuple[str, int, int, int]]) -> str | None:
    """When no person's observation overlaps the study period (typically date-shifted data, such as MIMIC's
    2110-2202), the extract's observation range beside the study period, and the override that fixes it."""
    by_code = {code: (before, after) for code, before, after, _ in counts}
    before, after = by_code.get("no_observation_in_study_period", (0, 0))
    if not before or after:
        return None
    engine = as_engine(target)
    # Periods that end before they start are no observation time (sql/record_spans.sql, the one rule; the
    # data-quality check observation_period_end_date_not_before_start reports them), so their dates are no part of
    # the range the extract observes.
    engine.execute_file(RECORD_SPANS_SQL)
    [observed] = engine.records(
        "SELECT min(observation_period_start_date) AS first, max(observation_period_end_date) AS last "
        "FROM staging.observation_period "
        "WHERE end_not_before_start(observation_period_start_date, observation_period_end_date)")
    first, last = observed["first"], observed["last"]
    example = json.dumps({study.id: {"study_period": {"start": str(first), "end": str(last)}}})
    return (f"no person's observation overlaps the study period ({study.study_period.start} to "
            f"{study.study_period.end}): the extract observes {first} to {last}, so all {before:,} persons leave at "
            f"the study-period step. If the extract's dates are shifted, run the study over its own period with an "
            f"override, for example legcramp-run --override-json '{example}' (docs/extract_formats.md).")


def attrition_markdown(rows: list[AttritionRow]) -> str:
    lines = ["| # | step | persons before | removed | persons after |", "|---:|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row.step_order} | {row.step} | {row.persons_before_text} | {row.persons_removed_text} | "
                     f"{row.persons_after_text} |")
    return "\n".join(lines)
