"""The study job on Spark as a real Dagster run: the same job, in a real Dagster instance, once with the warehouse's
`engine: spark` and once on DuckDB, on a generated extract with planted defects; the two published databases hold
the same results.

Each published table of the phenotype, cohort and results schemas has the same fingerprint
(pipelines/engine/fingerprint.py) in both databases, and dq.check_results has the same verdicts and counts for every
check, although the phenotype and cohort suites ran on Spark's tables in the Spark run. The Spark run ingested the
extract on Spark (pipelines/ingest/spark_loader.py): its staging tables have the DuckDB run's fingerprints, its
ingest.rejects, ingest.load_counts and ingest.manifest hold the DuckDB run's rows, and the reject-share checks gave
the same verdicts, and its phenotype stage read Spark's own staging tables (not DuckDB's copy sent back). The Spark
run also says what ran it (each materialisation of the ingest and of a stage that runs
on the run's engine records `engine: spark`) and leaves no exchange folder behind.

The runs are the group's (tests/spark/conftest.py `study_runs`, shared with test_same_study_on_spark.py); the Spark
run uses the group's one Spark session: `local_spark_session()` returns the active session, as in any process that
started one before its run.
"""

from __future__ import annotations

from collections import defaultdict

import duckdb
import pytest

from pipelines import extract_spec as spec
from pipelines import tables
from pipelines.engine import as_engine
from pipelines.engine.fingerprint import table_columns, table_fingerprint
from pipelines.ingest.reject_share import CASCADE_CHECK, TABLE_CHECK
from pipelines.sql_quoting import quote_literal
from pipelines.warehouse import ENGINE_KINDS, SPARK_EXCHANGE_SUFFIX

pytestmark = pytest.mark.spark

COMPARED_SCHEMAS = ("phenotype", "cohort", "results")
# The Spark ingest's log line for each table it loaded (pipelines/ingest/spark_loader.py load_csv_table_on_spark).
SPARK_LOADED = "rejected (on Spark)"
# What a data-quality result says about the data; run_id and checked_at name the run.
CHECK_RESULT_COLUMNS = ["suite", "expectation", "phenotype_id", "passed", "unexpected_count", "unexpected_pct",
                        "element_count", "error", "suppressed"]


def _published_tables(con) -> list[str]:
    return [f"{schema}.{table}" for schema, table in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE list_contains($schemas, schema_name) ORDER BY ALL",
        {"schemas": list(COMPARED_SCHEMAS)}).fetchall()]


def test_the_published_tables_of_a_spark_run_have_the_duckdb_runs_fingerprints(study_runs):
    with duckdb.connect(str(study_runs["duckdb"].database), read_only=True) as duck_con, \
            duckdb.connect(str(study_runs["spark"].database), read_only=True) as spark_con:
        names = _published_tables(duck_con)
        assert _published_tables(spark_con) == names
        assert {tables.ASSOCIATIONS, tables.ANALYSIS_ATTRITION, tables.TABLE1, tables.STUDY_POPULATION,
                tables.PHENOTYPE_PERSON_SUMMARY} <= set(names)
        duck, spark = as_engine(duck_con), as_engine(spark_con)
        differing = []
        for table in names:
            assert table_columns(spark, table) == table_columns(duck, table), table
            expected = table_fingerprint(duck, table)
            if table_fingerprint(spark, table).differences(expected):
                differing.append(f"{table} ({expected.rows} rows on DuckDB)")
        assert not differing, "published by the Spark run, other than the DuckDB run's: " + ", ".join(differing)
        [(rows,)] = duck_con.execute(f"SELECT count(*) FROM {tables.ASSOCIATIONS}").fetchall()
        assert rows > 100


