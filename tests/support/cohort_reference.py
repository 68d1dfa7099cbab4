"""An independent, person-by-person implementation of the inclusion steps, to check the SQL against.

It shares nothing with sql/cohorts/ but the step codes (pipelines/cohorts/attrition.py): plain Python over one
record per person, written to be obviously right rather than fast (fine up to some 100,000 persons).

Against a synthetic extract's truth (`<extract>/_truth/persons.parquet`, see docs/synthetic_data.md):

    truth = pd.read_parquet(extract / "_truth" / "persons.parquet")
    records = person_records_from_truth(
        study, truth,
        observation_periods=con.sql("SELECT * FROM staging.observation_period").df(),
        visits=con.sql("SELECT * FROM staging.visit_occurrence").df(),
        fills=...,  # new-user designs only: person_id, phenotype_id, fill_start, supply_end
    )
    assert reference_attrition(study, records) == <results.attrition built with small_cell_threshold 1>

The truth gives birth year, death and the outcome's first date (`<outcome>_date`), independent of the phenotype
stage. Visits and the exact observation periods are not in the truth (it keeps only the first start and last end),
so they come from staging. With the default outcome washout (any time prior) the first outcome date is all the
reference needs: an earlier outcome removes the person, and otherwise the first outcome in the time at risk is the
first outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable

import pandas as pd

from pipelines.cohorts.attrition import inclusion_steps
from pipelines.cohorts.study import FirstVisitIndex, NewUserIndex, StudyDefinition


@dataclass
class PersonRecord:
    person_id: str
    year_of_birth: int
    birth_date: date | None = None
    observation_periods: list[tuple[date, date]] = field(default_factory=list)
    visits: list[tuple[date, str]] = field(default_factory=list)  # (visit start, visit type)
    death_date: date | None = None
    # Dated events of the outcome phenotype, from the person's phenotype date on.
    outcome_dates: list[date] = field(default_factory=list)
    # Drug fills per drug phenotype: (fill start, last day of supply), for new-user designs.
    fills: dict[str, list[tuple[date, date]]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceResult:
    exclusion_reason: str | None
    index_date: date | None = None
    followup_end: date | None = None
    outcome_date: date | None = None
    treatment: int | None = None


def merged_periods(periods: list[tuple[date, date]]) -> list[tuple[date, date]]:
    """Overlapping or back-to-back periods joined; periods ending before they start dropped."""
    merged: list[list[date]] = []
    for start, end in sorted(p for p in periods if p[1] >= p[0]):
        if merged and start <= merged[-1][1] + timedelta(days=1):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def _period_holding(periods: list[tuple[date, date]], day: date) -> tuple[date, date] | None:
    return next(((start, end) for start, end in periods if start <= day <= end), None)


def _age(person: PersonRecord, day: date) -> int:
    if person.birth_date is None:
        return day.year - person.year_of_birth
    birthday_passed = (day.month, day.day) >= (person.birth_date.month, person.birth_date.day)
    return day.year - person.birth_date.year - (0 if birthday_passed else 1)


def reference_person(study: StudyDefinition, person: PersonRecord) -> ReferenceResult:
    """The first inclusion step the person fails (None = included), with index date, follow-up and outcome."""
    start, end = study.study_period.start, study.study_period.end
    periods = merged_periods(person.observation_periods)
    if not any(p_start <= end and p_end >= start for p_start, p_end in periods):
        return ReferenceResult("no_observation_in_study_period")

    treatment = None
    if isinstance(study.index, FirstVisitIndex):
        wanted_types = set(study.index.visit_types) or {"inpatient", "outpatient", "emergency"}
        candidate_visits = sorted(day for day, visit_type in person.visits
                                  if visit_type in wanted_types and start <= day <= end
                                  and _period_holding(periods, day) is not None)
        if not candidate_visits:
            return ReferenceResult("no_visit_in_study_period")
        index_date = next((day for day in candidate_visits
                           if (day - _period_holding(periods, day)[0]).days >= study.prior_observation_days), None)
        if index_date is None:
            return ReferenceResult("insufficient_prior_observation")
        period = _period_holding(periods, index_date)
    elif isinstance(study.index, NewUserIndex):
        target_fills = person.fills.get(study.index.target, [])
        comparator_fills = person.fills.get(study.index.comparator, [])
        starts_in_period = [s for s, _ in target_fills + comparator_fills if start <= s <= end]
        if not starts_in_period:
            return ReferenceResult("no_new_use_in_study_period")
        index_date = min(starts_in_period)
        starts_target = any(s == index_date for s, _ in target_fills)
        starts_comparator = any(s == index_date for s, _ in comparator_fills)
        if starts_target and starts_comparator:
            return ReferenceResult("started_both_on_index", index_date)
        treatment = 1 if starts_target else 0
        period = _period_holding(periods, index_date)
        if period is None or (index_date - period[0]).days < study.prior_observation_days:
            return ReferenceResult("insufficient_prior_observation", index_date)
        washout_start = index_date - timedelta(days=study.index.washout_days)
        if any(s < index_date and supply_end >= washout_start for s, supply_end in target_fills + comparator_fills):
            return ReferenceResult("use_in_washout", index_date)
    else:  # pragma: no cover
        raise NotImplementedError(study.index.rule)

    age = _age(person, index_date)
    limits = study.age_at_index
    if (limits.min is not None and age < limits.min) or (limits.max is not None and age > limits.max):
        return ReferenceResult("age_out_of_range", index_date)
    if person.death_date is not None and person.death_date < index_date:
        return ReferenceResult("died_before_index", index_date)

    time_at_risk_start = index_date + timedelta(days=study.time_at_risk.start_offset_days)
    ends = [period[1], end] + ([person.death_date] if person.death_date else [])
    if study.time_at_risk.max_days is not None:
        ends.append(index_date + timedelta(days=study.time_at_risk.max_days))
    followup_end = min(ends)

    washout = study.outcome.washout
    if washout.kind != "none":
        earliest = date.min if washout.kind == "any_time_prior" else index_date - timedelta(days=washout.days)
        if any(earliest <= day < time_at_risk_start for day in person.outcome_dates):
            return ReferenceResult("outcome_before_time_at_risk", index_date)
    if followup_end < time_at_risk_start:
        return ReferenceResult("no_time_at_risk", index_date)
    outcome_date = min((d for d in person.outcome_dates if time_at_risk_start <= d <= followup_end), default=None)
    return ReferenceResult(None, index_date, followup_end, outcome_date, treatment)


def reference_population(study: StudyDefinition, persons: Iterable[PersonRecord]) -> dict[str, ReferenceResult]:
    return {person.person_id: reference_person(study, person) for person in persons}


def reference_attrition(study: StudyDefinition, persons: Iterable[PersonRecord]) -> list[tuple[str, int, int, int]]:
    """(step_code, persons_before, persons_after, persons_removed) per inclusion step, unsuppressed, in the shape
    of sql/cohorts/attrition_counts.sql."""
    results = reference_population(study, persons)
    remaining = len(results)
    rows = []
    for step in inclusion_steps(study):
        removed = sum(1 for r in results.values() if r.exclusion_reason == step.code)
        rows.append((step.code, remaining, remaining - removed, removed))
        remaining -= removed
    return rows


def person_records_from_frames(persons: pd.DataFrame, observation_periods: pd.DataFrame,
                               visits: pd.DataFrame | None = None, deaths: pd.DataFrame | None = None,
                               outcome_events: pd.DataFrame | None = None,
                               fills: pd.DataFrame | None = None) -> list[PersonRecord]:
    """PersonRecords from staging-shaped frames: persons (person_id, year_of_birth, birth_date),
    observation_periods (person_id, observation_period_start_date, observation_period_end_date), visits (person_id,
    visit_start_date, visit_type), deaths (person_id, death_date), outcome_events (person_id, event_date) and
    fills (person_id, phenotype_id, fill_start, supply_end)."""
    def by_person(frame: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
        return {} if frame is None else {pid: group for pid, group in frame.groupby("person_id")}

    def as_date(value) -> date | None:
        return None if value is None or pd.isna(value) else pd.Timestamp(value).date()

    periods_of, visits_of, deaths_of = by_person(observation_periods), by_person(visits), by_person(deaths)
    outcomes_of, fills_of = by_person(outcome_events), by_person(fills)
    records = []
    for person in persons.itertuples(index=False):
        pid = person.person_id
        record = PersonRecord(pid, int(person.year_of_birth), as_date(getattr(person, "birth_date", None)))
        if pid in periods_of:
            record.observation_periods = [(as_date(r.observation_period_start_date),
                                           as_date(r.observation_period_end_date))
                                          for r in periods_of[pid].itertuples(index=False)]
        if pid in visits_of:
            record.visits = [(as_date(r.visit_start_date), r.visit_type)
                             for r in visits_of[pid].itertuples(index=False)]
        if pid in deaths_of:
            record.death_date = min(as_date(d) for d in deaths_of[pid]["death_date"])
        if pid in outcomes_of:
            record.outcome_dates = [as_date(d) for d in outcomes_of[pid]["event_date"]]
        if pid in fills_of:
            for r in fills_of[pid].itertuples(index=False):
                record.fills.setdefault(r.phenotype_id, []).append((as_date(r.fill_start), as_date(r.supply_end)))
        records.append(record)
    return records


def person_records_from_truth(study: StudyDefinition, truth: pd.DataFrame, observation_periods: pd.DataFrame,
                              visits: pd.DataFrame, fills: pd.DataFrame | None = None) -> list[PersonRecord]:
    """PersonRecords from a synthetic truth table (person_id, year_of_birth, death_date, <outcome>_date) plus
    staging observation periods and visits (and drug fills for new-user designs)."""
    outcome_column = f"{study.outcome.phenotype}_date"
    outcomes = (truth[["person_id", outcome_column]].dropna()
                .rename(columns={outcome_column: "event_date"}))
    deaths = truth[["person_id", "death_date"]].dropna()
    return person_records_from_frames(truth[["person_id", "year_of_birth"]], observation_periods, visits, deaths,
                                      outcomes, fills)
