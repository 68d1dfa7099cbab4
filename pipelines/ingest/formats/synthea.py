"""Native Synthea CSV extracts (patients, encounters, conditions, medications, observations, procedures):
shaped into the canonical tables by sql/staging/synthea_*.sql."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.ingest.formats.common import (
    FormatLoad,
    load_shaped_tables,
    run_sql_file,
    shape_sql,
    unresolvable_phenotypes,
    unresolvable_warnings,
)
from pipelines.ingest.formats.detection import DetectedFormat
from pipelines.ingest.formats.files import reader_sql
from pipelines.ingest.loader import Log

# Canonical table -> Synthea file it is shaped from.
SOURCE_FILE = {
    "person": "patients",
    "observation_period": "patients",
    "visit_occurrence": "encounters",
    "condition_occurrence": "conditions",
    "drug_exposure": "medications",
    "measurement": "observations",
    "procedure_occurrence": "procedures",
    "death": "patients",
}

# What Synthea's codes can match: conditions and procedures are SNOMED CT, observations LOINC. Medications are
# RxNorm *clinical drugs*, which no phenotype lists (they list ingredients and ATC classes), and Synthea ships no
# vocabulary to roll them up.
REACHABLE = {"condition": {"SNOMED"}, "drug": set(), "measurement": {"LOINC"}}
REASON = {
    "condition": "Synthea codes conditions in SNOMED CT only; ICD10CM codes have no mapping without a vocabulary",
    "drug": "Synthea medications are RxNorm clinical drugs and the extract has no vocabulary to roll them up to "
            "ingredients or ATC classes",
    "measurement": "Synthea codes observations in LOINC only",
}


def load_synthea(con: duckdb.DuckDBPyConnection, extract_dir: Path, detected: DetectedFormat, log: Log) -> FormatLoad:
    run_sql_file(con, "staging/format_macros.sql")
    con.execute(f"CREATE OR REPLACE TEMP VIEW synthea_encounters_source AS "
                f"SELECT * FROM {reader_sql(detected.files['encounters'])}")
    run_sql_file(con, "staging/synthea_encounter_span.sql")
    sources = {table: (detected.files[source], shape_sql(f"staging/synthea_{table}.sql"))
               for table, source in SOURCE_FILE.items()}
    loads = load_shaped_tables(con, extract_dir, sources, log)
    run_sql_file(con, "staging/empty_concept_code_map.sql")
    con.execute("DROP TABLE IF EXISTS synthea_encounter_span")
    result = FormatLoad(detected.label, loads)
    result.unresolvable_phenotypes = unresolvable_phenotypes(REACHABLE, REASON)
    result.warnings += unresolvable_warnings(result.unresolvable_phenotypes, REASON)
    result.notes.append("Synthea timestamps (ISO 8601, Z) are staged as their UTC date; observation periods run from "
                        "each patient's first to last encounter; death rows are the patients with a DEATHDATE.")
    return result
