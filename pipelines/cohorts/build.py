"""Build a study's cohort tables in the warehouse by running the SQL models of sql/cohorts/ in order.

    build_study(target, study)     one study: its rows of cohort.*, results.attrition and results.table1
    build_all_studies(target)      every studies/*.yaml

`target` is a DuckDB connection, a SparkSession or an engine of pipelines/engine/, which runs the SQL.

Model order (each SELECT is materialised as a temporary table named after its file, which later models read):

    observation_periods_merged -> phenotype_event_dates -> index_new_user (as index_dates) | index_first_visit or
    index_lab_test (as index_candidates) -> index_first_candidate (as index_dates)
    -> eligibility -> attrition_counts -> exposure_eras over on_treatment_fills -> on_treatment_end
    -> person_variables -> study_population -> cohort_rows -> table1_aggregates; then, in studies with
    exposure_time current, time_varying_person_variables -> exposure_eras over time_varying_spans
    -> time_varying_exposure

exposure_eras.sql is the one rule for drug eras (fills joined within a persistence window, plus a grace period): the
on-treatment end reads the first era, the time-varying exposure every era.

On DuckDB a study's rows are replaced in one transaction: a failure leaves the previous rows of that study in
place (Spark's plain tables have no transactions: pipelines/engine/spark_engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from pipelines import tables
from pipelines.cohorts.attrition import (AttritionRow, cohort_counts, inclusion_steps, published_attrition,
                                        study_period_warning)
from pipelines.cohorts.study import LabTestIndex, StudyDefinition, load_studies
from pipelines.cohorts.table1 import Table1Row, build_table1
from pipelines.disclosure import shown_count
from pipelines.engine import Engine, as_engine
from pipelines.sql import AGES_SQL, MEASUREMENT_VALUES_SQL, RECORD_SPANS_SQL, read_sql
from pipelines.sql_quoting import quote_identifier, quote_literal

STAGING_TABLES_READ = ("person", "observation_period", "visit_occurrence", "death")
PHENOTYPE_TABLES_READ = ("events", "person_summary")
# A lab_test index reads every test of its finding (normal values too, which phenotype.events does not keep) from
# staging.measurement, with the phenotype stage's code list and measurement rules.
LAB_TEST_STAGING_TABLES_READ = ("measurement",)
LAB_TEST_PHENOTYPE_TABLES_READ = ("code_list", "measurement_code_units", "unit_conversions", "measurement_rules")
# The index rules that take the first of their candidate dates (index_first_candidate.sql), with the attrition step of
# persons without a candidate.
FIRST_CANDIDATE_RULES = {"first_visit": "no_visit_in_study_period", "lab_test": "no_test_in_study_period"}
# index_new_user.sql's treatment: the drug started at index, target 1, comparator 0 (on_treatment_fills.sql's
# variable_number).
TREATMENT_NUMBERS = (1, 0)
TEMPORARY_TABLES = ("observation_periods_merged", "phenotype_event_dates", "index_candidates", "index_dates",
                    "eligibility", "exposure_eras", "on_treatment_end", "table1_aggregates",
                    "time_varying_person_variables")
# Every table the cohort stage writes, with the condition on $study_id that selects a study's rows: what a rebuild
# of the study replaces (in this order: cohort.cohort's rows are found through cohort.cohort_definition's) and what
# a Spark run copies back to DuckDB (pipelines/cohorts/spark_stages.py).
STUDY_ROWS = {
    tables.COHORT: "cohort_definition_id IN "
                   f"(SELECT cohort_definition_id FROM {tables.COHORT_DEFINITION} WHERE study_id = $study_id)",
    **dict.fromkeys((tables.COHORT_DEFINITION, tables.STUDY_VARIABLES, tables.PERSON_VARIABLES,
                     tables.STUDY_POPULATION, tables.ATTRITION, tables.TABLE1, tables.TIME_VARYING_EXPOSURE),
                    "study_id = $study_id"),
}


class CohortBuildError(RuntimeError):
    """The warehouse lacks what a study needs (for example the phenotype stage has not run)."""


@dataclass
class StudyBuild:
    """What building one study produced (published, i.e. suppressed, figures) and what looked wrong."""

    study_id: str
    cohort_size: int
    attrition: list[AttritionRow]
    table1: list[Table1Row]
    threshold: int
    warnings: list[str] = field(default_factory=list)

    def shown(self, count: int) -> int | str:
        """A count as it may be published or logged: "<threshold" for a small cell."""
        return shown_count(count, self.threshold)


# ---------------------------------------------------------------------------------------------------------------
# Running SQL models
# ---------------------------------------------------------------------------------------------------------------

def model_sql(model: str) -> str:
    return read_sql(f"cohorts/{model}.sql").strip().rstrip(";")


def materialise(engine: Engine, model: str, parameters: dict[str, Any], table: str | None = None) -> None:
    """A temporary table <table, default the model name> holding the rows of the model's SELECT."""
    engine.create_temp_table(table or model, model_sql(model), parameters)


