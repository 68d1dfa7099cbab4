"""A study's rows on Spark's plain tables: a rebuild deletes them (pipelines/cohorts/build.py STUDY_ROWS through
`Engine.delete_rows_where`: on Spark one query finds the tables holding rows to delete, and only those are
rewritten), and a Spark run copies back to DuckDB only the study it built (pipelines/engine/transfer.py
`copy_tables_to_duckdb` with a condition per table), leaving the other studies' rows DuckDB already holds.

Tables shaped like the cohort stage's: definitions with a study id, rows found through the definitions (as
cohort.cohort through cohort.cohort_definition), and a table the study has no rows in."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.engine import as_engine
from pipelines.engine.transfer import copy_tables_to_duckdb
from tests.spark.spark_catalog import empty_catalog

pytestmark = pytest.mark.spark

# The cohort stage's shape: cohort rows are a study's through its definitions, so they go first.
STUDY_ROWS = {
    "study_rows.cohort":
        "definition_id IN (SELECT definition_id FROM study_rows.definitions WHERE study_id = $study_id)",
    "study_rows.definitions": "study_id = $study_id",
    "study_rows.population": "study_id = $study_id",
}
CREATE_TABLES = """
CREATE SCHEMA IF NOT EXISTS study_rows;
CREATE TABLE study_rows.definitions (definition_id INTEGER, study_id VARCHAR);
CREATE TABLE study_rows.cohort (definition_id INTEGER, person_id VARCHAR);
CREATE TABLE study_rows.population (study_id VARCHAR, person_id VARCHAR, followup_days INTEGER);
"""
# Two studies; "b" has no population rows.
ROWS = """
INSERT INTO study_rows.definitions VALUES (1, 'a'), (2, 'a'), (3, 'b');
INSERT INTO study_rows.cohort VALUES (1, 'p1'), (2, 'p2'), (3, 'p1'), (3, 'p3');
INSERT INTO study_rows.population VALUES ('a', 'p1', 10), ('a', 'p2', NULL);
"""


def _contents(engine) -> dict[str, list[tuple]]:
    return {table: sorted((tuple(row.values()) for row in engine.records(f"SELECT * FROM {table}")),
                          key=repr) for table in STUDY_ROWS}


def test_deleting_a_studys_rows_leaves_the_others_on_both_engines(engines, spark):
    with empty_catalog(spark):
        found = {}
        for name, engine in engines.items():
            engine.execute(CREATE_TABLES + ROWS)
            engine.delete_rows_where(STUDY_ROWS, {"study_id": "b"})  # no population rows: that table is kept
            engine.delete_rows_where(STUDY_ROWS, {"study_id": "nobody"})  # nothing anywhere
            found[name] = _contents(engine)
        assert found["duckdb"] == {
            "study_rows.cohort": [(1, "p1"), (2, "p2")],
            "study_rows.definitions": [(1, "a"), (2, "a")],
            "study_rows.population": [("a", "p1", 10), ("a", "p2", None)],
        }
        assert found["spark"] == found["duckdb"]
        engines["spark"].delete_rows_where(STUDY_ROWS, {"study_id": "a"})
        assert _contents(engines["spark"]) == dict.fromkeys(STUDY_ROWS, [])


def test_a_study_is_copied_back_without_touching_the_other_studies_rows(spark, tmp_path):
    """DuckDB holds an earlier build of both studies; Spark's new build of study "a" replaces only a's rows."""
    con = duckdb.connect()
    duck = as_engine(con)
    duck.execute(CREATE_TABLES + ROWS)
    duck.execute("INSERT INTO study_rows.population VALUES ('b', 'p3', 7)")
    with empty_catalog(spark):
        on_spark = as_engine(spark)
        on_spark.execute(CREATE_TABLES)
        on_spark.execute("INSERT INTO study_rows.definitions VALUES (1, 'a'), (3, 'b'); "
                         "INSERT INTO study_rows.cohort VALUES (1, 'p9'), (3, 'p8'); "
                         "INSERT INTO study_rows.population VALUES ('a', 'p9', 5), ('b', 'p8', 1)")
        copied = copy_tables_to_duckdb(spark, con, STUDY_ROWS, tmp_path, {"study_id": "a"})
    assert copied == {"study_rows.cohort": 1, "study_rows.definitions": 1, "study_rows.population": 1}
    assert _contents(duck) == {
        "study_rows.cohort": [(1, "p9"), (3, "p1"), (3, "p3")],
        "study_rows.definitions": [(1, "a"), (3, "b")],
        "study_rows.population": [("a", "p9", 5), ("b", "p3", 7)],
    }
