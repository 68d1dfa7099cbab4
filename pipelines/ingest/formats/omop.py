"""OMOP CDM v5.3 / v5.4 extracts: shape each clinical table into its canonical table (sql/staging/omop_*.sql) and
build vocabulary.concept_code_map from the extract's own vocabulary tables."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import duckdb

from pipelines import extract_spec as spec
from pipelines.ingest.formats.base import (
    DetectedFormat,
    ExtractFormat,
    FormatLoad,
    Signature,
    check_columns,
    check_required,
)
from pipelines.ingest.formats.common import (
    PhenotypeVocabularies,
    listing,
    run_sql_file,
    unresolvable_phenotypes,
    unresolvable_warnings,
)
from pipelines.ingest.formats.files import lower_header, reader_sql
from pipelines.ingest.loader import Log
from pipelines.vocabularies import TABLE_BY_DOMAIN

OMOP = "omop_cdm"

# The files an OMOP extract needs, with the columns the ingest reads from them (lower-case).
OMOP_REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth",
               "race_source_value", "ethnicity_source_value", "care_site_id"),
    "observation_period": ("observation_period_id", "person_id", "observation_period_start_date",
                           "observation_period_end_date"),
}
# OMOP clinical tables the ingest reads when the extract has them (created empty, with a warning, when not).
OMOP_CLINICAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "visit_occurrence": ("visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date",
                         "visit_end_date"),
    "condition_occurrence": ("condition_occurrence_id", "person_id", "condition_concept_id",
                             "condition_source_concept_id", "condition_source_value", "condition_start_date",
                             "condition_end_date", "visit_occurrence_id"),
    "drug_exposure": ("drug_exposure_id", "person_id", "drug_concept_id", "drug_source_concept_id",
                      "drug_source_value", "drug_exposure_start_date", "drug_exposure_end_date", "days_supply",
                      "quantity", "visit_occurrence_id"),
    "measurement": ("measurement_id", "person_id", "measurement_concept_id", "measurement_source_concept_id",
                    "measurement_source_value", "measurement_date", "value_as_number", "unit_concept_id",
                    "unit_source_value", "visit_occurrence_id"),
    "procedure_occurrence": ("procedure_occurrence_id", "person_id", "procedure_concept_id",
                             "procedure_source_concept_id", "procedure_source_value", "procedure_date",
                             "visit_occurrence_id"),
    "death": ("person_id", "death_date"),
}
OMOP_VOCABULARY_COLUMNS: dict[str, tuple[str, ...]] = {
    "concept": ("concept_id", "vocabulary_id", "concept_code", "concept_class_id"),
    "concept_relationship": ("concept_id_1", "concept_id_2", "relationship_id", "invalid_reason"),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
}
# Columns only v5.4 has (v5.3 names the visit's admitting columns admitting_source_*, and has no procedure end or
# measurement event): any of them present makes the extract v5.4.
OMOP_V54_COLUMNS = (("visit_occurrence", "admitted_from_concept_id"), ("procedure_occurrence", "procedure_end_date"),
                    ("measurement", "measurement_event_id"))
# Every table of the OMOP CDM v5.3 and v5.4 (clinical, health system, derived, metadata, vocabulary): a file of
# another name is reported as not recognised, with the names the ingest reads.
OMOP_CDM_TABLES = frozenset((
    "person", "observation_period", "visit_occurrence", "visit_detail", "condition_occurrence", "drug_exposure",
    "procedure_occurrence", "device_exposure", "measurement", "observation", "death", "note", "note_nlp",
    "specimen", "fact_relationship", "survey_conduct", "location", "location_history", "care_site", "provider",
    "payer_plan_period", "cost", "drug_era", "dose_era", "condition_era", "episode", "episode_event", "metadata",
    "cdm_source", "concept", "vocabulary", "domain", "concept_class", "concept_relationship", "relationship",
    "concept_synonym", "concept_ancestor", "source_to_concept_map", "drug_strength", "cohort", "cohort_definition",
    "attribute_definition", "cohort_attribute",
))

# Vocabularies phenotypes are written in that an OMOP concept can carry (vocabulary_id spelling is the same).
PHENOTYPE_VOCABULARIES = set(spec.VOCABULARIES) - {"LOCAL"}


# The vocabulary files the ingest reads, named in the report of unrecognised files.
VOCABULARY_FILE_NAMES = ", ".join(f"{table}.csv" for table in OMOP_VOCABULARY_COLUMNS)
# What an absent clinical table takes away beyond its phenotypes.
ABSENT_TABLE_EFFECT = {
    "visit_occurrence": "events keep no visit, and studies indexed on a visit find nobody",
    "procedure_occurrence": "no procedure is seen",
    "death": "nobody is censored at death (follow-up runs to the end of observation)",
}
# What a site can do about phenotypes its extract cannot resolve.
NO_VOCABULARY_REMEDY = ("ship the extract's OMOP vocabulary tables (concept, concept_relationship, concept_ancestor, "
                        "as exported with the CDM), or describe files that hold the source codes with an "
                        "extract_mapping.yaml naming their code system (docs/extract_formats.md, site layouts)")
UNRESOLVED_REMEDY = ("ship the full OMOP vocabulary (concept with the SNOMED, ICD10CM, RxNorm, ATC and LOINC concepts "
                     "the phenotypes list, concept_relationship with 'Maps to' and the RxNorm ingredient links, "
                     "concept_ancestor), not a subset cut to the extract's own concepts")
# Work tables of sql/staging/omop_vocabulary.sql and omop_concept_code_map.sql, dropped after the load.
WORK_TABLES = ("omop_vocabulary_concept", "omop_vocabulary_concept_defects", "omop_ingredient_relationship",
               "omop_vocabulary_relationship", "omop_vocabulary_ancestor", "omop_staged_concept",
               "omop_drug_ingredient")


class OmopFormat(ExtractFormat):
    name = OMOP
    signature = Signature("person", ("person_id", "year_of_birth", "gender_concept_id"))
    required_columns = OMOP_REQUIRED_COLUMNS
    optional_columns = {**OMOP_CLINICAL_COLUMNS, **OMOP_VOCABULARY_COLUMNS}
    source_tables = {table.name: table.name for table in spec.TABLES}
    sql_prefix = "omop"
    concept_code_map_sql = "staging/omop_concept_code_map.sql"
    work_tables = WORK_TABLES

    def expected_layout(self) -> str:
        return (f"OMOP CDM v5.3/v5.4 (file and column names in any case, .csv/.csv.gz/.parquet): "
                f"{listing(OMOP_REQUIRED_COLUMNS)}; optional (created empty, with a warning): "
                f"{listing(OMOP_CLINICAL_COLUMNS)}; vocabulary: {listing(OMOP_VOCABULARY_COLUMNS)}")

    def detect(self, folder: Path, files: dict[str, Path]) -> DetectedFormat:
        check_required(folder, self.name, files, self.required_columns)
        check_columns(folder, files, self.optional_columns)
        version = "5.4" if any(column in lower_header(files[table]) for table, column in OMOP_V54_COLUMNS
                               if table in files) else "5.3"
        unrecognised = tuple(sorted(path.name for table, path in files.items() if table not in OMOP_CDM_TABLES))
        return DetectedFormat(self.name, version, files, unrecognised)

    def prepare(self, con: duckdb.DuckDBPyConnection, detected: DetectedFormat, log: Log) -> None:
        _create_vocabulary_tables(con, detected, log)

    def report(self, con: duckdb.DuckDBPyConnection, detected: DetectedFormat, result: FormatLoad,
               phenotype_vocabularies: PhenotypeVocabularies | None) -> None:
        has_vocabulary = con.execute("SELECT count(*) FROM omop_vocabulary_concept").fetchall()[0][0] > 0
        result.warnings += _unrecognised_file_warnings(detected)
        result.warnings += _vocabulary_defect_warnings(con, detected)
        _report_resolution(con, result, has_vocabulary, phenotype_vocabularies)
        result.table_warnings = _absent_table_warnings(detected, result.unresolvable_phenotypes)
        result.warnings += result.table_warnings.values()

    def check(self, detected: DetectedFormat,
              phenotype_vocabularies: Callable[[], PhenotypeVocabularies] | None) -> list[str]:
        """Files not recognised, repeated concept ids, absent clinical tables and the phenotypes they take away."""
        with duckdb.connect() as con:
            run_sql_file(con, "staging/format_macros.sql")
            _create_vocabulary_tables(con, detected, lambda message: None)
            warnings = _unrecognised_file_warnings(detected) + _vocabulary_defect_warnings(con, detected)
        absent_domains = {domain for domain, table in TABLE_BY_DOMAIN.items() if table not in detected.files}
        reachable = {domain: set() if domain in absent_domains else PHENOTYPE_VOCABULARIES
                     for domain in TABLE_BY_DOMAIN}
        # The phenotype library is read only when an absent table takes phenotypes away.
        known = phenotype_vocabularies() if phenotype_vocabularies is not None and absent_domains else None
        unresolvable = unresolvable_phenotypes(reachable, known)
        return warnings + list(_absent_table_warnings(detected, unresolvable).values())


def _unrecognised_file_warnings(detected: DetectedFormat) -> list[str]:
    if not detected.unrecognised:
        return []
    return [f"file(s) not recognised as OMOP CDM tables, not read: {', '.join(detected.unrecognised)}. The ingest "
            f"reads {', '.join(f'{t}.csv' for t in {**OMOP_REQUIRED_COLUMNS, **OMOP_CLINICAL_COLUMNS})} and the "
            f"vocabulary {VOCABULARY_FILE_NAMES} (any case; .csv, .csv.gz, .parquet, .tsv, .txt): rename a file "
            "that holds one of these tables (2b_concept.csv -> concept.csv)."]


def _vocabulary_defect_warnings(con: duckdb.DuckDBPyConnection, detected: DetectedFormat) -> list[str]:
    """A concept_id on several rows of the concept file is a vocabulary defect: one row per id was kept."""
    repeated, conflicting, examples = con.execute(
        """SELECT count(*), count(*) FILTER (WHERE distinct_rows > 1),
                  list(concept_id ORDER BY distinct_rows > 1 DESC, TRY_CAST(concept_id AS BIGINT), concept_id)[1:10]
           FROM omop_vocabulary_concept_defects"""
    ).fetchall()[0]
    if not repeated:
        return []
    return [f"vocabulary defect: {detected.files['concept'].name} has {repeated:,} concept_id(s) on more than one row "
            f"({conflicting:,} with differing vocabulary, code or class), for example {', '.join(examples)}; the "
            "first row of each id in file order is used, so no event is counted twice. Fix the concept file (one "
            "row per concept_id, as the OMOP vocabulary ships it)."]


def _absent_table_warnings(detected: DetectedFormat, unresolvable: dict[str, list[str]]) -> dict[str, str]:
    """An OMOP clinical table the extract does not ship is created empty: say what that takes away, by table."""
    warnings = {}
    domain_by_table = {table: domain for domain, table in TABLE_BY_DOMAIN.items()}
    for table in OMOP_CLINICAL_COLUMNS:
        if table in detected.files:
            continue
        if table in domain_by_table and unresolvable.get(table):
            ids = unresolvable[table]
            effect = (f"its {len(ids)} {domain_by_table[table]} phenotype(s) cannot be resolved and find nobody: "
                      f"{', '.join(ids)}")
        elif table in domain_by_table:  # no phenotype named (the caller passed no phenotype library)
            effect = f"no {domain_by_table[table]} phenotype can find anybody"
        else:
            effect = ABSENT_TABLE_EFFECT[table]
        warnings[table] = (f"the extract ships no {table} table (created empty): {effect}. Add {table}.csv to "
                           "the extract if the site has it.")
    return warnings


def _create_vocabulary_tables(con: duckdb.DuckDBPyConnection, detected: DetectedFormat, log: Log) -> None:
    """The extract's concept tables as work tables (empty when absent)."""
    for table, columns in OMOP_VOCABULARY_COLUMNS.items():
        view = f"omop_{table}_source"
        if table in detected.files:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {reader_sql(detected.files[table])}")
        else:
            empty = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in columns)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {empty} WHERE FALSE")
    run_sql_file(con, "staging/omop_vocabulary.sql")
    concepts = con.execute("SELECT count(*) FROM omop_vocabulary_concept").fetchall()[0][0]
    log(f"OMOP vocabulary: {concepts:,} concepts from the extract's own concept table"
        if concepts else "OMOP vocabulary: the extract ships no concept table")


