"""The data-quality suites: which checks each staging table gets, written as GX expectation suites in JSON.

The suites in ``expectations/staging/<table>.json`` are generated from this module and the canonical extract spec,
and committed, so a change to a check shows up as a readable diff of the JSON. After editing this module run

    python -m pipelines.quality.suites

(``tests/quality/test_quality_suites.py`` fails while the JSON files are out of date).

Every expectation follows the OHDSI Data Quality Dashboard (DQD) framework. Its ``meta`` carries:

- ``name``: the check's name, unique in its suite (also the Dagster asset check's name and
  ``dq.check_results.expectation``);
- ``category``: conformance, completeness or plausibility (Kahn et al. 2016, as in DQD), and a ``subcategory``;
- ``severity``: ``fatal`` (the data is structurally wrong: later steps would compute wrong results; the run stops)
  or ``warning`` (implausible or incomplete data worth a look; the run goes on);
- ``threshold``: the percentage of failing rows allowed, DQD style: the check fails when the failing share is above
  it (0 = any failing row fails the check);
- ``description``: what is checked and why, in plain words.

Where the threshold is above 0 the expectation also gets GX's ``mostly = 1 - threshold / 100``, so GX's own
success (shown in Data Docs) agrees with the DQD verdict the runner computes.

Checks that GX's column expectations express (not null, value sets, ranges) use them; GX runs all the simple
column checks of one table in a single SQL query. Uniqueness is a SQL check (GROUP BYs instead of GX's two
window queries). The others are SQL queries that return the violating rows
(``expect_no_violating_rows``, see ``violating_rows.py``); ``{batch}`` stands for the checked table.

A row is counted by one temporal check only: events of unknown persons are left to ``person_id_in_person_table``,
and ``*_within_observation_period`` leaves out events before birth or after death, which their own checks count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.engine.dialect import ROW_HASH, column_types_relation, cte_read_twice, repeated_hash_candidates
from pipelines import extract_spec as spec
from pipelines import tables
from pipelines.paths import EXPECTATIONS_DIR
from pipelines.phenotypes.loader import phenotype_library
from pipelines.phenotypes.schema import CONVERSION_DECIMALS, normalise_unit
from pipelines.quality.valid_codes import VALID_ICD10CM_TABLE
from pipelines.sql_quoting import quote_literal
from pipelines.vocabularies import CHECK_DIGIT_NAMES, CODE_VOCABULARIES, VOCABULARIES_BY_TABLE, check_digit_sql

if TYPE_CHECKING:
    from pipelines.cohorts.study import StudyDefinition

SUITE_VERSION = 1
STAGING_LAYER = "staging"

FATAL = "fatal"
WARNING = "warning"
CATEGORIES = ("conformance", "completeness", "plausibility")
SEVERITIES = (FATAL, WARNING)
# GX's own severity field, shown in Data Docs.
GX_SEVERITY = {FATAL: "critical", WARNING: "warning"}

# Expectations with GX's `mostly` (the share of rows that must pass).
ACCEPTS_MOSTLY = {
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set", "expect_column_values_to_be_between",
    "expect_column_values_to_be_unique", "expect_no_violating_rows", "expect_no_violating_rows_per_phenotype",
}

# Check names become Dagster asset check names, which allow letters, digits and underscores.
CHECK_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# ---------------------------------------------------------------------------------------------------------------
# Facts the checks use. Everything about the table layout comes from extract_spec.
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlausibleRange:
    """The values a measurement of one code can plausibly take (outside them the value is wrong, not just abnormal)."""

    check_name: str
    label: str
    vocabulary: str
    code: str
    unit: str
    low: float
    high: float
    low_inclusive: bool = True  # False: a range open at its lower end (any value above `low`)
    # The unit spellings whose values this check judges (as recorded, so case variants are listed), and whether a
    # value without a unit is judged too (it is read in the unit its code reports, as the phenotypes read it).
    recorded_units: tuple[str, ...] = ()
    includes_no_unit: bool = True


# The names (and labels) of the range checks of codes whose checks are published under a chosen name; any other
# measurement code of the phenotype library gets a check named after its vocabulary and code.
RANGE_CHECK_NAMES: dict[tuple[str, str], tuple[str, str]] = {
    ("LOINC", "2951-2"): ("sodium_value_plausible", "sodium"),
    ("LOINC", "2823-3"): ("potassium_value_plausible", "potassium"),
    ("LOINC", "19123-9"): ("magnesium_mg_dl_value_plausible", "magnesium (mass)"),
    ("LOINC", "2601-3"): ("magnesium_mmol_l_value_plausible", "magnesium (moles)"),
    ("SNOMED", "446841001"): ("ankle_brachial_index_value_plausible", "ankle-brachial index"),
}


def library_plausible_ranges() -> tuple[PlausibleRange, ...]:
    """Range checks of every measurement code of the phenotype library, from the one plausible range the library
    states for the code (wide on purpose: abnormal but real results pass), in the unit each value was recorded in.

    A value is judged in its recorded unit, converted with the library's own factors as the phenotype compiler
    converts it (sql/measurement_values.sql): one check per code for the units that share the factor of
    the unit the code reports (values without a unit included), named after the code, and one more per other factor
    (magnesium recorded in mmol/L or mEq/L under the mg/dL code, and the reverse). A value in a unit the library
    does not list is judged by none: the phenotypes ignore it, and no range can be stated for it."""
    ranges: dict[tuple[str, str, float], PlausibleRange] = {}
    for phenotype in phenotype_library():
        measurement = phenotype.definition.measurement
        if measurement is None:
            continue
        factors = {normalise_unit(u.unit): u.factor for u in measurement.units}
        units_by_factor: dict[float, list[str]] = {}
        for conversion in measurement.units:
            units_by_factor.setdefault(conversion.factor, []).append(conversion.unit)
        low, high, low_inclusive = measurement.canonical_plausible_range()
        for group in phenotype.definition.codes:
            code_factor = factors[normalise_unit(group.unit)]
            # The code's own unit first, so that its check keeps the code's name.
            for factor in sorted(units_by_factor, key=lambda f: f != code_factor):
                units = units_by_factor[factor]
                for code in group.codes:
                    key = (group.vocabulary, code)
                    derived_name = re.sub(r"[^a-z0-9]+", "_", f"{group.vocabulary} {code}".lower())
                    name, label = RANGE_CHECK_NAMES.get(key, (f"{derived_name}_value_plausible",
                                                              f"{group.vocabulary} {code}"))
                    unit = group.unit
                    if factor != code_factor:
                        unit = units[0]
                        name = f"{name}_recorded_in_{re.sub(r'[^a-z0-9]+', '_', normalise_unit(unit)).strip('_')}"
                        label = f"{label}, recorded in {' or '.join(units)}"
                    ranges.setdefault((*key, factor), PlausibleRange(
                        name, label, group.vocabulary, code, unit, round(low / factor, CONVERSION_DECIMALS),
                        round(high / factor, CONVERSION_DECIMALS), low_inclusive,
                        recorded_units=unit_spellings(units), includes_no_unit=factor == code_factor))
    return tuple(ranges.values())


def unit_spellings(units: list[str]) -> tuple[str, ...]:
    """The spellings of units a check compares the recorded unit with: as listed, lower- and upper-case and in the
    normalised form (GX row conditions compare exactly; the phenotypes normalise with normalise_unit)."""
    spellings: dict[str, None] = {}
    for unit in units:
        for spelling in (unit, unit.lower(), unit.upper(), normalise_unit(unit)):
            spellings.setdefault(spelling)
    return tuple(spellings)


PLAUSIBLE_MEASUREMENT_RANGES: tuple[PlausibleRange, ...] = library_plausible_ranges()

DAYS_SUPPLY_RANGE = (1, 365)
AGE_RANGE = (0, 120)

# Tables whose rows are events of a person: (row id, the event's date).
EVENT_DATES: dict[str, tuple[str, str]] = {
    "visit_occurrence": ("visit_occurrence_id", "visit_start_date"),
    "condition_occurrence": ("condition_occurrence_id", "condition_start_date"),
    "drug_exposure": ("drug_exposure_id", "drug_exposure_start_date"),
    "measurement": ("measurement_id", "measurement_date"),
    "procedure_occurrence": ("procedure_occurrence_id", "procedure_date"),
}

# Tables with a span: (row id, start column, end column).
SPANS: dict[str, tuple[str, str, str]] = {
    "observation_period": ("observation_period_id", "observation_period_start_date", "observation_period_end_date"),
    "visit_occurrence": ("visit_occurrence_id", "visit_start_date", "visit_end_date"),
    "condition_occurrence": ("condition_occurrence_id", "condition_start_date", "condition_end_date"),
    "drug_exposure": ("drug_exposure_id", "drug_exposure_start_date", "drug_exposure_end_date"),
}

# Share of records allowed to end before they start, in percent: OHDSI DQD's default thresholds of
# plausibleStartBeforeEnd (DataQualityDashboard 2.7.0, articles/checks/plausibleStartBeforeEnd.html, checked
# 2026-12-05): 0% for observation_period, whose periods every cohort's time at risk is built from, 1% for the other
# tables with an end date.
START_BEFORE_END_THRESHOLDS: dict[str, float] = {"observation_period": 0}

# Tables checked for the same event recorded twice: a row identical to another in every column but the row id
# (person, code, date, value, visit...). Rows that differ in any column are different records: two different
# results of one test on one day are real, and a copy with another end date is end_before_start's. Visits are left
# out: two visits of one type on one day happen (different departments) and the extract cannot tell them apart.
DUPLICATE_EVENT_TABLES: tuple[str, ...] = ("condition_occurrence", "drug_exposure", "measurement",
                                           "procedure_occurrence")


# Share of persons allowed to have no row in a table (DQD measurePersonCompleteness), in percent. Starting points:
# every person needs observation time and nearly everyone a visit, while many people in a primary-care population
# have no chronic prescription (about a third in the synthetic extracts) or no lab result. Tune them to the site.
PERSON_COMPLETENESS_THRESHOLDS: dict[str, float] = {
    "observation_period": 0,
    "visit_occurrence": 5,
    "condition_occurrence": 25,
    "drug_exposure": 50,
    "measurement": 50,
}

# ---------------------------------------------------------------------------------------------------------------
# One check = one GX expectation with DQD metadata.
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    name: str
    expectation_type: str
    kwargs: dict[str, Any]
    category: str
    subcategory: str
    severity: str
    threshold: float
    description: str
    column: str | None = None  # the column judged, for SQL checks (column expectations name it in kwargs)
    extra_meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.name,
            "category": self.category,
            "subcategory": self.subcategory,
            "severity": self.severity,
            "threshold": self.threshold,
            "description": self.description,
        }
        if self.column and "column" not in self.kwargs:
            meta["column"] = self.column
        meta.update(self.extra_meta)
        kwargs = dict(self.kwargs)
        if self.threshold > 0 and self.expectation_type in ACCEPTS_MOSTLY:
            # GX's own pass/fail (shown in Data Docs) then follows the DQD threshold too.
            kwargs["mostly"] = round(1 - self.threshold / 100, 6)
        return {
            "type": self.expectation_type,
            "kwargs": kwargs,
            "meta": meta,
            "severity": GX_SEVERITY[self.severity],
        }


def sql(text: str) -> str:
    """Our SQL on one line (JSON strings hold no line breaks); write the SQL without '--' comments."""
    return " ".join(text.split())


def literal(value: str) -> str:
    """A SQL string literal. Braces are doubled because GX fills in {batch} with str.format."""
    return quote_literal(value).replace("{", "{{").replace("}", "}}")


def violating_rows(name: str, query: str, **meta: Any) -> Check:
    return Check(name=name, expectation_type="expect_no_violating_rows",
                 kwargs={"unexpected_rows_query": sql(query)}, **meta)


# ---------------------------------------------------------------------------------------------------------------
# Conformance
# ---------------------------------------------------------------------------------------------------------------
def columns_and_types(table: spec.Table) -> list[Check]:
    expected = ", ".join(f"({literal(c.name)}, {literal(c.type)})" for c in table.columns)
    return [
        Check(
            name="columns_match_spec",
            expectation_type="expect_table_columns_to_match_set",
            kwargs={"column_set": list(table.column_names), "exact_match": True},
            category="conformance", subcategory="relational: table columns", severity=FATAL, threshold=0,
            description=f"staging.{table.name} has exactly the columns of the canonical extract spec.",
        ),
        violating_rows(
            "column_types_match_spec",
            f"""
            WITH actual AS (SELECT column_name, column_type FROM {column_types_relation("{batch}")})
            SELECT expected.column_name, expected.column_type AS expected_type, actual.column_type AS actual_type
            FROM (VALUES {expected}) AS expected(column_name, column_type)
            JOIN actual ON actual.column_name = expected.column_name
            WHERE actual.column_type <> expected.column_type
            """,
            category="conformance", subcategory="value: column types", severity=FATAL, threshold=0,
            description="Every column has the DuckDB type of the spec. Each violating row is a column, so the "
                        "percentage is not meaningful here; missing columns are columns_match_spec's.",
        ),
    ]


# Repeated values are found in two passes (dialect.repeated_hash_candidates, shared with the ingest's duplicate
# ids). The hint for `checked`, read twice, is engine-specific: pipelines/engine/dialect.py.
CHECKED_TWICE = cte_read_twice("checked")


def primary_key(table: spec.Table) -> list[Check]:
    if not table.primary_key:
        return []
    key = table.primary_key
    # Our own query rather than GX's expect_column_values_to_be_unique, which runs two window queries over the
    # table (one to count, one for examples): on tens of millions of rows the slowest check. The candidates come
    # from a sorted hash of the key first (see ROW_HASH).
    return [violating_rows(
        f"{key}_unique",
        f"""
        {CHECKED_TWICE} (SELECT * FROM {{batch}} WHERE {key} IS NOT NULL),
        {repeated_hash_candidates(key)},
        repeated AS (SELECT {key}, count(*) AS rows_with_id FROM checked
                     WHERE {ROW_HASH}({key}) IN (SELECT row_hash FROM candidates)
                     GROUP BY {key} HAVING count(*) > 1)
        SELECT {key}, rows_with_id, unnest(range(1, rows_with_id + 1)) AS row_of_id FROM repeated
        """,
        column=key, category="conformance", subcategory="relational: primary key", severity=FATAL, threshold=0,
        description=f"{key} identifies one row. Every row whose id is repeated counts (a pair of rows sharing an "
                    "id counts 2), as DQD's isPrimaryKey; an example row shows the id, how many rows share it "
                    "and which of them it is.",
    )]


def person_reference(table: spec.Table) -> list[Check]:
    if not table.references_person:
        return []
    row_id = table.primary_key or "person_id"
    return [violating_rows(
        "person_id_in_person_table",
        f"""
        WITH checked AS (SELECT * FROM {{batch}})
        SELECT c.{row_id}, c.person_id
        FROM checked AS c ANTI JOIN staging.person AS p ON p.person_id = c.person_id
        WHERE c.person_id IS NOT NULL
        """,
        column="person_id", category="conformance", subcategory="relational: foreign key", severity=FATAL,
        threshold=0,
        description="Every row belongs to a person of staging.person. The ingest rejects rows of unknown "
                    "persons, so one here means a loading bug; cohorts would count events of nobody.",
    )]


def visit_reference(table: spec.Table) -> list[Check]:
    if "visit_occurrence_id" not in table.column_names or table.name == "visit_occurrence":
        return []
    # The ids without a visit first, then their rows: the anti join against every visit carries only the id
    # (15 M drug rows: 2.9 -> 2.2 CPU s, 1.2 -> 0.8 GB), the rows are found by a semi join on the few ids left.
    return [violating_rows(
        "visit_occurrence_id_in_visit_table",
        f"""
        {CHECKED_TWICE} (SELECT * FROM {{batch}}),
        unknown_visits AS (
            SELECT c.visit_occurrence_id FROM checked AS c
            ANTI JOIN staging.visit_occurrence AS v ON v.visit_occurrence_id = c.visit_occurrence_id
            WHERE c.visit_occurrence_id IS NOT NULL)
        SELECT c.{table.primary_key}, c.person_id, c.visit_occurrence_id
        FROM checked AS c SEMI JOIN unknown_visits AS u ON u.visit_occurrence_id = c.visit_occurrence_id
        """,
        column="visit_occurrence_id", category="conformance", subcategory="relational: foreign key",
        severity=WARNING, threshold=0,
        description="A filled visit_occurrence_id names a visit of staging.visit_occurrence. The link is "
                    "optional and no phenotype needs it yet, so a broken one is a warning.",
    )]


def value_sets(table: spec.Table) -> list[Check]:
    checks = []
    for column in table.columns:
        if column.kind == "sex":
            values, severity, why = list(spec.SEX_VALUES), FATAL, "cohorts stratify and match on sex"
        elif column.kind == "visit_type":
            values, severity, why = list(spec.VISIT_TYPES), FATAL, "phenotypes select visits by type"
        elif column.kind == "laterality":
            values, severity, why = list(spec.LATERALITY_VALUES), WARNING, "per-leg ABI needs the side"
        elif column.kind == "vocabulary":
            values, severity = list(VOCABULARIES_BY_TABLE[table.name]), WARNING
            why = ("phenotypes only read these vocabularies: rows in another one are ignored, so the study "
                   "loses them but computes nothing wrong")
        else:
            continue
        checks.append(Check(
            name=f"{column.name}_in_value_set",
            expectation_type="expect_column_values_to_be_in_set",
            kwargs={"column": column.name, "value_set": values},
            category="conformance", subcategory="value: value set", severity=severity, threshold=0,
            description=f"{column.name} is one of {', '.join(values)} (empty values are not judged here): {why}.",
        ))
    return checks


def well_formed_code_sql(vocabulary: str, code_column: str) -> str:
    """A SQL condition: the code has its vocabulary's format and check digit (pipelines/vocabularies.py, the rule
    the phenotype loader applies to phenotype files). The check digit is computed only for well-formed codes."""
    format_rule = CODE_VOCABULARIES[vocabulary]
    well_formed = f"regexp_matches({code_column}, {literal(format_rule.pattern)})"
    check_digit = check_digit_sql(vocabulary, code_column)
    if check_digit is None:
        return well_formed
    return f"coalesce(CASE WHEN {well_formed} THEN {check_digit} ELSE false END, false)"


def code_formats(table: spec.Table) -> list[Check]:
    checks = []
    for vocabulary_column, code_column in table.coded:
        for vocabulary in VOCABULARIES_BY_TABLE[table.name]:
            format_rule = CODE_VOCABULARIES[vocabulary]
            if format_rule.pattern is None:
                continue  # a site's local codes have no standard format
            check_digit = (f" and end in their {CHECK_DIGIT_NAMES[format_rule.check_digit]} check digit"
                           if format_rule.check_digit else "")
            # Each distinct code is judged once, then its rows are found: a table has a few hundred codes per
            # vocabulary and millions of rows, and the check digit (list lambdas) costs per evaluation (LOINC on
            # 2.8 M measurements: 2.3 CPU s judged per row, 0.07 per code). The code is read through min(): a
            # filter on the grouping column itself would be pushed below the GROUP BY, to every row. NULL codes
            # are a group too, and NOT DISTINCT FROM finds their rows, as the per-row condition counted them.
            in_vocabulary = f"{vocabulary_column} = {literal(vocabulary)}"
            checks.append(violating_rows(
                f"{code_column}_format_{vocabulary.lower()}",
                f"""
                {CHECKED_TWICE} (SELECT * FROM {{batch}}),
                codes AS (SELECT min({code_column}) AS {code_column} FROM checked WHERE {in_vocabulary}
                          GROUP BY {code_column}),
                malformed AS (SELECT {code_column} FROM codes
                              WHERE NOT {well_formed_code_sql(vocabulary, code_column)})
                SELECT c.{table.primary_key}, c.person_id, c.{code_column} FROM checked AS c
                SEMI JOIN malformed AS m ON m.{code_column} IS NOT DISTINCT FROM c.{code_column}
                WHERE c.{in_vocabulary}
                """,
                column=code_column, category="conformance", subcategory="value: code format", severity=WARNING,
                threshold=0,
                description=f"{vocabulary} codes match {format_rule.pattern}{check_digit}, the rule phenotype "
                            "files are held to. A malformed code matches no phenotype code list, so the row is "
                            "lost to the study.",
            ))
    return checks


def birth_date_consistency(table: spec.Table) -> list[Check]:
    if table.name != "person":
        return []
    return [violating_rows(
        "birth_date_matches_year_of_birth",
        """
        WITH checked AS (SELECT * FROM {batch})
        SELECT person_id, year_of_birth, birth_date FROM checked
        WHERE birth_date IS NOT NULL AND year(birth_date) <> year_of_birth
        """,
        column="birth_date", category="conformance", subcategory="value: internal consistency", severity=WARNING,
        threshold=0,
        description="Where the full birth date is known, its year is year_of_birth.",
    )]


# ---------------------------------------------------------------------------------------------------------------
# Completeness
# ---------------------------------------------------------------------------------------------------------------
def required_fields(table: spec.Table) -> list[Check]:
    return [
        Check(
            name=f"{column}_not_null",
            expectation_type="expect_column_values_to_not_be_null",
            kwargs={"column": column},
            category="completeness", subcategory="required field", severity=FATAL, threshold=0,
            description=f"{column} is required by the spec and filled in every row (the ingest rejects rows "
                        "without it, so an empty one means a loading bug).",
        )
        for column in table.required_columns
    ]


def persons_with_records(table: spec.Table) -> list[Check]:
    if table.name != "person":
        return []
    checks = []
    for records_table, threshold in PERSON_COMPLETENESS_THRESHOLDS.items():
        checks.append(violating_rows(
            f"person_has_{records_table}",
            f"""
            WITH checked AS (SELECT * FROM {{batch}})
            SELECT c.person_id FROM checked AS c ANTI JOIN staging.{records_table} AS r ON r.person_id = c.person_id
            """,
            column="person_id", category="completeness", subcategory="person completeness", severity=WARNING,
            threshold=threshold,
            description=f"Persons with at least one row in staging.{records_table}; the check counts persons "
                        f"without one and allows {threshold:g}% of them.",
        ))
    return checks


def measurement_values(table: spec.Table) -> list[Check]:
    if table.name != "measurement":
        return []
    return [
        Check(
            name="value_as_number_not_null",
            expectation_type="expect_column_values_to_not_be_null",
            kwargs={"column": "value_as_number"},
            category="completeness", subcategory="measurement value", severity=WARNING, threshold=5,
            description="Measurements carry a numeric result; lab and ABI phenotypes need it.",
        ),
        Check(
            name="unit_not_null_when_value_present",
            expectation_type="expect_column_values_to_not_be_null",
            kwargs={"column": "unit",
                    "row_condition": {"type": "nullity", "column": {"name": "value_as_number"}, "is_null": False}},
            category="completeness", subcategory="measurement unit", severity=WARNING, threshold=5,
            description="A numeric result has its unit; thresholds (mg/dL vs mmol/L) depend on it.",
        ),
    ]


# ---------------------------------------------------------------------------------------------------------------
# Plausibility
# ---------------------------------------------------------------------------------------------------------------
# CTEs shared by the temporal checks. A person id repeated in staging.person or staging.death (a fatal primary-key
# failure) must not multiply the events joined to it, hence the GROUP BY.
BIRTH_CTE = ("birth AS (SELECT person_id, min(coalesce(birth_date, make_date(year_of_birth, 1, 1))) "
             "AS earliest_birth_date FROM staging.person GROUP BY person_id)")
DEATH_CTE = "death AS (SELECT person_id, min(death_date) AS death_date FROM staging.death GROUP BY person_id)"


def outside_observation_cte(columns: str, date_column: str) -> str:
    """CTE outside_observation: the `columns` of the checked rows (alias c) whose date_column lies in none of the
    person's observation periods.

    An ANTI JOIN of the checked rows alone, before any other join: DuckDB runs it as one hash join with the date
    range as a residual condition, several times faster than NOT EXISTS after the birth and death joins."""
    return f"""outside_observation AS (
        SELECT {columns} FROM checked AS c
        ANTI JOIN staging.observation_period AS o
          ON o.person_id = c.person_id
         AND c.{date_column} BETWEEN o.observation_period_start_date AND o.observation_period_end_date)"""


def not_before_birth(name: str, row_id: str, date_column: str) -> Check:
    return violating_rows(
        name,
        f"""
        WITH checked AS (SELECT * FROM {{batch}}), {BIRTH_CTE}
        SELECT c.{row_id}, c.person_id, c.{date_column}, b.earliest_birth_date
        FROM checked AS c JOIN birth AS b ON b.person_id = c.person_id
        WHERE c.{date_column} < b.earliest_birth_date
        """,
        column=date_column, category="plausibility", subcategory="temporal: after birth", severity=WARNING,
        threshold=1,
        description=f"{date_column} is not before the person's birth (the birth date, or 1 January of "
                    "year_of_birth where only the year is known).",
    )


def temporal_checks(table: spec.Table) -> list[Check]:
    checks = []
    if table.name in EVENT_DATES:
        row_id, date_column = EVENT_DATES[table.name]
        checks.append(not_before_birth(f"{date_column}_not_before_birth", row_id, date_column))
        checks.append(violating_rows(
            f"{date_column}_not_after_death",
            f"""
            WITH checked AS (SELECT * FROM {{batch}}), {DEATH_CTE}
            SELECT c.{row_id}, c.person_id, c.{date_column}, d.death_date
            FROM checked AS c JOIN death AS d ON d.person_id = c.person_id
            WHERE c.{date_column} > d.death_date
            """,
            column=date_column, category="plausibility", subcategory="temporal: during life", severity=WARNING,
            threshold=1,
            description=f"{date_column} is not after the person's death date (no grace period: this is EHR "
                        "data, not claims with late billing).",
        ))
        checks.append(violating_rows(
            f"{date_column}_within_observation_period",
            f"""
            WITH checked AS (SELECT * FROM {{batch}}), {BIRTH_CTE}, {DEATH_CTE},
            {outside_observation_cte(f"c.{row_id}, c.person_id, c.{date_column}", date_column)}
            SELECT c.* FROM outside_observation AS c
            JOIN birth AS b ON b.person_id = c.person_id
            LEFT JOIN death AS d ON d.person_id = c.person_id
            WHERE c.{date_column} >= b.earliest_birth_date
              AND (d.death_date IS NULL OR c.{date_column} <= d.death_date)
            """,
            column=date_column, category="plausibility", subcategory="temporal: within observation",
            severity=WARNING, threshold=5,
            description=f"{date_column} lies in one of the person's observation periods. Events before birth or "
                        "after death are left to those checks, so each implausible date is counted once.",
        ))
    if table.name == "observation_period":
        checks.append(not_before_birth("observation_period_start_date_not_before_birth", "observation_period_id",
                                       "observation_period_start_date"))
    if table.name == "death":
        checks.append(not_before_birth("death_date_not_before_birth", "person_id", "death_date"))
    if table.name in SPANS:
        row_id, start, end = SPANS[table.name]
        checks.append(violating_rows(
            f"{end}_not_before_start",
            f"""
            WITH checked AS (SELECT * FROM {{batch}})
            SELECT {row_id}, person_id, {start}, {end} FROM checked WHERE {end} < {start}
            """,
            column=end, category="plausibility", subcategory="temporal: end after start", severity=WARNING,
            threshold=START_BEFORE_END_THRESHOLDS.get(table.name, 1),
            description=f"{end}, where filled, is not before {start}; durations and exposure windows would be "
                        "negative. Such a record is loaded and counted by no phenotype or cohort "
                        "(sql/record_spans.sql). Threshold as OHDSI DQD's plausibleStartBeforeEnd: "
                        f"{START_BEFORE_END_THRESHOLDS.get(table.name, 1):g}% for this table.",
        ))
    return checks


def person_age(table: spec.Table) -> list[Check]:
    if table.name != "person":
        return []
    low, high = AGE_RANGE
    return [violating_rows(
        f"age_{low}_to_{high}",
        f"""
        WITH checked AS (SELECT * FROM {{batch}}),
        last_observation AS (SELECT person_id, max(observation_period_end_date) AS last_observed
                             FROM staging.observation_period GROUP BY person_id)
        SELECT c.person_id, c.year_of_birth, l.last_observed,
               year(coalesce(l.last_observed, current_date)) - c.year_of_birth AS age
        FROM checked AS c LEFT JOIN last_observation AS l ON l.person_id = c.person_id
        WHERE year(coalesce(l.last_observed, current_date)) - c.year_of_birth NOT BETWEEN {low} AND {high}
        """,
        column="year_of_birth", category="plausibility", subcategory="value: age", severity=WARNING, threshold=1,
        description=f"The person's age at the end of their last observation period (today, without one) is "
                    f"{low} to {high} years.",
    )]


def measurement_ranges(table: spec.Table) -> list[Check]:
    if table.name != "measurement":
        return []
    checks = []
    for r in PLAUSIBLE_MEASUREMENT_RANGES:
        code = [
            {"type": "comparison", "column": {"name": "measurement_vocabulary"}, "operator": "==",
             "parameter": r.vocabulary},
            {"type": "comparison", "column": {"name": "measurement_code"}, "operator": "==", "parameter": r.code},
        ]
        in_units = {"type": "comparison", "column": {"name": "unit"}, "operator": "IN",
                    "parameter": list(r.recorded_units)}
        condition = {"type": "and", "conditions": [*code, in_units]}
        if r.includes_no_unit:
            condition = {"type": "or", "conditions": [condition, {"type": "and", "conditions": [
                *code, {"type": "nullity", "column": {"name": "unit"}, "is_null": True}]}]}
        kwargs = {"column": "value_as_number", "min_value": r.low, "max_value": r.high, "row_condition": condition}
        between = f"between {r.low:g} and {r.high:g}"
        if not r.low_inclusive:
            kwargs["strict_min"] = True
            between = f"above {r.low:g} and at most {r.high:g}"
        checks.append(Check(
            name=r.check_name,
            expectation_type="expect_column_values_to_be_between",
            kwargs=kwargs,
            category="plausibility", subcategory="value: plausible range", severity=WARNING, threshold=1,
            description=f"{r.label} ({r.vocabulary} {r.code}) is {between} {r.unit}; values "
                        "outside cannot be measured in a living person and are entry or unit errors. Judged in "
                        f"the unit recorded ({', '.join(r.recorded_units)}"
                        f"{' or none' if r.includes_no_unit else ''}); the percentage is of this code's filled "
                        "values in those units.",
            extra_meta={"unit": r.unit},
        ))
    return checks


def drug_supply(table: spec.Table) -> list[Check]:
    if table.name != "drug_exposure":
        return []
    low, high = DAYS_SUPPLY_RANGE
    return [Check(
        name="days_supply_plausible",
        expectation_type="expect_column_values_to_be_between",
        kwargs={"column": "days_supply", "min_value": low, "max_value": high},
        category="plausibility", subcategory="value: plausible range", severity=WARNING, threshold=1,
        description=f"days_supply, where filled, is {low} to {high} days; it sets the exposure window's end.",
    )]


def duplicate_events(table: spec.Table) -> list[Check]:
    if table.name not in DUPLICATE_EVENT_TABLES:
        return []
    compared = ", ".join(c for c in table.column_names if c != table.primary_key)
    return [violating_rows(
        "no_duplicate_events",
        f"""
        {CHECKED_TWICE} (SELECT * FROM {{batch}}),
        {repeated_hash_candidates(compared)},
        repeated AS (SELECT {compared}, count(*) AS copies FROM checked
                     WHERE {ROW_HASH}({compared}) IN (SELECT row_hash FROM candidates)
                     GROUP BY {compared} HAVING count(*) > 1)
        SELECT *, unnest(range(2, copies + 1)) AS copy_number FROM repeated
        """,
        category="plausibility", subcategory="uniqueness: duplicate events", severity=WARNING, threshold=1,
        description="No row repeats another in every column but the row id (same person, code, date, value, "
                    "visit...). Each extra copy counts once (the first row of a group is not counted; an example "
                    "row shows the repeated values, their number of copies and which copy it is); duplicates "
                    "inflate event counts.",
    )]


def icd10cm_codes_exist(table: spec.Table) -> list[Check]:
    if table.name != "condition_occurrence":
        return []
    return [violating_rows(
        "condition_code_icd10cm_exists",
        f"""
        WITH checked AS (SELECT * FROM {{batch}})
        SELECT c.condition_occurrence_id, c.person_id, c.condition_code
        FROM checked AS c ANTI JOIN {VALID_ICD10CM_TABLE} AS v ON v.code = c.condition_code
        WHERE c.condition_vocabulary = 'ICD10CM'
          AND regexp_matches(c.condition_code, {literal(CODE_VOCABULARIES["ICD10CM"].pattern)})
        """,
        column="condition_code", category="plausibility", subcategory="value: code exists", severity=WARNING,
        threshold=1,
        description="Well-formed ICD-10-CM codes exist in the ICD-10-CM release of simple_icd_10_cm (categories "
                    "and subcategories, billable or not). Malformed codes are left to the format check.",
    )]


# ---------------------------------------------------------------------------------------------------------------
# Suites
# ---------------------------------------------------------------------------------------------------------------
CHECK_BUILDERS = (
    columns_and_types, primary_key, person_reference, visit_reference, value_sets, code_formats,
    birth_date_consistency, required_fields, persons_with_records, measurement_values, temporal_checks, person_age,
    measurement_ranges, drug_supply, duplicate_events, icd10cm_codes_exist,
)


def suite_name(layer: str, table_name: str) -> str:
    return f"{layer}.{table_name}"


def suite_path(name: str) -> Path:
    layer, table_name = name.split(".", 1)
    return EXPECTATIONS_DIR / layer / f"{table_name}.json"


def checks_for(table: spec.Table) -> list[Check]:
    checks = [check for builder in CHECK_BUILDERS for check in builder(table)]
    names = [c.name for c in checks]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"check names repeat in {table.name}: {sorted(duplicated)}")
    return checks


def build_staging_suite(table: spec.Table) -> dict[str, Any]:
    """The suite of one staging table as GX suite JSON."""
    return {
        "name": suite_name(STAGING_LAYER, table.name),
        "meta": {
            "suite_version": SUITE_VERSION,
            "table": f"{STAGING_LAYER}.{table.name}",
            "framework": "OHDSI Data Quality Dashboard categories (conformance, completeness, plausibility)",
            "generated_by": "python -m pipelines.quality.suites (do not edit by hand)",
        },
        "expectations": [check.to_json() for check in checks_for(table)],
    }


# ---------------------------------------------------------------------------------------------------------------
# Cohort outputs: one suite per study, built from the study as the run resolves it (its file plus the run's
# overrides) when the checks run, so it is never stale and a new study needs no generated file.
# ---------------------------------------------------------------------------------------------------------------
COHORT_LAYER = "cohort"
COHORT_TABLE = tables.STUDY_POPULATION


def cohort_checks(study: StudyDefinition) -> list[Check]:
    """Checks of one study's rows of cohort.study_population and results.attrition."""
    study_id = study.id
    study_start, study_end = study.study_period.start.isoformat(), study.study_period.end.isoformat()
    rows = f"SELECT * FROM {{batch}} WHERE study_id = {literal(study_id)}"  # {batch}: cohort.study_population
    return [
        violating_rows(
            "one_row_per_person", f"""SELECT person_id, count(*) AS rows_of_person FROM ({rows})
            GROUP BY person_id HAVING count(*) > 1""",
            category="conformance", subcategory="uniqueness", severity=FATAL, threshold=0, column="person_id",
            description="Each person appears once in a study population; a repeat would count them twice."),
        violating_rows(
            "index_inside_study_period", f"""SELECT person_id, index_date FROM ({rows})
            WHERE index_date < DATE {literal(study_start)} OR index_date > DATE {literal(study_end)}""",
            category="plausibility", subcategory="temporal", severity=FATAL, threshold=0, column="index_date",
            description=f"Index dates lie inside the study period of the run ({study_start} to {study_end})."),
        violating_rows(
            "followup_not_negative", f"""SELECT person_id, followup_days FROM ({rows})
            WHERE followup_days < 0 OR followup_end < index_date""",
            category="plausibility", subcategory="temporal", severity=FATAL, threshold=0, column="followup_days",
            description="Follow-up is never negative and never ends before the index date."),
        violating_rows(
            "outcome_inside_time_at_risk", f"""SELECT person_id, outcome_date FROM ({rows})
            WHERE outcome_flag AND (outcome_date < time_at_risk_start OR outcome_date > followup_end)""",
            category="plausibility", subcategory="temporal", severity=FATAL, threshold=0, column="outcome_date",
            description="An incident outcome lies inside the time at risk (earlier ones are washed out)."),
        # results.attrition is not the suite's table, but GX prints a warning for every query without {batch};
        # the unused CTE names the batch, and DuckDB drops it unread.
        violating_rows(
            "attrition_monotonic", f"""WITH study_population AS (SELECT * FROM {{batch}})
            SELECT step_order, persons_before, persons_after FROM (
                SELECT step_order, persons_before, persons_after,
                       lag(persons_after) OVER (ORDER BY step_order) AS previous_after
                FROM results.attrition WHERE study_id = {literal(study_id)})
            WHERE persons_after > persons_before OR persons_before <> coalesce(previous_after, persons_before)""",
            category="conformance", subcategory="relational", severity=FATAL, threshold=0, column=None,
            description="Attrition only removes persons, and each step starts where the previous one ended."),
    ]