def materialise_eras(engine: Engine, spans_model: str, parameters: dict[str, Any],
                     variable_numbers: Sequence[int]) -> None:
    """The temporary table exposure_eras: exposure_eras.sql over the spans of `spans_model`, built one exposure
    (variable_number) at a time. The eras' window sorts every span of a person's exposure; one statement over all
    exposures sorted every span at once (565 million time-varying spans at 10,000,000 patients held 26.5 GB of
    DuckDB's temp directory and filled the disk, issue #21); per exposure the largest sort is one drug's spans
    (statins: 19% of them) and the eras are the same, as the window partitions by exposure.
    The spans are read as era_spans, a CTE of the same statement, never stored: every temporary table stays until
    the study's transaction commits, even dropped, and the spans are the largest (56.5 million rows at 1,000,000
    patients)."""
    spans, eras = model_sql(spans_model), model_sql("exposure_eras")
    one_exposure = (f"WITH era_spans AS (\nSELECT * FROM (\n{spans}\n) AS spans "
                    f"WHERE variable_number = $era_variable_number\n)\nSELECT * FROM (\n{eras}\n) AS eras")
    # No exposure at all: one part that matches no span, for an empty table with the eras' columns.
    parts = [{"era_variable_number": number} for number in variable_numbers] or [{"era_variable_number": None}]
    engine.create_temp_table_in_parts("exposure_eras", one_exposure, parameters, parts)