def _report_resolution(con: duckdb.DuckDBPyConnection, result: FormatLoad, has_vocabulary: bool,
                       phenotype_vocabularies: PhenotypeVocabularies | None) -> None:
    """Which phenotype vocabularies the staged codes (and their mapped pairs) reach, per domain."""
    if not has_vocabulary:
        reason = {d: "the extract ships no vocabulary tables (concept, concept_relationship, concept_ancestor), "
                     "so its concept ids cannot be turned into codes" for d in ("condition", "drug", "measurement")}
        reachable: dict[str, set[str]] = {}
    else:
        reachable = {}
        for domain, table, vocabulary_column, code_column in (
            ("condition", "condition_occurrence", "condition_vocabulary", "condition_code"),
            ("measurement", "measurement", "measurement_vocabulary", "measurement_code"),
        ):
            rows = con.execute(
                f"""SELECT DISTINCT vocabulary FROM (
                        SELECT DISTINCT {vocabulary_column} AS vocabulary, {code_column} AS code FROM staging.{table})
                    UNION SELECT DISTINCT m.mapped_vocabulary FROM vocabulary.concept_code_map m
                    JOIN (SELECT DISTINCT {vocabulary_column} AS vocabulary, {code_column} AS code
                          FROM staging.{table}) s USING (vocabulary, code)"""
            ).fetchall()
            reachable[domain] = {row[0] for row in rows} & PHENOTYPE_VOCABULARIES
        # Drug phenotypes list RxNorm *ingredients* and ATC classes: RxNorm counts as reachable only when some
        # drug record is an ingredient or has one in the map.
        drug_rows = con.execute(
            """SELECT DISTINCT mapped_vocabulary FROM vocabulary.concept_code_map m
               JOIN (SELECT DISTINCT drug_vocabulary AS vocabulary, drug_code AS code FROM staging.drug_exposure) s
               USING (vocabulary, code)"""
        ).fetchall()
        reachable["drug"] = {row[0] for row in drug_rows} & {"RxNorm", "ATC"}
        result.warnings += _drug_ingredient_warnings(con)
        reason = {
            "condition": "no code of theirs is reachable from the extract's condition concepts and their "
                         "'Maps to' source codes",
            "drug": "the extract's vocabulary links no drug record to an RxNorm ingredient or ATC class "
                    "(concept_ancestor, or the RxNorm relationship chain of concept_relationship)",
            "measurement": "no code of theirs is in the extract's measurement vocabularies",
        }
    result.unresolvable_phenotypes = unresolvable_phenotypes(reachable, phenotype_vocabularies)
    result.warnings += unresolvable_warnings(result.unresolvable_phenotypes, reason,
                                             {domain: UNRESOLVED_REMEDY if has_vocabulary else NO_VOCABULARY_REMEDY
                                              for domain in TABLE_BY_DOMAIN})


