"""Every SQL text of the project runs on Spark as the engine layer translates it (no Java needed): every statement
of sql/ and every data-quality check, checked by pipelines/engine/portability.py against the constructs Spark
refuses or reads otherwise. A new statement that uses one fails here, naming its file and statement."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlglot import parse_one

from pipelines import extract_spec as spec
from pipelines.cohorts.study import load_studies
from pipelines.engine.dialect import ROW_HASH, define_macro, parse_statements, translate
from pipelines.engine.portability import portability_problems
from pipelines.engine.spark_engine import SQL, TEMP_VIEW, spark_steps
from pipelines.paths import SQL_DIR
from pipelines.sql import AGES_SQL, MEASUREMENT_VALUES_SQL, RECORD_SPANS_SQL
from pipelines.quality import suites

SQL_FILES = sorted(SQL_DIR.rglob("*.sql"))
# The staging models call the macros of format_macros.sql, the phenotype and cohort models the one of
# record_spans.sql and those of measurement_values.sql, the cohort and Garrison models the one of ages.sql; each runs
# first in the same session.
MACRO_FILES = (SQL_DIR / "staging" / "format_macros.sql", SQL_DIR / RECORD_SPANS_SQL, SQL_DIR / AGES_SQL,
               SQL_DIR / MEASUREMENT_VALUES_SQL)


def _macros():
    macros = {}
    for path in MACRO_FILES:
        for statement in parse_statements(path.read_text()):
            define_macro(statement, macros)
    return macros


def test_there_are_sql_files_to_check():
    assert len(SQL_FILES) > 40 and sum(len(parse_statements(p.read_text())) for p in SQL_FILES) > 90


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: str(p.relative_to(SQL_DIR)))
def test_every_statement_of_sql_runs_on_spark(path: Path):
    problems = portability_problems(path.read_text(), _macros())
    assert not problems, f"{path.relative_to(SQL_DIR.parent)}:\n" + "\n".join(
        f"  {statement}\n    -> {problem}" for statement, problem in problems)


def _check_queries():
    """(suite, check, SQL with {batch} as the checked table) of every SQL data-quality check."""
    checks = []
    for table in spec.TABLES.values() if isinstance(spec.TABLES, dict) else spec.TABLES:
        checks += [(f"staging.{table.name}", check, f"staging.{table.name}") for check in suites.checks_for(table)]
    for study in load_studies().values():
        checks += [(f"cohort {study.id}", check, "cohort.study_population") for check in suites.cohort_checks(study)]
    checks += [("phenotype", check, "phenotype.person_summary") for check in suites.phenotype_checks()]
    return [(suite, check.name, text.replace("{batch}", batch))
            for suite, check, batch in checks
            for key, text in check.kwargs.items() if key.endswith("_query")]


CHECK_QUERIES = _check_queries()
# The one check the session-less portability check cannot pass: the column types of a staging table, read from
# DuckDB's DESCRIBE as a relation, which the Spark engine replaces with the table's schema on its session
# (pipelines/engine/dialect.py column_types_relation; tests/spark/test_quality_on_spark.py runs it on Spark).
SESSION_MAPPED_CHECKS = {"column_types_match_spec"}


def test_there_are_data_quality_queries_to_check():
    assert len(CHECK_QUERIES) > 50


def test_every_data_quality_check_runs_on_spark():
    failing = []
    for suite, name, query in CHECK_QUERIES:
        if name in SESSION_MAPPED_CHECKS:
            continue
        # The row hash only narrows the repeated-value search that an exact GROUP BY then decides.
        for statement, problem in portability_problems(query, allowed=frozenset({ROW_HASH})):
            failing.append(f"{suite} {name}: {problem}\n    {statement}")
    assert not failing, "\n".join(failing)


def test_the_session_mapped_checks_are_the_ones_the_portability_check_refuses():
    """The exemption above is exactly the checks the portability check refuses: none more, none hidden (the
    check-digit formats run on Spark through the dialect's list functions)."""
    refused = {name for _, name, query in CHECK_QUERIES
               if portability_problems(query, allowed=frozenset({ROW_HASH}))}
    assert refused == SESSION_MAPPED_CHECKS


def test_the_duplicate_checks_lose_the_duckdb_hint_and_hash_on_spark():
    [query] = [q for _, name, q in CHECK_QUERIES if name == "drug_exposure_id_unique"]
    assert "NOT MATERIALIZED" in query and f"{ROW_HASH}(" in query
    [spark] = translate(query)
    assert "MATERIALIZED" not in spark and "XXHASH64(" in spark and "HASH(" not in spark.replace("XXHASH64(", "")


# Each construct the issue found Spark refusing or reading otherwise, with the portable form that replaces it.
KNOWN_CONSTRUCTS = [
    ("date minus date", "SELECT visit_date - period_start AS days FROM t",
     "SELECT date_diff('day', period_start, visit_date) AS days FROM t"),
    ("len of a list", "SELECT len($visit_types) = 0 FROM t", "SELECT array_length($visit_types) = 0 FROM t"),
    ("age by date_sub", "SELECT date_sub('year', birth_date, index_date) FROM t",
     "SELECT year(index_date) - year(birth_date) FROM t"),
    ("generate_subscripts", "SELECT unnest($codes) AS code, generate_subscripts($codes, 1) AS i",
     "SELECT code, array_position($codes, code) AS i FROM (SELECT unnest($codes) AS code) AS c"),
    ("CREATE OR REPLACE TABLE", "CREATE OR REPLACE TABLE s.t (a INTEGER)",
     "DROP TABLE IF EXISTS s.t; CREATE TABLE s.t (a INTEGER)"),
    ("hash", "SELECT hash(person_id) AS h FROM t", "SELECT person_id FROM t"),
    ("DuckDB-only function", "SELECT list_reduce($codes, lambda a, b: a || b) AS c",
     "SELECT array_to_string($codes, '') AS c"),
    ("DESCRIBE as a relation", "SELECT * FROM (DESCRIBE SELECT * FROM t)", "SELECT * FROM t"),
]


@pytest.mark.parametrize(("construct", "refused", "portable"), KNOWN_CONSTRUCTS, ids=[c[0] for c in KNOWN_CONSTRUCTS])
def test_the_check_refuses_each_known_construct_and_takes_its_portable_form(construct, refused, portable):
    assert portability_problems(refused), construct
    assert portability_problems(portable) == []


@pytest.mark.parametrize("ddl", [
    "CREATE TABLE s.t (a VARCHAR NOT NULL PRIMARY KEY, b INTEGER)",
    "ALTER TABLE s.t ADD COLUMN IF NOT EXISTS c BOOLEAN",
    "ALTER TABLE s.t ALTER COLUMN c DROP NOT NULL",
    "DELETE FROM s.t WHERE a = $a",
    "CREATE TEMP TABLE w AS SELECT 1 AS x",
    "CREATE TEMP MACRO twice(x) AS x * 2; SELECT twice(a) FROM t",
])
def test_ddl_the_spark_engine_maps_passes(ddl):
    """DDL Spark's plain tables refuse as written, which the Spark engine maps (spark_engine.spark_steps)."""
    assert portability_problems(ddl) == []


def test_a_view_stays_a_view_and_a_temporary_table_never_becomes_one():
    """A temporary view is recomputed on every read on both engines (sql/phenotypes/drug_records.sql reads the drug
    records where they are used); a temporary table is materialised once on Spark too, never a plain view."""
    view = "CREATE TEMP VIEW v AS SELECT a FROM s.t"
    assert portability_problems(view) == []
    [step] = spark_steps(parse_one(view, read="duckdb"))
    assert (step.kind, step.sql) == (SQL, "CREATE TEMPORARY VIEW v AS SELECT a FROM s.t")
    [step] = spark_steps(parse_one("CREATE TEMP TABLE w AS SELECT a FROM s.t", read="duckdb"))
    assert (step.kind, step.table, step.sql) == (TEMP_VIEW, "w", "SELECT a FROM s.t")


def test_translation_uses_the_exact_percentile_and_duckdb_division():
    [spark] = translate("SELECT quantile_cont(x, 0.25) AS q, a / b AS r FROM t")
    assert "PERCENTILE(x, 0.25)" in spark and "PERCENTILE_CONT" not in spark
    assert "WHEN b = 0 THEN" in spark and "'Infinity'" in spark


def test_parameters_are_bound_as_spark_literals():
    """Spark reads 'it''s' as two adjacent literals ('its'): quotes and backslashes are escaped its way."""
    [spark] = translate("SELECT $name AS name, $codes AS codes, $none AS none", {
        "name": "O'Brien \\ co", "codes": [], "none": None})
    assert spark == ("SELECT 'O\\'Brien \\\\ co' AS name, CAST(ARRAY() AS ARRAY<STRING>) AS codes, NULL AS none")
