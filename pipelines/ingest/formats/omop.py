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
from pipelines.ingest.formats.detection import OMOP_VOCABULARY_COLUMNS, DetectedFormat
from pipelines.ingest.formats.files import reader_sql
from pipelines.ingest.loader import Log

# Vocabularies phenotypes are written in that an OMOP concept can carry (vocabulary_id spelling is the same).
PHENOTYPE_VOCABULARIES = set(spec.VOCABULARIES) - {"LOCAL"}


def load_omop(con: duckdb.DuckDBPyConnection, extract_dir: Path, detected: DetectedFormat, log: Log) -> FormatLoad:
    run_sql_file(con, "staging/format_macros.sql")
    has_vocabulary = _create_vocabulary_tables(con, detected, log)
    sources = {
        table.name: ((detected.files[table.name], shape_sql(f"staging/omop_{table.name}.sql"))
                     if table.name in detected.files else None)
        for table in spec.TABLES
    }
    loads = load_shaped_tables(con, extract_dir, sources, log)
    run_sql_file(con, "staging/omop_concept_code_map.sql")
    result = FormatLoad(detected.label, loads)
    _report_resolution(con, result, has_vocabulary)
    for table in ("omop_vocabulary_concept", "omop_vocabulary_relationship", "omop_vocabulary_ancestor"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return result


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
        unmapped, total = con.execute(
            """SELECT count(*) FILTER (WHERE NOT EXISTS (
                   SELECT 1 FROM vocabulary.concept_code_map m WHERE m.vocabulary = d.drug_vocabulary
                   AND m.code = d.drug_code AND m.mapping = 'ingredient')), count(*)
               FROM staging.drug_exposure d"""
        ).fetchone()
        if total:
            result.notes.append(f"{unmapped:,} of {total:,} drug records have no RxNorm ingredient in the extract's "
                                "vocabulary (ingredient-level records and vaccines included); ingredient-defined "
                                "drug phenotypes can only find them when they are themselves ingredients.")
        reason = {
            "condition": "no code of theirs is reachable from the extract's condition concepts and their "
                         "'Maps to' source codes",
            "drug": "the extract's vocabulary links no drug record to an RxNorm ingredient or ATC class "
                    "(concept_ancestor / 'RxNorm has ing')",
            "measurement": "no code of theirs is in the extract's measurement vocabularies",
        }
    result.unresolvable_phenotypes = unresolvable_phenotypes(reachable, reason)
    result.warnings += unresolvable_warnings(result.unresolvable_phenotypes, reason)
