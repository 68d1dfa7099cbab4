"""OMOP CDM v5.3 / v5.4 extracts: shape each clinical table into its canonical table (sql/staging/omop_*.sql) and
build vocabulary.concept_code_map from the extract's own vocabulary tables."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines import extract_spec as spec
from pipelines.ingest.formats.common import (
    FormatLoad,
    load_shaped_tables,
    run_sql_file,
    shape_sql,
    unresolvable_phenotypes,
    unresolvable_warnings,
)
from pipelines.ingest.formats.detection import (
    OMOP_CLINICAL_COLUMNS,
    OMOP_REQUIRED_COLUMNS,
    OMOP_VOCABULARY_COLUMNS,
    DetectedFormat,
)
from pipelines.ingest.formats.files import reader_sql
from pipelines.ingest.loader import Log
from pipelines.vocabularies import TABLE_BY_DOMAIN

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
# Work tables of sql/staging/omop_vocabulary.sql and omop_concept_code_map.sql, dropped after the load.
WORK_TABLES = ("omop_vocabulary_concept", "omop_vocabulary_concept_defects", "omop_ingredient_relationship",
               "omop_vocabulary_relationship", "omop_vocabulary_ancestor", "omop_staged_concept",
               "omop_drug_ingredient")


def load_omop(con: duckdb.DuckDBPyConnection, extract_dir: Path, detected: DetectedFormat, log: Log) -> FormatLoad:
    run_sql_file(con, "staging/format_macros.sql")
    has_vocabulary = _create_vocabulary_tables(con, detected, log)
    sources = {
        table.name: ((detected.files[table.name], shape_sql(f"staging/omop_{table.name}.sql"))
                     if table.name in detected.files else None)
        for table in spec.TABLES
    }
    read_columns = {**OMOP_REQUIRED_COLUMNS, **OMOP_CLINICAL_COLUMNS}
    loads = load_shaped_tables(con, extract_dir, sources, log, source_columns=read_columns)
    run_sql_file(con, "staging/omop_concept_code_map.sql")
    result = FormatLoad(detected.label, loads)
    result.warnings += _unrecognised_file_warnings(detected)
    result.warnings += _vocabulary_defect_warnings(con, detected)
    _report_resolution(con, result, has_vocabulary)
    result.table_warnings = _absent_table_warnings(detected, result.unresolvable_phenotypes)
    result.warnings += result.table_warnings.values()
    for table in WORK_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return result


def check_omop(detected: DetectedFormat) -> list[str]:
    """What a load would warn about the extract's layout and vocabulary, without loading its clinical tables: files
    not recognised, repeated concept ids, absent clinical tables and the phenotypes they take away."""
    with duckdb.connect() as con:
        run_sql_file(con, "staging/format_macros.sql")
        _create_vocabulary_tables(con, detected, lambda message: None)
        warnings = _unrecognised_file_warnings(detected) + _vocabulary_defect_warnings(con, detected)
    absent_domains = {domain for domain, table in TABLE_BY_DOMAIN.items() if table not in detected.files}
    reachable = {domain: set() if domain in absent_domains else PHENOTYPE_VOCABULARIES for domain in TABLE_BY_DOMAIN}
    unresolvable = unresolvable_phenotypes(reachable, {})
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
        if table in domain_by_table:
            ids = unresolvable.get(table, [])
            effect = (f"its {len(ids)} {domain_by_table[table]} phenotype(s) cannot be resolved and find nobody: "
                      f"{', '.join(ids)}")
        else:
            effect = ABSENT_TABLE_EFFECT[table]
        warnings[table] = (f"the extract ships no {table} table (created empty): {effect}. Add {table}.csv to "
                           "the extract if the site has it.")
    return warnings


def _create_vocabulary_tables(con: duckdb.DuckDBPyConnection, detected: DetectedFormat, log: Log) -> bool:
    """The extract's concept tables as work tables (empty when absent); True when it has a concept table."""
    for table, columns in OMOP_VOCABULARY_COLUMNS.items():
        view = f"omop_{table}_source"
        if table in detected.files:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {reader_sql(detected.files[table])}")
        else:
            empty = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in columns)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {empty} WHERE FALSE")
    run_sql_file(con, "staging/omop_vocabulary.sql")
    concepts = con.execute("SELECT count(*) FROM omop_vocabulary_concept").fetchone()[0]
    log(f"OMOP vocabulary: {concepts:,} concepts from the extract's own concept table"
        if concepts else "OMOP vocabulary: the extract ships no concept table")
    return concepts > 0


def _report_resolution(con: duckdb.DuckDBPyConnection, result: FormatLoad, has_vocabulary: bool) -> None:
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
    result.unresolvable_phenotypes = unresolvable_phenotypes(reachable, reason)
    result.warnings += unresolvable_warnings(result.unresolvable_phenotypes, reason)


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