def test_the_data_quality_results_are_the_duckdb_runs(study_runs):
    with duckdb.connect(str(study_runs["duckdb"].database), read_only=True) as duck_con, \
            duckdb.connect(str(study_runs["spark"].database), read_only=True) as spark_con:
        duck = table_fingerprint(as_engine(duck_con), tables.CHECK_RESULTS, CHECK_RESULT_COLUMNS)
        spark = table_fingerprint(as_engine(spark_con), tables.CHECK_RESULTS, CHECK_RESULT_COLUMNS)
        assert spark.differences(duck) == []
        # At 300 patients no check fails (test_quality_on_spark.py plants failures); the generator's implausible
        # rows give checks counts, most of them small and so hidden (suppressed) in the published table.
        [(counted, phenotype_results)] = duck_con.execute(
            f"SELECT count(*) FILTER (suppressed OR unexpected_count > 0), count(phenotype_id) "
            f"FROM {tables.CHECK_RESULTS}").fetchall()
        assert duck.rows > 300 and counted >= 10 and phenotype_results > 100


def test_the_spark_run_checked_the_phenotype_and_cohort_layers_on_spark(study_runs):
    on_spark = [m for m in study_runs["spark"].log if "checks passed on Spark" in m]
    assert any(m.startswith("phenotype.phenotypes:") for m in on_spark)
    assert any(m.startswith("cohort.") for m in on_spark)
    # The staging suites check the run's DuckDB copy of the staging tables (SPARK_CHECKED_LAYERS)
    assert not any(m.startswith("staging.") for m in on_spark)
    assert not any("checks passed on Spark" in m for m in study_runs["duckdb"].log)
    assert sum("checks passed on DuckDB" in m for m in study_runs["duckdb"].log) > 10
    # Each check result records the same (metadata "engine", which bench/run_benchmark.py reads per stage).
    for engine, (result, _, _) in study_runs.items():
        recorded = defaultdict(set)  # layer -> engines its data-quality check results record
        for evaluation in result.get_asset_check_evaluations():
            if "engine" in evaluation.metadata:
                recorded[evaluation.asset_key.path[0]].add(evaluation.metadata["engine"].value)
        assert recorded == {"staging": {"duckdb"}, "phenotype": {engine}, "cohort": {engine}}, engine


def test_materialisations_say_which_engine_ran_them(study_runs):
    for engine, (result, _, _) in study_runs.items():
        recorded = {tuple(event.asset_key.path): event.materialization.metadata
                    for event in result.get_asset_materialization_events()}
        stage_assets = {key: value for key, value in recorded.items() if key[0] in ("phenotype", "cohort", "results")}
        assert len(stage_assets) > 100
        assert {value["engine"].value for value in stage_assets.values()} == {engine}, engine
        ingest = [metadata for key, metadata in recorded.items() if key[0] == "staging"]
        assert len(ingest) == len(spec.TABLES)
        assert {metadata["engine"].value for metadata in ingest} == {engine}, engine
        assert not any("ingest_engine" in metadata for metadata in ingest)  # no fallback to DuckDB to explain


def test_the_spark_run_ingested_on_spark(study_runs):
    """Every table with a file was read by the Spark loader in the Spark run (its log line), none in the DuckDB
    run, and nothing fell back to DuckDB."""
    result, _, spark_log = study_runs["spark"]
    with_file = {event.asset_key.path[1] for event in result.get_asset_materialization_events()
                 if event.asset_key.path[0] == "staging"
                 and event.materialization.metadata["source_file"].value != "(absent: optional table)"}
    assert {"person", "visit_occurrence", "drug_exposure"} <= with_file
    assert {m.split(":", 1)[0] for m in spark_log if m.endswith(SPARK_LOADED)} == with_file
    assert not any(m.endswith(SPARK_LOADED) for m in study_runs["duckdb"].log)
    assert not any("ingest on DuckDB, not on the run's engine" in m for m in spark_log)
    # The phenotype stage read Spark's own staging tables (no second transfer through DuckDB; the published tables'
    # fingerprints above show they held the same rows) and exported only what the DuckDB ingest step adds.
    [handed] = [m for m in spark_log if m.startswith("stage inputs on Spark: ")]
    assert handed.startswith(f"stage inputs on Spark: {len(spec.TABLES)} from the run's Spark ingest (staging.")
    assert handed.endswith(", 1 exported from DuckDB (vocabulary.concept_code_map)")