def _drug_ingredient_warnings(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Exact counts of the drug records (and persons) that reach an RxNorm ingredient, by route, and of those that
    do not, by vocabulary (vaccines coded in CVX have no ingredient; RxNorm drugs without one lack vocabulary)."""
    con.execute(
        """CREATE OR REPLACE TEMP VIEW omop_drug_record_route AS
           WITH routes AS (
               SELECT vocabulary, code, bool_or(route = 'concept_ancestor') AS by_ancestor
               FROM omop_drug_ingredient WHERE mapping = 'ingredient' GROUP BY ALL)
           SELECT d.person_id, d.drug_vocabulary, routes.by_ancestor,
                  EXISTS (SELECT 1 FROM omop_vocabulary_concept c
                          WHERE c.vocabulary_id = d.drug_vocabulary AND c.concept_code = d.drug_code
                            AND c.vocabulary_id = 'RxNorm' AND c.concept_class_id = 'Ingredient') AS ingredient
           FROM staging.drug_exposure d
           LEFT JOIN routes ON routes.vocabulary = d.drug_vocabulary AND routes.code = d.drug_code"""
    )
    [(total, persons, by_ancestor, by_chain, ingredient_level, unresolved_persons)] = con.execute(
        """SELECT count(*), count(DISTINCT person_id), count(*) FILTER (WHERE by_ancestor),
                  count(*) FILTER (WHERE NOT by_ancestor), count(*) FILTER (WHERE by_ancestor IS NULL AND ingredient),
                  count(DISTINCT person_id) FILTER (WHERE by_ancestor IS NULL AND NOT ingredient)
           FROM omop_drug_record_route"""
    ).fetchall()
    unresolved_by_vocabulary = con.execute(
        """SELECT coalesce(drug_vocabulary, 'none'), count(*) FROM omop_drug_record_route
           WHERE by_ancestor IS NULL AND NOT ingredient GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    con.execute("DROP VIEW omop_drug_record_route")
    if not total:
        return []
    by_vocabulary = dict(unresolved_by_vocabulary)
    unresolved = sum(by_vocabulary.values())
    message = (f"drug ingredients: {total - unresolved:,} of {total:,} drug records resolve to an RxNorm ingredient "
               f"({by_ancestor:,} through concept_ancestor, {by_chain:,} through the RxNorm relationship chain of "
               f"concept_relationship, {ingredient_level:,} recorded as the ingredient itself); {unresolved:,} "
               f"records of {unresolved_persons:,} of {persons:,} persons resolve to none")
    if unresolved:
        listed = ", ".join(f"{vocabulary} {count:,}" for vocabulary, count in by_vocabulary.items())
        message += f" ({listed}), and no ingredient-defined drug phenotype can find them"
    if by_vocabulary.get("RxNorm"):
        message += ("; for RxNorm drugs without an ingredient ship the extract's full OMOP vocabulary (concept with "
                    "the ingredients, concept_relationship, concept_ancestor)")
    return [message + "."]


FORMAT = OmopFormat()
