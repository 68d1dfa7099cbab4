"""Same extract and study files, same published numbers: results.associations of two analyses is compared by content
hash. The second database holds the same cohort rows in another physical order, as a DuckDB run with several threads
may write them; model sampling, cross-validation folds and matching must not depend on it, only on the study's seed."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from pipelines.cohorts import build_all_studies, load_studies
from pipelines.ingest.loader import load_extract
from pipelines.phenotypes import run_phenotypes
from pipelines.statistics.assets import SEQUENCE_SYMMETRY_ID, publish_associations, publish_study_results
from pipelines.statistics.study_analysis import analyse_study, drug_exposures, results_frame, sequence_symmetry_for_drugs



@pytest.fixture(scope="module")
def two_databases(tmp_path_factory, generated_extract):
    """The bundled sample (5,000 patients, seed 42) built once, and a copy whose cohort rows are stored in reverse."""
    root = tmp_path_factory.mktemp("determinism")
    first = root / "first.duckdb"
    with duckdb.connect(str(first)) as con:
        load_extract(con, generated_extract(5_000, 42).path)
        run_phenotypes(con)
        build_all_studies(con)
    second = root / "second.duckdb"
    shutil.copy(first, second)
    with duckdb.connect(str(second)) as con:
        con.execute("CREATE OR REPLACE TABLE cohort.study_population AS "
                    "SELECT * FROM cohort.study_population ORDER BY hash(person_id), person_id")
    return first, second


def publish_statistics(database, studies) -> None:
    """What the statistics assets write: each study's estimates and the sequence symmetry rows."""
    with duckdb.connect(str(database)) as con:
        for study in studies:
            publish_study_results(con, study, analyse_study(con, study))
        drugs = list(dict.fromkeys(d for s in studies for d in drug_exposures(s)))
        rows = sequence_symmetry_for_drugs(con, drugs)
        publish_associations(con, SEQUENCE_SYMMETRY_ID, results_frame(SEQUENCE_SYMMETRY_ID, rows), 11)


def content_hash(database, table: str) -> str:
    """md5 of every row as text, in sorted order: equal for equal contents whatever the physical row order."""
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(f"SELECT md5(string_agg(CAST(t AS VARCHAR), chr(10) ORDER BY CAST(t AS VARCHAR))) "
                           f"FROM {table} t").fetchone()[0]


@pytest.mark.slow
def test_two_analyses_of_the_same_extract_and_study_files_publish_identical_tables(two_databases):
    first, second = two_databases
    with duckdb.connect(str(first), read_only=True) as con:
        order = con.execute("SELECT list(person_id) FROM (SELECT person_id FROM cohort.study_population "
                            "WHERE study_id = 'thiazide_vs_ccb' LIMIT 50)").fetchone()[0]
    with duckdb.connect(str(second), read_only=True) as con:
        other_order = con.execute("SELECT list(person_id) FROM (SELECT person_id FROM cohort.study_population "
                                  "WHERE study_id = 'thiazide_vs_ccb' LIMIT 50)").fetchone()[0]
    assert order != other_order  # the same rows, stored in another order

    studies = list(load_studies().values())
    publish_statistics(first, studies)
    publish_statistics(second, studies)
    for table in ("results.associations", "results.analysis_attrition", "results.analysis_covariates"):
        assert content_hash(first, table) == content_hash(second, table), table

    with duckdb.connect(str(first), read_only=True) as con:
        propensity_rows = dict(con.execute(
            "SELECT exposure, count(*) FROM results.associations WHERE study_id = 'thiazide_vs_ccb' "
            "AND ps_auc IS NOT NULL GROUP BY exposure").fetchall())
        seeds = dict(con.execute("SELECT study_id, any_value(seed) FROM results.associations GROUP BY ALL").fetchall())
    # Matching, strata and weighting were all compared, in the intention-to-treat and the on-treatment analysis.
    assert len(propensity_rows) == 2 and set(propensity_rows.values()) == {3}, propensity_rows
    assert seeds == {**{s.id: s.seed for s in studies}, SEQUENCE_SYMMETRY_ID: None}
    assert all(s.seed == 2015 for s in studies)  # read from the study files


def test_two_cohort_builds_publish_identical_table1_and_attrition(two_databases, tmp_path):
    """Table 1's means and SDs are sums over persons: computed from exact integer sums, they do not depend on the
    order DuckDB's threads add them in (avg/stddev_samp over doubles differed in the 15th digit between runs)."""
    first, _ = two_databases
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copy(first, rebuilt)
    with duckdb.connect(str(rebuilt)) as con:
        con.execute("SET threads = 4")
        build_all_studies(con)
    for table in ("results.table1", "results.attrition"):
        assert content_hash(first, table) == content_hash(rebuilt, table), table
    with duckdb.connect(str(rebuilt), read_only=True) as con:
        sd, exact = con.execute(
            "SELECT t.sd, (SELECT stddev_samp(age_at_index::DOUBLE) FROM cohort.study_population "
            "WHERE study_id = 'leg_cramps') FROM results.table1 t WHERE t.study_id = 'leg_cramps' "
            "AND t.variable = 'age_at_index' AND t.statistic = 'mean_sd' AND t.\"group\" = 'overall'").fetchone()
    assert sd == pytest.approx(exact, rel=1e-12)


@pytest.mark.slow
def test_the_seed_comes_from_the_study_file(two_databases, tmp_path):
    first, _ = two_databases
    copy = tmp_path / "copy.duckdb"
    shutil.copy(first, copy)
    study = load_studies()["thiazide_vs_ccb"]
    reseeded = study.model_copy(update={"seed": study.seed + 1})
    publish_statistics(copy, [reseeded])
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("SELECT DISTINCT seed FROM results.associations WHERE study_id = 'thiazide_vs_ccb'"
                           ).fetchall() == [(study.seed + 1,)]