def build_cohort_suite(study: StudyDefinition) -> dict[str, Any]:
    """The GX suite (JSON form) of one study, as resolved for the run."""
    return {
        "name": suite_name(COHORT_LAYER, study.id),
        "meta": {
            "suite_version": SUITE_VERSION,
            "table": COHORT_TABLE,
            "study_id": study.id,
            # Its counts are of the study's persons: published under the study's threshold; its element_count is
            # every study's rows of the table, not published (quality.published_counts).
            "small_cell_threshold": study.threshold,
            "element_count_published": False,
            "framework": "OHDSI Data Quality Dashboard categories (conformance, completeness, plausibility)",
            "generated_by": "pipelines.quality.suites.build_cohort_suite, from the study as the run resolves it",
        },
        "expectations": [check.to_json() for check in cohort_checks(study)],
    }


# ---------------------------------------------------------------------------------------------------------------
# Phenotypes: one suite (expectations/phenotype/phenotypes.json) over phenotype.person_summary, judged per phenotype
# ---------------------------------------------------------------------------------------------------------------
PHENOTYPE_LAYER = "phenotype"
PHENOTYPE_SUITE = suite_name(PHENOTYPE_LAYER, "phenotypes")
# The phenotypes judged: every phenotype of the run, also those nobody meets (they have no person_summary rows).
DEFINED_PHENOTYPES_QUERY = "SELECT phenotype_id FROM phenotype.definitions"
# A phenotype is expected to find someone once this many persons have qualifying records: with fewer, a rule that
# asks for more than one record (or a person's lowest value) can rightly leave nobody, as on small extracts.
MIN_PERSONS_WITH_RECORDS = 10


