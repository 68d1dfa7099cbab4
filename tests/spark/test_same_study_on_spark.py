"""The same study on DuckDB and on Spark: a generated extract with planted defects is ingested by DuckDB, its
staging tables handed to Spark as Parquet, and the phenotype and cohort stages run on both engines from the same
SQL files; every output table has the same fingerprint on both (pipelines/engine/fingerprint.py). Only the
fingerprints (one row per table) leave the engines."""

from __future__ import annotations

import duckdb
import pytest

from pipelines import tables
from pipelines.cohorts import build_all_studies, load_studies
from pipelines.cohorts.spark_stages import export_stage_inputs, run_phenotype_and_cohort_stages
from pipelines.engine import as_engine
from pipelines.engine.fingerprint import table_fingerprint
from pipelines.ingest.loader import load_extract
from pipelines.phenotypes import run_phenotypes

pytestmark = pytest.mark.spark

PATIENTS, SEED = 300, 1


@pytest.fixture(scope="module")
def built(spark, generated_extract, tmp_path_factory):
    """{"duckdb": engine, "spark": engine}, each holding the phenotype and cohort outputs of every study."""
    folder = tmp_path_factory.mktemp("same_study")
    extract = generated_extract(PATIENTS, SEED)
    con = duckdb.connect(str(folder / "duckdb.duckdb"))
    load_extract(con, extract.path)
    rejected = con.execute(f"SELECT count(*) FROM {tables.INGEST_REJECTS}").fetchone()[0]
    assert rejected > 0, "the extract must carry planted defects for the comparison to cover rejected rows"
    export_stage_inputs(con, folder / "stage_inputs")
    run_phenotypes(con)
    build_all_studies(con)
    run_phenotype_and_cohort_stages(spark, folder / "stage_inputs")
    yield {"duckdb": as_engine(con), "spark": as_engine(spark)}
    con.close()


def assert_same(built, table: str, columns: list[str] | None = None, at_least: int = 1) -> None:
    duck = table_fingerprint(built["duckdb"], table, columns)
    spark = table_fingerprint(built["spark"], table, columns)
    assert duck.rows >= at_least, f"{table}: {duck.rows} rows on DuckDB; the comparison would prove little"
    assert spark.differences(duck) == [], f"{table} on Spark differs from DuckDB"


def test_phenotype_persons_and_first_dates_are_identical(built):
    assert_same(built, tables.PHENOTYPE_PERSON_SUMMARY, ["person_id", "phenotype_id", "first_date"], at_least=100)
    assert_same(built, tables.PHENOTYPE_PERSON_SUMMARY)
    assert_same(built, tables.PHENOTYPE_EVENTS, at_least=1000)


def test_attrition_is_identical(built):
    assert_same(built, tables.ATTRITION, at_least=len(load_studies()))


def test_table1_is_identical(built):
    assert_same(built, tables.TABLE1, at_least=len(load_studies()))


@pytest.mark.parametrize("table", [tables.COHORT_DEFINITION, tables.COHORT, tables.STUDY_POPULATION,
                                   tables.STUDY_VARIABLES, tables.PERSON_VARIABLES])
def test_cohort_tables_are_identical(built, table):
    assert_same(built, table)


def test_every_study_has_persons_on_both_engines(built):
    # Per-study counts, so an engine that built one study twice and another not at all cannot match by sum.
    sql = f"SELECT study_id, count(*) AS persons FROM {tables.STUDY_POPULATION} GROUP BY study_id ORDER BY study_id"
    duck = built["duckdb"].records(sql)
    assert [row["study_id"] for row in duck] == sorted(load_studies())
    assert all(row["persons"] > 0 for row in duck)
    assert built["spark"].records(sql) == duck

