"""The canonical extract: the one place that says which tables and columns an extract has.

An extract is a folder with one file per table, named ``<table>.csv``, ``<table>.csv.gz`` or ``<table>.parquet``.
The shape follows the OMOP Common Data Model (table and column names an OHDSI user recognises) but events carry
*source codes* with their vocabulary (``ICD10CM``/``R25.2``) instead of OMOP concept ids, because de-identified
research extracts rarely carry concept ids.

Everything that needs the layout reads it from here: the synthetic generator writes it, the ingest loads and
validates it, the canonical layout's part of ``docs/extract_formats.md`` is generated from it, and the data-quality suites check it.

CSV conventions: a header line, comma-separated, double-quote quoting, UTF-8, dates as ISO ``YYYY-MM-DD``, decimals
with a point, empty field = missing. A UTF-8 byte-order mark, CRLF or LF line ends (mixed too) and blank lines are
accepted; text fields and ids are trimmed of surrounding spaces in every table. Integer columns take whole numbers
only (``30`` or ``30.0``, not ``1.5``). A ``.csv.gz`` file must be gzip-compressed. Parquet columns may have the
staging type, a type that converts to it (integer and floating-point types for numbers, DATE or TIMESTAMP for
dates) or text. A timestamp with a time zone is an instant: it is staged as its UTC date, whatever the time zone of
the machine that loads it (a timestamp without a time zone as the date it holds).
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------------------------
# Vocabularies. Names follow OMOP's vocabulary_id spelling. Extracts may spell them in other common ways; the
# ingest normalises the aliases below (compared upper-case, with spaces, dashes and underscores removed).
# ---------------------------------------------------------------------------------------------------------------
VOCABULARIES: dict[str, str] = {
    "ICD10CM": "ICD-10-CM, US clinical modification of ICD-10 (diagnoses), CMS release",
    "ICD9CM": "ICD-9-CM diagnoses, the US coding before October 2015 (CMS release 32, the last)",
    "SNOMED": "SNOMED CT concept ids (diagnoses, findings, observable entities)",
    "RxNorm": "RxNorm concept unique identifiers (RxCUI); phenotypes use ingredient-level CUIs",
    "ATC": "WHO Anatomical Therapeutic Chemical classification (drug classes and substances)",
    "LOINC": "LOINC codes for laboratory tests and measurements",
    "CPT4": "CPT-4 procedure codes",
    "ICD10PCS": "ICD-10-PCS procedure codes",
    "LOCAL": "A site's local code, to be mapped to a standard vocabulary before phenotypes can use it",
}

VOCABULARY_ALIASES: dict[str, str] = {
    "ICD10CM": "ICD10CM",
    "ICD10": "ICD10CM",
    "ICD9CM": "ICD9CM",
    "ICD9": "ICD9CM",
    "SNOMED": "SNOMED",
    "SNOMEDCT": "SNOMED",
    "SNOMEDCTUS": "SNOMED",
    "SCT": "SNOMED",
    "RXNORM": "RxNorm",
    "RXCUI": "RxNorm",
    "ATC": "ATC",
    "LOINC": "LOINC",
    "CPT": "CPT4",
    "CPT4": "CPT4",
    "ICD10PCS": "ICD10PCS",
    "LOCAL": "LOCAL",
}

# Value sets for coded columns (canonical value -> accepted spellings, compared upper-case).
SEX_VALUES: dict[str, tuple[str, ...]] = {
    "F": ("F", "FEMALE", "W", "WOMAN", "2"),
    "M": ("M", "MALE", "MAN", "1"),
    "U": ("U", "UNKNOWN", "O", "OTHER", "X", "9", "0"),
}
VISIT_TYPES: dict[str, tuple[str, ...]] = {
    "inpatient": ("INPATIENT", "IP", "IN", "INPATIENT VISIT", "9201"),
    "outpatient": ("OUTPATIENT", "OP", "AMBULATORY", "OUT", "OUTPATIENT VISIT", "9202"),
    "emergency": ("EMERGENCY", "ER", "ED", "EMERGENCY ROOM VISIT", "9203"),
}
LATERALITY_VALUES: dict[str, tuple[str, ...]] = {
    "L": ("L", "LEFT", "LT"),
    "R": ("R", "RIGHT", "RT"),
}


@dataclass(frozen=True)
class Column:
    """One column of a canonical table.

    ``type`` is the DuckDB type in the staging table. ``required`` columns must be present in the file header (a
    missing one stops the run) and filled in every row (an empty one rejects the row). ``kind`` selects the
    normalisation the ingest applies: ``vocabulary``, ``code`` (normalised per the row's vocabulary), ``sex``,
    ``visit_type``, ``laterality`` or plain ``None``. ``valid_range`` (integer columns): the values a field can
    hold at all; others are rejected (number_out_of_range). Implausible values inside it are the quality checks'.
    """

    name: str
    type: str
    required: bool
    description: str
    kind: str | None = None
    valid_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: str | None = None
    # Events must belong to a person listed in the person table; rows that do not are rejected (unknown_person).
    references_person: bool = True
    # (vocabulary column, code column) pairs whose codes the ingest normalises.
    coded: tuple[tuple[str, str], ...] = ()
    # The table must be present in every extract.
    required: bool = True

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _c(name: str, type_: str, required: bool, description: str, kind: str | None = None,
       valid_range: tuple[int, int] | None = None) -> Column:
    return Column(name, type_, required, description, kind, valid_range)


PERSON = Table(
    name="person",
    description="One row per person: the pseudonymous id and the demographics a de-identified extract keeps.",
    primary_key="person_id",
    references_person=False,
    columns=(
        _c("person_id", "VARCHAR", True, "Pseudonymous person id, unique in the extract."),
        _c("year_of_birth", "INTEGER", True, "Year of birth (de-identified extracts often keep only the year); "
           "a year outside 1850-2100 is rejected.", valid_range=(1850, 2100)),
        _c("birth_date", "DATE", False, "Full date of birth, where the extract has it."),
        _c("sex", "VARCHAR", True, "Sex: F, M or U (female/male/unknown; common spellings accepted).", "sex"),
        _c("race", "VARCHAR", False, "Race as recorded at the source."),
        _c("ethnicity", "VARCHAR", False, "Ethnicity as recorded at the source."),
        _c("site_id", "VARCHAR", False, "Contributing site or practice."),
    ),
)

OBSERVATION_PERIOD = Table(
    name="observation_period",
    description="Spans of time in which the person's events are expected to be recorded (enrolment, registration).",
    primary_key="observation_period_id",
    columns=(
        _c("observation_period_id", "VARCHAR", True, "Row id."),
        _c("person_id", "VARCHAR", True, "Person id."),
        _c("observation_period_start_date", "DATE", True, "First day of observation."),
        _c("observation_period_end_date", "DATE", True, "Last day of observation."),
    ),
)

VISIT_OCCURRENCE = Table(
    name="visit_occurrence",
    description="Encounters with the health system.",
    primary_key="visit_occurrence_id",
    columns=(
        _c("visit_occurrence_id", "VARCHAR", True, "Visit id."),
        _c("person_id", "VARCHAR", True, "Person id."),
        _c("visit_type", "VARCHAR", True, "inpatient, outpatient or emergency.", "visit_type"),
        _c("visit_start_date", "DATE", True, "Admission or encounter date."),
        _c("visit_end_date", "DATE", False, "Discharge date (empty = same day)."),
    ),
)

CONDITION_OCCURRENCE = Table(
    name="condition_occurrence",
    description="Diagnoses and findings, with their source code and vocabulary.",
    primary_key="condition_occurrence_id",
    coded=(("condition_vocabulary", "condition_code"),),
    columns=(
        _c("condition_occurrence_id", "VARCHAR", True, "Row id."),
        _c("person_id", "VARCHAR", True, "Person id."),
        _c("condition_vocabulary", "VARCHAR", True, "ICD10CM, ICD9CM or SNOMED.", "vocabulary"),
        _c("condition_code", "VARCHAR", True, "The code; ICD-10-CM with or without the dot.", "code"),
        _c("condition_start_date", "DATE", True, "Date recorded or onset."),
        _c("condition_end_date", "DATE", False, "End date, where known."),
        _c("visit_occurrence_id", "VARCHAR", False, "The visit it was recorded in."),
    ),
)

DRUG_EXPOSURE = Table(
    name="drug_exposure",
    description="Prescriptions and dispensings. The end is the recorded end date, else start + days_supply - 1.",
    primary_key="drug_exposure_id",
    coded=(("drug_vocabulary", "drug_code"),),
    columns=(
        _c("drug_exposure_id", "VARCHAR", True, "Row id."),
        _c("person_id", "VARCHAR", True, "Person id."),
        _c("drug_vocabulary", "VARCHAR", True, "RxNorm (ingredient CUI) or ATC.", "vocabulary"),
        _c("drug_code", "VARCHAR", True, "The code.", "code"),
        _c("drug_exposure_start_date", "DATE", True, "Prescription or dispensing date."),
        _c("drug_exposure_end_date", "DATE", False, "Last day of supply, where recorded."),
        _c("days_supply", "INTEGER", False, "Days of supply."),
        _c("quantity", "DOUBLE", False, "Quantity dispensed."),
        _c("visit_occurrence_id", "VARCHAR", False, "The visit it was prescribed in."),
    ),
)

MEASUREMENT = Table(
    name="measurement",
    description="Laboratory results and clinical measurements with value and unit as recorded.",
    primary_key="measurement_id",
    coded=(("measurement_vocabulary", "measurement_code"),),
    columns=(
        _c("measurement_id", "VARCHAR", True, "Row id."),
        _c("person_id", "VARCHAR", True, "Person id."),
        _c("measurement_vocabulary", "VARCHAR", True, "LOINC, SNOMED (observable entity) or LOCAL.", "vocabulary"),
        _c("measurement_code", "VARCHAR", True, "The code.", "code"),
        _c("measurement_date", "DATE", True, "Date of the specimen or measurement."),
        _c("value_as_number", "DOUBLE", False, "Numeric result."),
        _c("unit", "VARCHAR", False, "Unit as recorded (for example mmol/L, mg/dL, mEq/L, ratio)."),
        _c("laterality", "VARCHAR", False, "L or R for measurements taken per side (ankle-brachial index).",
           "laterality"),
        _c("visit_occurrence_id", "VARCHAR", False, "The visit it was taken in."),
    ),
)

PROCEDURE_OCCURRENCE = Table(
    name="procedure_occurrence",
    description="Procedures, with their source code and vocabulary.",
    primary_key="procedure_occurrence_id",
    coded=(("procedure_vocabulary", "procedure_code"),),
    columns=(
        _c("procedure_occurrence_id", "VARCHAR", True, "Row id."),
        _c("person_id", "VARCHAR", True, "Person id."),
        _c("procedure_vocabulary", "VARCHAR", True, "CPT4, ICD10PCS or SNOMED.", "vocabulary"),
        _c("procedure_code", "VARCHAR", True, "The code.", "code"),
        _c("procedure_date", "DATE", True, "Date of the procedure."),
        _c("visit_occurrence_id", "VARCHAR", False, "The visit it was done in."),
    ),
)

DEATH = Table(
    name="death",
    description="Date of death, for persons who died (at most one row per person).",
    primary_key="person_id",
    required=False,
    columns=(
        _c("person_id", "VARCHAR", True, "Person id."),
        _c("death_date", "DATE", True, "Date of death."),
    ),
)

TABLES: tuple[Table, ...] = (
    PERSON,
    OBSERVATION_PERIOD,
    VISIT_OCCURRENCE,
    CONDITION_OCCURRENCE,
    DRUG_EXPOSURE,
    MEASUREMENT,
    PROCEDURE_OCCURRENCE,
    DEATH,
)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

FILE_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet")
# A complete extract drop holds this file, written last by its sender (the synthetic generator writes it): the
# extract-drop sensor waits for it (docs/operations.md, landing folder protocol).
MANIFEST_FILE = "_manifest.json"
DATE_FORMAT = "%Y-%m-%d"


@dataclass(frozen=True)
class RejectReason:
    code: str
    description: str


# Why the ingest refuses a row. Rows that load but are implausible are not rejects: the data-quality checks catch
# them. Each rejected row gets exactly one reason, the first of this list that applies.
REJECT_REASONS: tuple[RejectReason, ...] = (
    RejectReason("malformed_line", "The line does not parse as a record of the file's columns (wrong field count, "
                                   "bad quoting)."),
    RejectReason("missing_required_field", "A required column is empty."),
    RejectReason("unparseable_date", "A date column holds something that is not a YYYY-MM-DD date."),
    RejectReason("unparseable_number", "A numeric column holds something that is not a number (NaN included)."),
    RejectReason("non_integer_number", "An integer column holds a number with a fraction (days_supply 1.5)."),
    RejectReason("infinite_number", "A numeric column holds an infinity, or a number beyond the range of a "
                                    "floating-point number (1e400)."),
    RejectReason("number_out_of_range", "An integer column holds a number its type cannot hold (99999999999 in an "
                                        "INTEGER column) or outside the column's valid range (year_of_birth "
                                        "outside 1850-2100)."),
    RejectReason("duplicate_primary_key", "The row's id repeats the id of an earlier row of the same table."),
    RejectReason("unknown_person", "The person id is not in the person table."),
)
REJECT_REASON_CODES: tuple[str, ...] = tuple(r.code for r in REJECT_REASONS)