def per_phenotype(name: str, query: str, **meta: Any) -> Check:
    """A SQL check run once for all phenotypes (the query returns phenotype_id), with one verdict per phenotype."""
    return Check(name=name, expectation_type="expect_no_violating_rows_per_phenotype",
                 kwargs={"unexpected_rows_query": sql(query), "phenotypes_query": DEFINED_PHENOTYPES_QUERY}, **meta)


def phenotype_checks() -> list[Check]:
    """Checks of phenotype.person_summary (one row per person who meets a phenotype, with first and last date).

    Each returns the violating rows of every phenotype at once; the runner reports one result per phenotype and
    Dagster one asset check per phenotype asset. As in the staging suites, a row is counted by one temporal check
    only: rows of unknown persons are left to person_in_person_table, and the observation check leaves out first
    dates before birth or after death.
    """
    checked = "WITH checked AS (SELECT * FROM {batch})"
    return [
        per_phenotype(
            "one_summary_row_per_person",
            f"""
            {checked}
            SELECT phenotype_id, person_id, count(*) AS summary_rows FROM checked
            GROUP BY phenotype_id, person_id HAVING count(*) > 1
            """,
            column="person_id", category="conformance", subcategory="relational: primary key", severity=FATAL,
            threshold=0,
            description="A person has at most one summary row per phenotype; each person with more counts once. "
                        "Cohorts join the summary to persons, so a repeat would count a person twice.",
        ),
        per_phenotype(
            "person_id_in_person_table",
            f"""
            {checked}
            SELECT c.phenotype_id, c.person_id, c.first_date FROM checked AS c
            WHERE NOT EXISTS (SELECT 1 FROM staging.person AS p WHERE p.person_id = c.person_id)
            """,
            column="person_id", category="conformance", subcategory="relational: foreign key", severity=FATAL,
            threshold=0,
            description="Every person who meets a phenotype is a person of staging.person; the staging checks "
                        "allow no event of an unknown person, so one here means a phenotype bug.",
        ),
        per_phenotype(
            "first_date_not_after_last_date",
            f"""
            {checked}
            SELECT phenotype_id, person_id, first_date, last_date FROM checked WHERE first_date > last_date
            """,
            column="first_date", category="plausibility", subcategory="temporal: end after start", severity=FATAL,
            threshold=0,
            description="first_date is not after last_date. Both come from the same records, so a reversed pair "
                        "means the phenotype SQL is wrong, and windows built on them would be negative.",
        ),
        per_phenotype(
            "first_date_not_before_birth",
            f"""
            {checked}, {BIRTH_CTE}
            SELECT c.phenotype_id, c.person_id, c.first_date, b.earliest_birth_date
            FROM checked AS c JOIN birth AS b ON b.person_id = c.person_id
            WHERE c.first_date < b.earliest_birth_date
            """,
            column="first_date", category="plausibility", subcategory="temporal: after birth", severity=WARNING,
            threshold=1,
            description="The phenotype is first met no earlier than the person's birth (the birth date, or 1 "
                        "January of year_of_birth); an earlier first date comes from an implausible record.",
        ),
        per_phenotype(
            "first_date_not_after_death",
            f"""
            {checked}, {DEATH_CTE}
            SELECT c.phenotype_id, c.person_id, c.first_date, d.death_date
            FROM checked AS c JOIN death AS d ON d.person_id = c.person_id
            WHERE c.first_date > d.death_date
            """,
            column="first_date", category="plausibility", subcategory="temporal: during life", severity=WARNING,
            threshold=1,
            description="The phenotype is first met no later than the person's death date; a later first date "
                        "means every qualifying record is dated after death.",
        ),
        per_phenotype(
            "first_date_within_observation_period",
            f"""
            {checked}, {BIRTH_CTE}, {DEATH_CTE},
            {outside_observation_cte("c.phenotype_id, c.person_id, c.first_date", "first_date")}
            SELECT c.* FROM outside_observation AS c
            JOIN birth AS b ON b.person_id = c.person_id
            LEFT JOIN death AS d ON d.person_id = c.person_id
            WHERE c.first_date >= b.earliest_birth_date
              AND (d.death_date IS NULL OR c.first_date <= d.death_date)
            """,
            column="first_date", category="plausibility", subcategory="temporal: within observation",
            severity=WARNING, threshold=5,
            description="The phenotype is first met inside one of the person's observation periods; cohorts "
                        "cannot tell incident from prevalent outside them. First dates before birth or after "
                        "death are left to those checks.",
        ),
        per_phenotype(
            "persons_found_when_records_exist",
            f"""
            {checked}
            SELECT records.phenotype_id, records.persons_with_records
            FROM (SELECT phenotype_id, count(DISTINCT person_id) AS persons_with_records FROM phenotype.events
                  GROUP BY phenotype_id) AS records
            WHERE records.persons_with_records >= {MIN_PERSONS_WITH_RECORDS}
              AND NOT EXISTS (SELECT 1 FROM checked AS c WHERE c.phenotype_id = records.phenotype_id)
            """,
            column="person_id", category="completeness", subcategory="phenotype found", severity=WARNING,
            threshold=0,
            description=f"A phenotype whose codes occur in the extract (at least {MIN_PERSONS_WITH_RECORDS} "
                        "persons have qualifying records in phenotype.events) finds at least one person. None "
                        "found points at a rule or exclusion that removes everyone, e.g. a threshold in the wrong "
                        "unit. Each such phenotype counts once; its percentage is not meaningful (it has no rows).",
        ),
    ]


