"""Data quality on Spark: the same suites give the same verdicts and counts on DuckDB and on Spark.

A generated extract with planted defects (300 patients, seed 1) is ingested, its phenotypes and every study built by
DuckDB (`study_database`). Its implausible rows give 17 staging checks something to count, but none fails at this
size (they are warnings with thresholds), so a few fatal defects are planted on top (PLANTED_FAILURES): a repeated
person id, a repeated phenotype summary row, negative follow-up. Every table the suites read is then handed to Spark
as Parquet under the same name. The staging suites, the phenotype suite and a study's cohort suite run twice through
`run_suites`: GX on the DuckDB file, and GX's Spark datasource on the session's tables (`spark=`), where the
project's SQL checks run through the engine layer's translation. The comparison reads verdicts and counts, so GX's
column expectations fetch no example values on either engine (`column_examples=False`: on Spark each fetch was a job
of its own, 54 for the staging suites, whether or not the check found anything). Every check result (per phenotype
where the suite judges per phenotype) has the same verdict, unexpected count and denominator on both engines, and
none is an error. One cohort suite: the studies' cohort checks differ only in literals (study id, period); every
study's suite runs on Spark in tests/spark/test_dagster_spark.py.

Both engines check the same rows, so a difference is the checks' own (a query Spark reads otherwise), not the
stages': that the stages build the same tables on both is test_same_study_on_spark.py's business.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.cohorts.study import load_studies
from pipelines.engine.transfer import register_stage_inputs
from pipelines.quality import suites
from pipelines.quality.runner import run_suites
from pipelines.sql_quoting import qualified_name, quote_literal
from tests.spark.own_process import started_in_own_process
from tests.spark.spark_catalog import empty_catalog

pytestmark = pytest.mark.spark

PATIENTS, SEED = 300, 1
# Every schema a suite reads: the checked tables and those the SQL checks join (persons, deaths, observation
# periods, phenotype events and definitions, attrition).
CHECKED_SCHEMAS = ("staging", "vocabulary", "phenotype", "cohort", "results")
COHORT_STUDY = "leg_cramps"
# Fatal defects planted in the built database (SQL run on DuckDB before the hand-over), and the check each fails.
PLANTED_FAILURES = {
    ("staging.person", "person_id_unique"):
        "INSERT INTO staging.person SELECT * FROM staging.person ORDER BY person_id LIMIT 12",
    ("phenotype.phenotypes", "one_summary_row_per_person"):
        "INSERT INTO phenotype.person_summary SELECT * FROM phenotype.person_summary "
        "WHERE phenotype_id = (SELECT min(phenotype_id) FROM phenotype.person_summary)",
    (f"cohort.{COHORT_STUDY}", "followup_not_negative"):
        f"UPDATE cohort.study_population SET followup_days = -1 WHERE study_id = '{COHORT_STUDY}' AND person_id IN "
        f"(SELECT person_id FROM cohort.study_population WHERE study_id = '{COHORT_STUDY}' ORDER BY 1 LIMIT 12)",
}


def _suite_jsons() -> list[dict]:
    return ([suites.read_suite_json(name) for name in suites.layer_suite_names(suites.STAGING_LAYER)]
            + [suites.read_suite_json(suites.PHENOTYPE_SUITE)]
            + [suites.build_cohort_suite(load_studies()[COHORT_STUDY])])


def _hand_to_spark(database: Path, spark, folder: Path) -> None:
    """Every table of CHECKED_SCHEMAS as <schema>.<table>.parquet, registered on Spark under its name."""
    folder.mkdir(parents=True)
    with duckdb.connect(str(database), read_only=True) as con:
        for schema, table in con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE list_contains($schemas, schema_name)",
                {"schemas": list(CHECKED_SCHEMAS)}).fetchall():
            con.execute(f"COPY {qualified_name(schema, table)} TO "
                        f"{quote_literal(folder / f'{schema}.{table}.parquet')} (FORMAT parquet)")
    register_stage_inputs(spark, folder)


@pytest.fixture(scope="module")
def results(spark, study_database, tmp_path_factory):
    """{"duckdb": [SuiteResult, ...], "spark": [...]}: the same suites on the same tables of each engine."""
    folder = tmp_path_factory.mktemp("quality_on_spark")
    planted = folder / "planted.duckdb"
    shutil.copy(study_database(PATIENTS, SEED), planted)
    with duckdb.connect(str(planted)) as con:
        for statement in PLANTED_FAILURES.values():
            con.execute(statement)
    databases = {engine: folder / engine / "checked.duckdb" for engine in ("duckdb", "spark")}
    for database in databases.values():  # each run records its results (and GX its stores) in its own folder
        database.parent.mkdir()
        shutil.copy(planted, database)
    with empty_catalog(spark):
        # GX on the DuckDB file in a process of its own while this one validates on Spark: the two share nothing
        # but the planted copy each starts from.
        with started_in_own_process(run_suites, databases["duckdb"], _suite_jsons(), build_data_docs=False,
                                    diagnostics_file=folder / "duckdb_examples.jsonl",
                                    column_examples=False) as on_duckdb:
            _hand_to_spark(databases["spark"], spark, folder / "parquet")
            found = {"spark": run_suites(databases["spark"], _suite_jsons(), build_data_docs=False, spark=spark,
                                         diagnostics_file=folder / "spark_examples.jsonl", column_examples=False),
                     "duckdb": on_duckdb.result()}
        yield found


def _by_check(suite_results) -> dict[tuple, tuple]:
    return {(s.suite, r.name, r.phenotype_id): (r.passed, r.unexpected_count, r.element_count, r.error)
            for s in suite_results for r in s.results}


def test_every_check_has_duckdbs_verdict_and_counts_on_spark(results):
    duck, spark = _by_check(results["duckdb"]), _by_check(results["spark"])
    assert spark.keys() == duck.keys()
    differing = {key: (duck[key], spark[key]) for key in duck if spark[key] != duck[key]}
    assert not differing, "\n".join(f"{key}: DuckDB {d}, Spark {s}" for key, (d, s) in sorted(differing.items()))


def test_the_comparison_covers_every_suite_and_failing_checks(results):
    duck = _by_check(results["duckdb"])
    assert not [key for key, (_, _, _, error) in duck.items() if error], "a check DuckDB could not evaluate"
    staging = {key: value for key, value in duck.items() if key[0].startswith("staging.")}
    assert len(staging) >= 50
    # The generator's implausible rows: counts to compare; the planted defects: failing verdicts.
    assert sum(1 for _, count, _, _ in staging.values() if count) >= 15
    failing = {(suite, name) for (suite, name, _), (passed, count, _, _) in duck.items() if not passed and count}
    assert failing == set(PLANTED_FAILURES)
    assert {"column_types_match_spec", "condition_code_format_snomed", "measurement_code_format_loinc"} <= {
        name for _, name, _ in staging}
    assert sum(1 for key in duck if key[2] is not None) >= 100  # phenotype checks, one result per phenotype
    assert {key[0] for key in duck} >= {suites.PHENOTYPE_SUITE, f"cohort.{COHORT_STUDY}"}


def test_the_check_digit_and_column_type_checks_find_their_defects_on_spark(spark):
    """The checks Spark could not parse before (s8: DuckDB's list lambdas and DESCRIBE as a relation) run there
    and find what they should on a table made for the purpose: the codes whose check digit is wrong by the Python
    rule (SNOMED's Verhoeff, LOINC's mod 10), and a column of another type than the spec's."""
    from pipelines import extract_spec as spec
    from pipelines.engine import as_engine
    from pipelines.vocabularies import check_digit_is_valid

    measurement = next(table for table in spec.TABLES if table.name == "measurement")
    checks = {check.name: check.kwargs["unexpected_rows_query"].format(batch="staging.measurement")
              for check in suites.checks_for(measurement) if "unexpected_rows_query" in check.kwargs}
    codes = [("SNOMED", "271649006"), ("SNOMED", "271649007"), ("SNOMED", "22298006"), ("SNOMED", "22298005"),
             ("LOINC", "2951-2"), ("LOINC", "2951-3"), ("LOINC", "19123-9"), ("LOINC", "19123-8")]
    rows = ", ".join(f"('{i}', 'p{i}', '{vocabulary}', '{code}', '1.5')" for i, (vocabulary, code) in enumerate(codes))
    with empty_catalog(spark):
        spark.sql("CREATE DATABASE IF NOT EXISTS staging")
        # value_as_number as text: the spec's DOUBLE is what the type check must miss.
        spark.sql(f"CREATE TABLE staging.measurement AS SELECT * FROM VALUES {rows} "
                  "AS t(measurement_id, person_id, measurement_vocabulary, measurement_code, value_as_number)")
        engine = as_engine(spark)
        for vocabulary in ("SNOMED", "LOINC"):
            found = {row["measurement_code"] for row in engine.records(
                checks[f"measurement_code_format_{vocabulary.lower()}"])}
            wrong = {code for v, code in codes if v == vocabulary and not check_digit_is_valid(vocabulary, code)}
            assert found == wrong and len(wrong) >= 1, vocabulary
        types = engine.records(checks["column_types_match_spec"])
        assert [(row["column_name"], row["expected_type"], row["actual_type"]) for row in types] == [
            ("value_as_number", "DOUBLE", "VARCHAR")]
