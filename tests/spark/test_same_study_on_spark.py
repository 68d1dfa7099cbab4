"""The same study on DuckDB and on Spark: the phenotype and cohort stages of the group's Spark run
(tests/spark/conftest.py `study_runs`: the study job with `engine: spark` on a generated extract with planted
defects, ingested on Spark) against the same stages run by DuckDB from the same SQL files on the same extract
(`study_database`, as a DuckDB run builds them). Every output table Spark wrote, read where it is in the session's
catalogue, has the same fingerprint as DuckDB's (pipelines/engine/fingerprint.py), for every study. Only the
fingerprints (one row per table) leave the engines.

The statistics then read their per-person inputs from each engine (pipelines/statistics/study_analysis.py through
the engine layer), for one study per index rule (first visit, lab test, new user: each rule has its own SQL, the
other studies only other parameters), and publish into DuckDB, as the Spark path of a run does (the Spark-built
tables copied into a DuckDB database): the estimates, not-estimable reasons and suppression decisions are the
same."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines import tables
from pipelines.cohorts import load_studies
from pipelines.cohorts.spark_stages import (COHORT_STAGE_TABLES, copy_cohort_stage_to_duckdb,
                                            copy_phenotype_stage_to_duckdb)
from pipelines.engine import as_engine
from pipelines.engine.fingerprint import table_fingerprint
from pipelines.statistics.assets import publish_study_results
from pipelines.statistics.results import COUNT_COLUMNS
from pipelines.statistics.sequence_symmetry import garrison_sequence_symmetry
from pipelines.statistics.study_analysis import (analyse_study, drug_exposures, results_frame,
                                                 sequence_symmetry_for_drugs, study_population)
from tests.spark.own_process import started_in_own_process
from tests.spark.spark_catalog import catalog_claimed_by
from tests.spark.study_runs import STUDY_RUN_PATIENTS, STUDY_RUN_SEED, STUDY_RUNS_FIXTURE

pytestmark = pytest.mark.spark

RELATIVE_TOLERANCE = 1e-9


def one_study_per_index_rule() -> dict:
    """The first study file of each index rule."""
    chosen: dict = {}
    for study_id, study in sorted(load_studies().items()):
        chosen.setdefault(study.index.rule, (study_id, study))
    return dict(sorted(chosen.values()))


STUDIES = one_study_per_index_rule()


@pytest.fixture(scope="module")
def built(spark, study_runs, study_database, tmp_path_factory):
    """{"duckdb": engine, "spark": engine}, each holding the phenotype and cohort outputs of every study: on DuckDB
    a copy of `study_database`, on Spark the Spark run's own tables."""
    assert catalog_claimed_by(spark) == STUDY_RUNS_FIXTURE, (
        "the session's catalogue no longer holds the Spark run's tables: another module emptied it before this one "
        "ran (tests/spark/conftest.py runs the study-run tests first)")
    database = tmp_path_factory.mktemp("same_study") / "duckdb.duckdb"
    shutil.copy(study_database(STUDY_RUN_PATIENTS, STUDY_RUN_SEED), database)
    con = duckdb.connect(str(database))
    rejected = con.execute(f"SELECT count(*) FROM {tables.INGEST_REJECTS}").fetchone()[0]
    assert rejected > 0, "the extract must carry planted defects for the comparison to cover rejected rows"
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
    assert_same(built, tables.ATTRITION, at_least=len(STUDIES))


def test_table1_is_identical(built):
    assert_same(built, tables.TABLE1, at_least=len(STUDIES))


@pytest.mark.parametrize("table", [tables.COHORT_DEFINITION, tables.COHORT, tables.STUDY_POPULATION,
                                   tables.STUDY_VARIABLES, tables.PERSON_VARIABLES, tables.TIME_VARYING_EXPOSURE])
def test_cohort_tables_are_identical(built, table):
    assert_same(built, table)


def test_every_study_has_persons_on_both_engines(built):
    # Per-study counts, so an engine that built one study twice and another not at all cannot match by sum.
    sql = f"SELECT study_id, count(*) AS persons FROM {tables.STUDY_POPULATION} GROUP BY study_id ORDER BY study_id"
    duck = built["duckdb"].records(sql)
    assert [row["study_id"] for row in duck] == sorted(load_studies())
    assert sorted({study.index.rule for study in STUDIES.values()}) == ["first_visit", "lab_test", "new_user"]
    assert all(row["persons"] > 0 for row in duck)
    assert built["spark"].records(sql) == duck


# ---------------------------------------------------------------------------------------------------------------
# Statistics from each engine's tables
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spark_published(built, tmp_path_factory):
    """A DuckDB database filled from Spark as the Spark path of a run fills the published one: the phenotype and
    cohort stages' tables copied from Spark (pipelines/engine/transfer.py)."""
    folder = tmp_path_factory.mktemp("spark_published")
    con = duckdb.connect(str(folder / "published.duckdb"))
    copy_phenotype_stage_to_duckdb(built["spark"].spark, con, folder / "phenotype")
    copy_cohort_stage_to_duckdb(built["spark"].spark, con, folder / "cohort")
    yield con
    con.close()


def analysed_and_published(engine, publish_into, study) -> tuple:
    """(the study's analysis read from `engine`, its rows as published into DuckDB connection `publish_into`)."""
    analysis = analyse_study(engine, study)
    publish_study_results(publish_into, study, analysis)
    published = publish_into.execute(f"SELECT * FROM {tables.ASSOCIATIONS} WHERE study_id = $study",
                                     {"study": study.id}).df()
    return analysis, published