def _attached(study_runs) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for engine in study_runs:
        con.execute(f"ATTACH {quote_literal(study_runs[engine].database)} AS {engine}_run (READ_ONLY)")
    return con


def test_the_spark_runs_ingest_is_the_duckdb_runs(study_runs):
    """Staging tables by fingerprint; ingest.rejects (file, line, column, reason, detail, record),
    ingest.load_counts and ingest.manifest row for row (both are DuckDB files: EXCEPT ALL both ways is exact)."""
    with duckdb.connect(str(study_runs["duckdb"].database), read_only=True) as duck_con, \
            duckdb.connect(str(study_runs["spark"].database), read_only=True) as spark_con:
        duck, spark = as_engine(duck_con), as_engine(spark_con)
        for table in spec.TABLES:
            name = f"staging.{table.name}"
            assert table_columns(spark, name) == table_columns(duck, name), name
            assert table_fingerprint(spark, name).differences(table_fingerprint(duck, name)) == [], name
    with _attached(study_runs) as con:
        for table in (tables.INGEST_REJECTS, tables.INGEST_LOAD_COUNTS, tables.INGEST_MANIFEST):
            [(differing, rows)] = con.execute(
                f"SELECT (SELECT count(*) FROM (FROM spark_run.{table} EXCEPT ALL FROM duckdb_run.{table})) "
                f"+ (SELECT count(*) FROM (FROM duckdb_run.{table} EXCEPT ALL FROM spark_run.{table})), "
                f"(SELECT count(*) FROM duckdb_run.{table})").fetchall()
            assert differing == 0, f"{table}: {differing} rows differ between the runs"
            assert rows > 0, table
        # The comparison covers what it claims: the generator's planted defects are rejected for several reasons.
        [(reasons, malformed)] = con.execute(
            f"SELECT count(DISTINCT reason), count(*) FILTER (reason = 'malformed_line') "
            f"FROM duckdb_run.{tables.INGEST_REJECTS}").fetchall()
        assert reasons >= 4 and malformed > 0


def test_the_reject_share_checks_gave_the_same_verdicts(study_runs):
    def verdicts(result) -> dict:
        return {(tuple(e.asset_key.path), e.check_name): (e.passed, e.metadata["rejected"].value,
                                                         e.metadata["input_records"].value)
                for e in result.get_asset_check_evaluations() if e.check_name in (TABLE_CHECK, CASCADE_CHECK)}

    on_duckdb = verdicts(study_runs["duckdb"].result)
    assert len(on_duckdb) == len(spec.TABLES) + 1  # one per table, and the unknown_person cascade
    assert verdicts(study_runs["spark"].result) == on_duckdb


def test_the_engine_switchable_assets_name_both_engines_as_kinds():
    from pipelines.definitions import load_definitions

    graph = load_definitions().resolve_asset_graph()
    kinds = {key: graph.get(key).kinds for key in graph.get_all_asset_keys()}
    phenotype = next(key for key in kinds if key.path[0] == "phenotype")
    cohort = next(key for key in kinds if key.path[0] == "cohort")
    assert ENGINE_KINDS <= kinds[phenotype] and ENGINE_KINDS <= kinds[cohort]
    assert ENGINE_KINDS <= kinds[next(key for key in kinds if key.path == ["staging", "person"])]


def test_the_spark_run_leaves_no_exchange_folder(study_runs):
    _, database, _ = study_runs["spark"]
    assert not list((database.parent / ".runs").glob(f"*{SPARK_EXCHANGE_SUFFIX}"))
