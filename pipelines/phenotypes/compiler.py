"""Turning the phenotype library into set-based DuckDB SQL, and running it.

The SQL lives in sql/phenotypes/. Compiling means: turning the checked YAML definitions into rows of small
definition tables (phenotype.code_list, phenotype.rules, ...) and listing the SQL files to run in order. No code
ever appears inside SQL text: the statements join the staging tables to these tables.

The order of a run:

1. create the phenotype schema and load the definition tables (sql/phenotypes/load/*.sql, one row per execution)
2. record_spans.sql: the rule that a record ending before it starts does not count (a macro the record statements
   call); code_to_phenotype.sql: the distinct codes present in the condition, drug and measurement tables matched
   against phenotype.code_list once (the only code matching); then one statement per staging table, each covering
   every phenotype of its domain: condition_records.sql (staging.condition_occurrence + staging.visit_occurrence),
   drug_records.sql (staging.drug_exposure, a view read straight into phenotype.events), measurement_records.sql
   (staging.measurement); records.sql: all of them as one view
3. events.sql (the records into phenotype.events, but those of phenotypes with an exclusion with a window),
   record_exclusions.sql (their records that are not near an excluding record), rule_met.sql (the person-level
   rules), person_summary.sql (person exclusions), then composites depth by depth (composite_person_summary.sql,
   composite_events.sql). No step deletes rows: record_exclusions.sql says why.

Public entry points: ``compile_phenotypes(library)`` (what would run) and ``run_phenotypes(target)`` (run it, on a
DuckDB connection, a SparkSession or any engine of pipelines/engine/).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass, field
from typing import Any

from pipelines import paths
from pipelines.engine import Engine, as_engine
from pipelines.phenotypes.loader import LoadedPhenotype, PhenotypeLibrary, phenotype_library
from pipelines.phenotypes.schema import (
    CONVERSION_DECIMALS,
    AllOfRule,
    InpatientOrOutpatientRule,
    MinRecordsRule,
    normalise_unit,
)
from pipelines.sql import MEASUREMENT_VALUES_SQL, RECORD_SPANS_SQL, read_sql

# The definition tables, in load order; each has sql/phenotypes/load/<table>.sql.
DEFINITION_TABLES: tuple[str, ...] = (
    "definitions",
    "code_list",
    "rules",
    "measurement_rules",
    "unit_conversions",
    "measurement_code_units",
    "person_exclusions",
    "composite_components",
)

# The statements that read staging tables: the rules for records that end before they start and for measurement
# values, the codes present in all of them matched once, then one statement per table (the single pass over the
# records of each domain), and all records as one view.
RECORD_STEPS: tuple[str, ...] = (
    RECORD_SPANS_SQL,
    MEASUREMENT_VALUES_SQL,
    "phenotypes/code_to_phenotype.sql",
    "phenotypes/condition_records.sql",
    "phenotypes/drug_records.sql",
    "phenotypes/measurement_records.sql",
    "phenotypes/records.sql",
)
# phenotype.events from the records, then the rules applied on the work tables and phenotype.events.
SUMMARY_STEPS: tuple[str, ...] = (
    "phenotypes/events.sql",
    "phenotypes/record_exclusions.sql",
    "phenotypes/rule_met.sql",
    "phenotypes/person_summary.sql",
)
COMPOSITE_STEPS: tuple[str, ...] = (
    "phenotypes/composite_person_summary.sql",
    "phenotypes/composite_events.sql",
)

@dataclass(frozen=True)
class SqlStep:
    """One SQL file to execute: once with ``parameters``, or once per row of ``rows``."""

    file: str  # relative to sql/
    parameters: dict[str, Any] | None = None
    rows: tuple[dict[str, Any], ...] | None = None

    @property
    def sql(self) -> str:
        return read_sql(self.file)

    def execute(self, engine: Engine) -> None:
        if self.rows is not None:
            engine.execute_many(self.sql, self.rows)
        else:
            engine.execute(self.sql, self.parameters)


@dataclass(frozen=True)
class CompiledPhenotypes:
    """Everything a run executes, in order."""

    library: PhenotypeLibrary
    steps: tuple[SqlStep, ...]
    definition_rows: dict[str, list[dict[str, Any]]] = field(repr=False)


@dataclass(frozen=True)
class PhenotypeCounts:
    phenotype_id: str
    version: int
    event_rows: int  # rows in phenotype.events
    person_count: int  # persons who meet the rule (rows in phenotype.person_summary)


def compile_phenotypes(library: PhenotypeLibrary) -> CompiledPhenotypes:
    """The definition-table rows and the ordered SQL steps that compute every phenotype of ``library``."""
    rows = definition_rows(library)
    steps: list[SqlStep] = [
        SqlStep("phenotypes/drop_work_tables.sql"),
        SqlStep("phenotypes/create_tables.sql"),
    ]
    steps += [SqlStep(f"phenotypes/load/{table}.sql", rows=tuple(rows[table])) for table in DEFINITION_TABLES]
    steps += [SqlStep(file) for file in RECORD_STEPS]
    steps += [SqlStep(file) for file in SUMMARY_STEPS]
    composite_depths = sorted({p.depth for p in library if p.definition.domain == "composite"})
    for depth in composite_depths:
        steps += [SqlStep(file, parameters={"depth": depth}) for file in COMPOSITE_STEPS]
    steps.append(SqlStep("phenotypes/drop_work_tables.sql"))
    return CompiledPhenotypes(library=library, steps=tuple(steps), definition_rows=rows)


def run_phenotypes(target: Any, library: PhenotypeLibrary | None = None) -> dict[str, PhenotypeCounts]:
    """Compute every phenotype into schema ``phenotype`` of ``target`` (a DuckDB connection, a SparkSession or an
    Engine), which must hold the staging tables.

    On DuckDB it runs in one transaction of its own (so the connection must not be inside one): on error, nothing of
    this run stays behind and the previous phenotype tables, if any, are kept. Returns the counts per phenotype.
    """
    engine = as_engine(target)
    if library is None:
        library = phenotype_library()
    compiled = compile_phenotypes(library)
    with engine.transaction():
        for step in compiled.steps:
            step.execute(engine)
    return phenotype_counts(engine)


def phenotype_counts(target: Any) -> dict[str, PhenotypeCounts]:
    """Event rows and persons per phenotype, from the phenotype schema of ``target``."""
    result = as_engine(target).records(read_sql("phenotypes/counts.sql"))
    return {row["phenotype_id"]: PhenotypeCounts(*row.values()) for row in result}


# ---------------------------------------------------------------------------------------------------------------
# Definition tables
# ---------------------------------------------------------------------------------------------------------------

def definition_rows(library: PhenotypeLibrary) -> dict[str, list[dict[str, Any]]]:
    """The rows of every definition table (DEFINITION_TABLES), as parameter dicts for sql/phenotypes/load/."""
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in DEFINITION_TABLES}
    for phenotype in library:
        definition = phenotype.definition
        rows["definitions"].append({
            "phenotype_id": definition.id,
            "name": definition.name,
            "domain": definition.domain,
            "version": definition.version,
            "source_file": phenotype.source_file,
            "sha256": phenotype.sha256,
            "variant_of": definition.variant_of,
        })
        rows["code_list"] += _code_list_rows(phenotype)
        rows["rules"].append(_rule_row(phenotype))
        if definition.measurement is not None:
            _add_measurement_rows(phenotype, rows)
        rule = definition.rule
        if isinstance(rule, AllOfRule):
            for role, component_ids in (("all_of", rule.all_of), ("none_of", rule.none_of)):
                rows["composite_components"] += [
                    {"phenotype_id": definition.id, "component_id": component_id, "role": role,
                     "depth": phenotype.depth}
                    for component_id in component_ids]
        else:
            window_days = rule.exclusion_window_days if isinstance(rule, MinRecordsRule) else None
            rows["person_exclusions"] += [
                {"phenotype_id": definition.id, "excluding_phenotype_id": excluding_id, "window_days": window_days}
                for excluding_id in rule.exclude_persons_with]
    return rows


# SNOMED CT descendants of the seed's concepts, bundled for extracts that ship no concept_ancestor
# (phenotypes/reference/README.md says where each pair was read).
SNOMED_DESCENDANTS_FILE = paths.PHENOTYPES_DIR / "reference" / "snomed_descendants.csv"


@functools.cache
def bundled_snomed_descendants() -> dict[str, tuple[str, ...]]:
    """SNOMED CT concept code -> the codes of its descendants named by the bundled list."""
    descendants: dict[str, list[str]] = {}
    with SNOMED_DESCENDANTS_FILE.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            descendants.setdefault(row["ancestor_code"], []).append(row["descendant_code"])
    return {ancestor: tuple(codes) for ancestor, codes in descendants.items()}


def _code_list_rows(phenotype: LoadedPhenotype) -> list[dict[str, Any]]:
    """One row per listed code. A SNOMED code listed with its descendants brings its bundled descendants as codes
    of their own (same match type), so an extract without concept_ancestor still finds them; with concept_ancestor
    they are reached twice, which changes nothing (code_to_phenotype.sql counts a code once per phenotype)."""
    definition = phenotype.definition
    bundled = bundled_snomed_descendants()
    rows = []
    for excluded, groups in ((False, definition.codes), (True, definition.exclude_codes)):
        for group in groups:
            codes = list(group.codes)
            if group.match == "descendants":
                codes += [d for code in group.codes for d in bundled.get(code, ())]
            for code in dict.fromkeys(codes):
                rows.append({"phenotype_id": definition.id, "vocabulary": group.vocabulary, "code": code,
                             "match_type": group.match, "excluded": excluded})
    return rows


def _rule_row(phenotype: LoadedPhenotype) -> dict[str, Any]:
    rule = phenotype.definition.rule
    return {
        "phenotype_id": phenotype.id,
        "rule_type": rule.type,
        "min_records": rule.min_records if isinstance(rule, MinRecordsRule) else None,
        "min_days_apart": rule.min_days_apart if isinstance(rule, InpatientOrOutpatientRule) else None,
    }


def _add_measurement_rows(phenotype: LoadedPhenotype, rows: dict[str, list[dict[str, Any]]]) -> None:
    definition = phenotype.definition
    measurement = definition.measurement
    assert measurement is not None
    factors = {normalise_unit(u.unit): u.factor for u in measurement.units}

    def to_canonical(value: float | None, unit: str | None) -> float | None:
        if value is None:
            return None
        factor = factors[normalise_unit(unit)] if unit is not None else 1.0
        return round(value * factor, CONVERSION_DECIMALS)

    plausible_min, plausible_max, plausible_min_inclusive = measurement.canonical_plausible_range()
    threshold = measurement.threshold
    rows["measurement_rules"].append({
        "phenotype_id": definition.id,
        "canonical_unit": measurement.canonical_unit,
        "plausible_min": plausible_min,
        "plausible_min_inclusive": plausible_min_inclusive,
        "plausible_max": plausible_max,
        "threshold_lower": to_canonical(threshold.lower, threshold.unit),
        "threshold_lower_inclusive": None if threshold.lower is None else threshold.at_least is not None,
        "threshold_upper": to_canonical(threshold.upper, threshold.unit),
        "threshold_upper_inclusive": None if threshold.upper is None else threshold.at_most is not None,
    })
    rows["unit_conversions"] += [
        {"phenotype_id": definition.id, "unit": unit, "factor": factor} for unit, factor in factors.items()]
    for group in definition.codes:
        assert group.unit is not None  # the loader requires it for measurement codes
        rows["measurement_code_units"] += [
            {"phenotype_id": definition.id, "vocabulary": group.vocabulary, "code": code,
             "unit": normalise_unit(group.unit)}
            for code in group.codes]