def analysed_on_duckdb(database: Path) -> dict:
    """`analysed_and_published` for each study of STUDIES, read from and published into the DuckDB `database`."""
    with duckdb.connect(str(database)) as con:
        return {study_id: analysed_and_published(as_engine(con), con, study) for study_id, study in STUDIES.items()}


@pytest.fixture(scope="module")
def analyses(built, spark_published, study_database, tmp_path_factory):
    """Per engine, per study: (the analysis read from that engine, its rows as published into DuckDB). The DuckDB
    side analyses its own copy of the study database in a process of its own while this one reads from Spark (the
    two share nothing; the estimators are Python, and this process mostly waits for Spark's jobs)."""
    database = tmp_path_factory.mktemp("analysed_on_duckdb") / "duckdb.duckdb"
    shutil.copy(study_database(STUDY_RUN_PATIENTS, STUDY_RUN_SEED), database)
    with started_in_own_process(analysed_on_duckdb, database) as on_duckdb:
        on_spark = {study_id: analysed_and_published(built["spark"], spark_published, study)
                    for study_id, study in STUDIES.items()}
        return {"duckdb": on_duckdb.result(), "spark": on_spark}


def test_the_copied_tables_have_duckdbs_fingerprints(built, spark_published):
    copied = as_engine(spark_published)
    for table in (*COHORT_STAGE_TABLES, tables.PHENOTYPE_PERSON_SUMMARY, tables.PHENOTYPE_EVENTS):
        duck = table_fingerprint(built["duckdb"], table)
        assert table_fingerprint(copied, table).differences(duck) == [], table
    # DuckDB's own definitions, not Parquet's types: the copy keeps the columns' DuckDB types.
    types = dict(spark_published.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'results' AND table_name = 'table1'"
    ).fetchall())
    assert types == dict(built["duckdb"].con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'results' AND table_name = 'table1'"
    ).fetchall())


def test_per_person_frames_are_identical_in_values_and_dtypes(built):
    """What the estimators see: the same pandas frame from both engines, dates as datetime64 on both."""
    for study in STUDIES.values():
        duck = study_population(built["duckdb"], study)
        spark = study_population(built["spark"], study)
        assert (duck.dtypes == "datetime64[us]").sum() >= 5, duck.dtypes  # index, outcome, follow-up end, ...
        pd.testing.assert_frame_equal(spark, duck, check_exact=True)


def _estimator_rows(study_id: str, analysis) -> pd.DataFrame:
    """Every estimate the analysis made, before disclosure control: main, sensitivity and negative-control rows (at
    300 patients disclosure control hides nearly every published one)."""
    rows = analysis.results + analysis.negative_control_results
    rows += [row for variant in analysis.sensitivity.values() for row in variant.results]
    return results_frame(study_id, rows)


def _assert_rows_equal(spark: pd.DataFrame, duck: pd.DataFrame, what: str) -> int:
    """Row for row: text, counts and flags identical, other numbers within RELATIVE_TOLERANCE. Returns how many
    numbers were compared."""
    assert list(spark.columns) == list(duck.columns), what
    assert len(spark) == len(duck), what
    compared = 0
    for column in duck.columns:
        for position, (s_value, d_value) in enumerate(zip(spark[column], duck[column])):
            where = f"{what}: row {position} ({duck['exposure'].iloc[position]}, {duck['analysis_id'].iloc[position]}) {column}"
            if pd.isna(d_value):
                assert pd.isna(s_value), f"{where}: {s_value!r} on Spark, NULL on DuckDB"
            elif isinstance(d_value, float) and column not in COUNT_COLUMNS:
                assert math.isclose(s_value, d_value, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0) or (
                    math.isinf(d_value) and s_value == d_value), f"{where}: {s_value!r} != {d_value!r}"
                compared += 1
            else:
                assert s_value == d_value, f"{where}: {s_value!r} != {d_value!r}"
    return compared


def test_estimates_are_duckdbs_within_1e_9_relative(analyses):
    numbers = 0
    for study_id in STUDIES:
        duck_analysis, _ = analyses["duckdb"][study_id]
        spark_analysis, _ = analyses["spark"][study_id]
        duck, spark = _estimator_rows(study_id, duck_analysis), _estimator_rows(study_id, spark_analysis)
        numbers += _assert_rows_equal(spark, duck, f"{study_id} estimates")
        assert spark_analysis.notes == duck_analysis.notes
    assert numbers > 500, "too few estimates to compare: the comparison would prove little"


def test_published_rows_reasons_and_suppression_are_duckdbs(analyses):
    reasons = suppressed = 0
    for study_id in STUDIES:
        duck = analyses["duckdb"][study_id][1]
        spark = analyses["spark"][study_id][1]
        _assert_rows_equal(spark, duck, f"{study_id} published")
        reasons += duck["not_estimable_reason"].notna().sum()
        suppressed += duck["suppressed"].sum()
    assert reasons > 50 and suppressed > 50, "the comparison must cover not-estimable rows and suppressed cells"


def test_sequence_symmetry_is_duckdbs(built):
    drugs = list(dict.fromkeys(drug for study in load_studies().values() for drug in drug_exposures(study)))
    frames = {name: results_frame("sequence_symmetry", sequence_symmetry_for_drugs(engine, drugs)
                                  + garrison_sequence_symmetry(engine, drugs))
              for name, engine in built.items()}
    assert len(frames["duckdb"]) > 20 and frames["duckdb"]["estimate"].notna().sum() >= 3
    assert _assert_rows_equal(frames["spark"], frames["duckdb"], "sequence symmetry") > 20

