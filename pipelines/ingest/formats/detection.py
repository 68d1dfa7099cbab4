"""Which layout an extract folder has, from the files and columns present.

Each format has a signature file and columns; exactly one must match. None matching, or several, is an
ExtractError naming the files and columns each format expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.ingest.formats.files import lower_header, table_files
from pipelines import extract_spec as spec
from pipelines.ingest.loader import ExtractError, resolve_extract

CANONICAL = "canonical"
OMOP = "omop_cdm"
SYNTHEA = "synthea_csv"
SITE_MAPPING = "site_mapping"

SITE_MAPPING_FILE = "extract_mapping.yaml"

# Signature of each file-based format: (table file, columns it must have). Names are compared lower-case.
SIGNATURES: dict[str, tuple[str, tuple[str, ...]]] = {
    CANONICAL: ("person", ("person_id", "year_of_birth", "sex")),
    OMOP: ("person", ("person_id", "year_of_birth", "gender_concept_id")),
    SYNTHEA: ("patients", ("id", "birthdate", "gender")),
}

# The files each format needs, with the columns the ingest reads from them (lower-case).
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
SYNTHEA_REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("id", "birthdate", "deathdate", "gender", "race", "ethnicity"),
    "encounters": ("id", "start", "stop", "patient", "encounterclass"),
    "conditions": ("start", "stop", "patient", "encounter", "code"),
    "medications": ("start", "stop", "patient", "encounter", "code"),
    "observations": ("date", "patient", "encounter", "code", "value", "units", "type"),
    "procedures": ("start", "patient", "encounter", "code"),
}


@dataclass(frozen=True)
class DetectedFormat:
    name: str  # CANONICAL, OMOP, SYNTHEA or SITE_MAPPING
    version: str | None  # "5.3" / "5.4" for OMOP
    files: dict[str, Path]  # lower-case table name -> file
    # Data files whose name is no table of the format (OMOP: 2b_concept.csv), by file name.
    unrecognised: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name}_v{self.version}" if self.version else self.name


def expected_layouts() -> str:
    """What each format needs, for error messages."""
    def listing(columns: dict[str, tuple[str, ...]]) -> str:
        return "; ".join(f"{name}.csv ({', '.join(cols)})" for name, cols in columns.items())

    return (
        "Expected one of:\n"
        "  - canonical extract (docs/extract_format.md): person.csv with person_id, year_of_birth, sex, and the other "
        "canonical tables;\n"
        f"  - OMOP CDM v5.3/v5.4 (file and column names in any case, .csv/.csv.gz/.parquet): "
        f"{listing(OMOP_REQUIRED_COLUMNS)}; optional (created empty, with a warning): "
        f"{listing(OMOP_CLINICAL_COLUMNS)}; vocabulary: {listing(OMOP_VOCABULARY_COLUMNS)};\n"
        f"  - Synthea CSV: {listing(SYNTHEA_REQUIRED_COLUMNS)};\n"
        f"  - a site layout: {SITE_MAPPING_FILE} describing the files (docs/extract_formats.md)."
    )


def detect_format(folder: Path) -> DetectedFormat:
    """The folder's format; an ExtractError naming what is missing when none (or more than one) is recognised."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExtractError(f"{folder}: no such extract folder.")
    files = table_files(folder)
    if (folder / SITE_MAPPING_FILE).exists():
        return DetectedFormat(SITE_MAPPING, None, files)

    matches: list[str] = []
    partial: list[str] = []
    for name, (table, columns) in SIGNATURES.items():
        if table not in files:
            continue
        header = lower_header(files[table])
        missing = [c for c in columns if c not in header]
        if missing:
            partial.append(f"{files[table].name} lacks {', '.join(missing)} for the {name} layout")
        else:
            matches.append(name)
    if len(matches) > 1:
        signature_files = sorted({files[SIGNATURES[m][0]].name for m in matches})
        raise ExtractError(
            f"{folder}: mixed layouts: {', '.join(signature_files)} match the {' and '.join(matches)} formats. "
            f"An extract folder holds one layout.\n{expected_layouts()}"
        )
    if not matches:
        found = ", ".join(sorted(p.name for p in files.values())) or "no data files"
        detail = ("; ".join(partial) + ". ") if partial else ""
        if any(table.name in files for table in spec.TABLES):
            # Canonical-looking table files: say what the canonical layout misses, in the canonical loader's words.
            try:
                resolve_extract(folder)
            except ExtractError as canonical_problem:
                detail += f"As a canonical extract: {canonical_problem} "
        raise ExtractError(f"{folder}: unrecognised extract layout (found: {found}). {detail}\n{expected_layouts()}")

    name = matches[0]
    if name == CANONICAL:
        return DetectedFormat(CANONICAL, None, files)
    required = OMOP_REQUIRED_COLUMNS if name == OMOP else SYNTHEA_REQUIRED_COLUMNS
    _check_required(folder, name, files, required)
    if name == SYNTHEA:
        return DetectedFormat(SYNTHEA, None, files)
    _check_columns(folder, files, {**OMOP_CLINICAL_COLUMNS, **OMOP_VOCABULARY_COLUMNS})
    version = "5.4" if any(column in lower_header(files[table]) for table, column in OMOP_V54_COLUMNS
                           if table in files) else "5.3"
    unrecognised = tuple(sorted(path.name for table, path in files.items() if table not in OMOP_CDM_TABLES))
    return DetectedFormat(OMOP, version, files, unrecognised)


def _check_required(folder: Path, name: str, files: dict[str, Path], required: dict[str, tuple[str, ...]]) -> None:
    missing_files = [table for table in required if table not in files]
    if missing_files:
        raise ExtractError(
            f"{folder}: looks like {name} but required file(s) are missing: "
            f"{', '.join(t + '.csv' for t in missing_files)}.\n{expected_layouts()}"
        )
    _check_columns(folder, files, required)


def _check_columns(folder: Path, files: dict[str, Path], required: dict[str, tuple[str, ...]]) -> None:
    problems = []
    for table, columns in required.items():
        if table not in files:
            continue
        header = lower_header(files[table])
        missing = [c for c in columns if c not in header]
        if missing:
            problems.append(f"{files[table].name} lacks {', '.join(missing)}")
    if problems:
        raise ExtractError(f"{folder}: {'; '.join(problems)}.\n{expected_layouts()}")