def query(engine: Engine, model: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    return engine.records(model_sql(model), parameters)


def study_parameters(study: StudyDefinition) -> dict[str, Any]:
    """Every $name the cohort models use, for this study."""
    index = study.index
    washout = study.outcome.washout
    groups = study.table1_groups
    indication = getattr(index, "indication", None)
    return {
        "study_id": study.id,
        "study_start": study.study_period.start,
        "study_end": study.study_period.end,
        "prior_observation_days": study.prior_observation_days,
        "visit_types": list(getattr(index, "visit_types", [])),
        "target": getattr(index, "target", None),
        "comparator": getattr(index, "comparator", None),
        "washout_days": getattr(index, "washout_days", None),
        "grace_days": getattr(index, "grace_days", None),
        "exclude_combination_products": getattr(index, "exclude_combination_products", False),
        "combination_partners": list(getattr(index, "combination_partners", [])),
        "indication_phenotype": indication.phenotype if indication else None,
        "indication_lookback_days": indication.lookback_days if indication else None,
        "finding": getattr(index, "finding", None),
        "min_age": study.age_at_index.min,
        "max_age": study.age_at_index.max,
        "outcome_phenotype": study.outcome.phenotype,
        "outcome_washout": washout.kind,
        "outcome_washout_days": washout.days,
        "tar_start_offset_days": study.time_at_risk.start_offset_days,
        "tar_max_days": study.time_at_risk.max_days,
        # The phenotypes whose dated events phenotype_event_dates.sql keeps: the index and eligibility rules' own.
        "dated_phenotype_ids": [p for p in (study.outcome.phenotype, getattr(index, "target", None),
                                            getattr(index, "comparator", None),
                                            indication.phenotype if indication else None) if p],
        "step_codes": [step.code for step in inclusion_steps(study)],
        "table1_split": study.table1_split,
        "table1_by": study.table1_by if study.table1_split == "variable" else None,
        "group_names": ["overall", *(groups or ())],
        "group_1": groups[0] if groups else None,
        "group_0": groups[1] if groups else None,
        # Time-varying exposure (time_varying_exposure.sql): which exposures, and the grace and risk-window days.
        "current_use_variables": [v for v, kind in study.time_varying_exposures.items() if kind == "current_use"],
        "risk_window_variables": [v for v, kind in study.time_varying_exposures.items() if kind == "risk_window"],
        "current_use_grace_days": study.exposure_time.grace_days,
        "risk_window_days": study.exposure_time.risk_window_days,
    }


# ---------------------------------------------------------------------------------------------------------------
# Output tables
# ---------------------------------------------------------------------------------------------------------------

def create_output_tables(target: Any) -> None:
    engine = as_engine(target)
    engine.execute(model_sql("create_tables"))
    engine.execute(model_sql("time_varying_exposure_table"))


def add_phenotype_columns(target: Any, study: StudyDefinition) -> None:
    """cohort.study_population has a BOOLEAN and a <id>_first_date column per phenotype any study records. Column
    names come from validated phenotype ids (lower-case identifiers), never from data."""
    columns: dict[str, str] = {}
    for variable in study.variables:
        columns[variable.variable] = "BOOLEAN"
        columns[variable.variable + "_first_date"] = "DATE"
    as_engine(target).add_columns_if_absent(tables.STUDY_POPULATION, columns)


def study_population_select_sql(study: StudyDefinition) -> str:
    """The study population with its phenotype columns pivoted from cohort.person_variables: <id> is true
    when the phenotype is present at index, <id>_first_date is its first date (on or before index when present,
    else the day it is acquired after index, else NULL). <id> is NULL for a person left out of a new-use
    comparison (person_variables.at_index NULL)."""
    pivoted, selected = ["person_id"], []
    for position, variable in enumerate(v.variable for v in study.variables):
        name = quote_literal(variable)
        column, first_date = quote_identifier(variable), quote_identifier(f"{variable}_first_date")
        # A name no phenotype id can have (ids are lower-case identifiers without spaces).
        left_out = quote_identifier(f"{position} left out")
        pivoted.append(f"bool_or(at_index) FILTER (WHERE variable = {name}) AS {column}")
        pivoted.append(f"bool_or(at_index IS NULL) FILTER (WHERE variable = {name}) AS {left_out}")
        pivoted.append(f"min(first_date) FILTER (WHERE variable = {name}) AS {first_date}")
        selected.append(f"CASE WHEN v.{left_out} THEN NULL ELSE coalesce(v.{column}, false) END AS {column}")
        selected.append(f"v.{first_date}")
    base = model_sql("study_population")
    return (
        "WITH phenotype_columns AS (\n"
        f"    SELECT {', '.join(pivoted)}\n"
        f"    FROM {tables.PERSON_VARIABLES} WHERE study_id = $study_id GROUP BY person_id\n"
        "), population AS (\n" + base + "\n)\n"
        f"SELECT population.*{''.join(', ' + s for s in selected)}\n"
        "FROM population LEFT JOIN phenotype_columns AS v USING (person_id)"
    )


def _delete_study_rows(engine: Engine, study_id: str) -> None:
    engine.delete_rows_where(STUDY_ROWS, {"study_id": study_id})


def staging_tables_read(study: StudyDefinition) -> tuple[str, ...]:
    """The staging tables the study's cohort SQL reads."""
    return STAGING_TABLES_READ + (LAB_TEST_STAGING_TABLES_READ if isinstance(study.index, LabTestIndex) else ())


def check_inputs(target: Any, study: StudyDefinition | None = None) -> None:
    present = as_engine(target).table_names()
    phenotype_tables = PHENOTYPE_TABLES_READ
    if study is not None and isinstance(study.index, LabTestIndex):
        phenotype_tables += LAB_TEST_PHENOTYPE_TABLES_READ
    staging_tables = staging_tables_read(study) if study is not None else STAGING_TABLES_READ
    needed = [f"staging.{t}" for t in staging_tables] + [f"phenotype.{t}" for t in phenotype_tables]
    missing = [name for name in needed if name not in present]
    if missing:
        raise CohortBuildError(f"the warehouse lacks {', '.join(missing)}: run the ingest and phenotype stages "
                               "before the cohorts")


# ---------------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------------

def build_study(target: Any, study: StudyDefinition) -> StudyBuild:
    """Replace the study's rows in cohort.cohort_definition, cohort.cohort, cohort.study_variables,
    cohort.person_variables, cohort.study_population, results.attrition and results.table1 of `target` (a DuckDB
    connection, a SparkSession or an Engine)."""
    engine = as_engine(target)
    check_inputs(engine, study)
    engine.execute_file(RECORD_SPANS_SQL)  # the models ignore visits and observation periods that end before they start
    engine.execute_file(AGES_SQL)  # eligibility's age at index
    engine.execute_file(MEASUREMENT_VALUES_SQL)  # the lab_test index reads values as the phenotypes do
    create_output_tables(engine)
    add_phenotype_columns(engine, study)
    parameters = study_parameters(study)
    threshold = study.threshold
    with engine.transaction():
        _delete_study_rows(engine, study.id)
        engine.insert_records(tables.COHORT_DEFINITION, [d.model_dump() for d in study.cohort_definitions()])
        engine.insert_records(tables.STUDY_VARIABLES, [
            {"study_id": study.id, "variable": v.variable, "role": v.role, "window_kind": v.window.kind,
             "lookback_days": v.window.days, "variable_order": v.order,
             "new_use_washout_days": v.new_use.washout_days if v.new_use else None,
             "new_use_started_within_days": v.new_use.started_within_days if v.new_use else None}
            for v in study.variables])

        materialise(engine, "observation_periods_merged", parameters)
        materialise(engine, "phenotype_event_dates", parameters)
        if study.index.rule in FIRST_CANDIDATE_RULES:
            materialise(engine, f"index_{study.index.rule}", parameters, table="index_candidates")
            materialise(engine, "index_first_candidate",
                        {**parameters, "no_candidate_reason": FIRST_CANDIDATE_RULES[study.index.rule]},
                        table="index_dates")
        else:
            materialise(engine, f"index_{study.index.rule}", parameters, table="index_dates")
        materialise(engine, "eligibility", parameters)
        _check_exclusion_codes(engine, parameters["step_codes"])

        counts = [(r["step_code"], r["persons_before"], r["persons_after"], r["persons_removed"])
                  for r in query(engine, "attrition_counts", parameters)]
        attrition, warnings = published_attrition(study, counts, threshold)
        warnings += filter(None, [study_period_warning(engine, study, counts)])
        engine.insert_records(tables.ATTRITION, [vars(row) for row in attrition])

        materialise_eras(engine, "on_treatment_fills", parameters, TREATMENT_NUMBERS)
        materialise(engine, "on_treatment_end", parameters)
        engine.insert_select(tables.PERSON_VARIABLES, model_sql("person_variables"), parameters)
        engine.insert_select(tables.STUDY_POPULATION, study_population_select_sql(study), parameters)
        engine.insert_select(tables.COHORT, model_sql("cohort_rows"), parameters)

        materialise(engine, "table1_aggregates", parameters)
        aggregates = engine.records("SELECT * FROM table1_aggregates")
        table1 = build_table1(study, aggregates, threshold, warnings)
        engine.insert_records(tables.TABLE1, [row.as_record() for row in table1])

        if study.time_varying_exposures:
            materialise(engine, "time_varying_person_variables", parameters)
            exposures = engine.records("SELECT DISTINCT variable_number FROM time_varying_person_variables "
                                       "ORDER BY variable_number")
            materialise_eras(engine, "time_varying_spans", parameters, [row["variable_number"] for row in exposures])
            engine.insert_select(tables.TIME_VARYING_EXPOSURE, model_sql("time_varying_exposure"), parameters)

        cohort_size, _ = cohort_counts(engine, study.id)
        warnings += _input_warnings(engine, study)
        for table in TEMPORARY_TABLES:
            engine.drop_temp_table(table)
    return StudyBuild(study.id, cohort_size, attrition, table1, threshold, warnings)


def build_all_studies(target: Any, studies: dict[str, StudyDefinition] | None = None) -> dict[str, StudyBuild]:
    """Build every study (default: all studies/*.yaml) on an open warehouse connection or engine."""
    studies = load_studies() if studies is None else studies
    engine = as_engine(target)
    return {study_id: build_study(engine, study) for study_id, study in studies.items()}


def _check_exclusion_codes(engine: Engine, step_codes: list[str]) -> None:
    """Every exclusion code the SQL wrote must be one of the study's steps, or attrition would lose persons."""
    codes = {row["exclusion_reason"] for row in engine.records(
        "SELECT DISTINCT exclusion_reason FROM eligibility WHERE exclusion_reason IS NOT NULL")}
    unknown = codes - set(step_codes)
    if unknown:  # pragma: no cover - a programming error between the SQL and attrition.py
        raise CohortBuildError(f"exclusion codes without an attrition step: {sorted(unknown)}")


def _input_warnings(engine: Engine, study: StudyDefinition) -> list[str]:
    """Things in the inputs worth a look: phenotypes nobody has, drug fills whose supply could not be found."""
    warnings = []
    parameters = {"phenotype_ids": list(study.phenotype_ids)}
    with_persons = {row["phenotype_id"] for row in engine.records(
        f"SELECT DISTINCT phenotype_id FROM {tables.PHENOTYPE_PERSON_SUMMARY} "
        "WHERE list_contains($phenotype_ids, phenotype_id)", parameters)}
    empty = [p for p in study.phenotype_ids if p not in with_persons]
    if empty:
        warnings.append(f"phenotypes with no persons in phenotype.person_summary: {', '.join(empty)}")
    [fills] = engine.records(
        "SELECT count(*) AS fills FROM phenotype.events WHERE source_table = 'drug_exposure' "
        "AND event_end_date IS NULL AND list_contains($phenotype_ids, phenotype_id)", parameters)
    fills_without_supply = fills["fills"]
    if fills_without_supply:
        warnings.append(f"{fills_without_supply:,} drug fills in phenotype.events have no event_end_date (last "
                        "day of supply); their supply is taken as one day")
    return warnings