def build_phenotype_suite() -> dict[str, Any]:
    return {
        "name": PHENOTYPE_SUITE,
        "meta": {
            "suite_version": SUITE_VERSION,
            "table": tables.PHENOTYPE_PERSON_SUMMARY,
            "judged_per": "phenotype_id",
            "framework": "OHDSI Data Quality Dashboard categories (conformance, completeness, plausibility)",
            "generated_by": "python -m pipelines.quality.suites (do not edit by hand)",
        },
        "expectations": [check.to_json() for check in phenotype_checks()],
    }


def write_phenotype_suite() -> Path:
    path = suite_path(PHENOTYPE_SUITE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(suite_json_text(build_phenotype_suite()))
    return path


def suite_json_text(suite: dict[str, Any]) -> str:
    return json.dumps(suite, indent=2, ensure_ascii=False) + "\n"


def write_staging_suites() -> list[Path]:
    written = []
    for table in spec.TABLES:
        suite = build_staging_suite(table)
        path = suite_path(suite["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(suite_json_text(suite))
        written.append(path)
    return written


def layer_suite_names(layer: str) -> list[str]:
    """Names of the suites stored for a layer, e.g. ["staging.condition_occurrence", ...]."""
    return [suite_name(layer, path.stem) for path in sorted((EXPECTATIONS_DIR / layer).glob("*.json"))]


def read_suite_json(name: str) -> dict[str, Any]:
    path = suite_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no suite {name!r}: {path} does not exist")
    return json.loads(path.read_text())


if __name__ == "__main__":
    for written_path in [*write_staging_suites(), write_phenotype_suite()]:
        print(written_path)
