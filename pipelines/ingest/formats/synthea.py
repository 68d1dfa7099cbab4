"""Native Synthea CSV extracts (patients, encounters, conditions, medications, observations, procedures):
shaped into the canonical tables by sql/staging/synthea_*.sql."""

from __future__ import annotations

import duckdb

from pipelines.ingest.formats.base import DetectedFormat, ExtractFormat, FormatLoad, Signature
from pipelines.ingest.formats.common import PhenotypeVocabularies, listing, run_sql_file
from pipelines.ingest.formats.files import reader_sql
from pipelines.ingest.loader import Log

SYNTHEA = "synthea_csv"
SYNTHEA_REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("id", "birthdate", "deathdate", "gender", "race", "ethnicity"),
    "encounters": ("id", "start", "stop", "patient", "encounterclass"),
    "conditions": ("start", "stop", "patient", "encounter", "code"),
    "medications": ("start", "stop", "patient", "encounter", "code"),
    "observations": ("date", "patient", "encounter", "code", "value", "units", "type"),
    "procedures": ("start", "patient", "encounter", "code"),
}

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
# The OMOP conversion of a Synthea extract (OHDSI ETL-Synthea) brings the vocabulary these need.
_AS_OMOP = ("convert the Synthea output to OMOP CDM with OHDSI ETL-Synthea and its OMOP vocabulary (concept, "
            "concept_relationship, concept_ancestor), and load that extract instead")
REMEDY = {"condition": _AS_OMOP, "drug": _AS_OMOP, "measurement": _AS_OMOP}


class SyntheaFormat(ExtractFormat):
    name = SYNTHEA
    signature = Signature("patients", ("id", "birthdate", "gender"))
    required_columns = SYNTHEA_REQUIRED_COLUMNS
    source_tables = SOURCE_FILE
    sql_prefix = "synthea"
    reachable_vocabularies = REACHABLE
    unreachable_reason = REASON
    unreachable_remedy = REMEDY
    work_tables = ("synthea_encounter_span",)

    def expected_layout(self) -> str:
        return f"Synthea CSV: {listing(SYNTHEA_REQUIRED_COLUMNS)}"

    def source_columns(self, table: str) -> None:
        # Several canonical tables are shaped from one Synthea file (patients: person, observation period, death),
        # each reading a few of its columns, so no column of it is reported as ignored.
        return None

    def prepare(self, con: duckdb.DuckDBPyConnection, detected: DetectedFormat, log: Log) -> None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW synthea_encounters_source AS "
                    f"SELECT * FROM {reader_sql(detected.files['encounters'])}")
        run_sql_file(con, "staging/synthea_encounter_span.sql")

    def report(self, con: duckdb.DuckDBPyConnection, detected: DetectedFormat, result: FormatLoad,
               phenotype_vocabularies: PhenotypeVocabularies | None) -> None:
        super().report(con, detected, result, phenotype_vocabularies)
        result.notes.append("Synthea timestamps (ISO 8601, Z) are staged as their UTC date; observation periods run "
                            "from each patient's first to last encounter; death rows are the patients with a "
                            "DEATHDATE.")


FORMAT = SyntheaFormat()
