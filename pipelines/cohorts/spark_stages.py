"""The phenotype and cohort stages on a SparkSession, from staging tables another engine loaded, and their outputs
handed back to DuckDB for the statistics checks, the data-quality suites and publishing.

    export_stage_inputs(con, folder)        DuckDB: every staging.* and vocabulary.* table as <schema>.<table>.parquet
    register_stage_inputs(spark, folder)    Spark: those files as tables of the same names (external Parquet tables)
                                            (both in pipelines/engine/transfer.py, which the phenotype stage uses too)
    run_phenotype_and_cohort_stages(spark)  the phenotype stage, then every study's cohort stage, through the Spark
                                            engine of pipelines/engine/: tables phenotype.*, cohort.*,
                                            results.attrition and results.table1 with DuckDB's names and columns
    copy_cohort_stage_to_duckdb(spark, con, folder)
                                            the cohort stage's tables from Spark into DuckDB, in DuckDB's own table
                                            definitions (sql/cohorts/create_tables.sql)
    build_study_on_spark(warehouse, run_id, con, study)
                                            a run's cohort stage when its warehouse sets engine = spark

The SQL is the same files DuckDB runs (sql/phenotypes, sql/cohorts), translated by the project dialect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.cohorts.build import STUDY_ROWS, StudyBuild, build_all_studies, build_study, create_output_tables
from pipelines.cohorts.study import StudyDefinition
from pipelines.engine import as_engine
from pipelines.engine.transfer import (STAGE_INPUT_SCHEMAS, copy_tables_to_duckdb, export_stage_inputs,
                                       register_stage_inputs)
from pipelines.phenotypes.compiler import PhenotypeCounts, run_phenotypes
from pipelines.phenotypes.loader import PhenotypeLibrary
from pipelines.phenotypes.spark_stage import copy_phenotype_stage_to_duckdb

__all__ = ["COHORT_STAGE_TABLES", "STAGE_INPUT_SCHEMAS", "build_study_on_spark", "copy_cohort_stage_to_duckdb",
           "copy_phenotype_stage_to_duckdb", "export_stage_inputs", "register_stage_inputs",
           "run_phenotype_and_cohort_stages"]

# Every table the cohort stage writes (pipelines/cohorts/build.py build_study).
COHORT_STAGE_TABLES = tuple(STUDY_ROWS)


def copy_cohort_stage_to_duckdb(spark: Any, con: Any, folder: Path) -> dict[str, int]:
    """Replace DuckDB's cohort-stage tables (COHORT_STAGE_TABLES, every study's rows) with Spark's; returns the rows
    per table. `folder`: where Spark writes the Parquet files DuckDB reads."""
    create_output_tables(con)
    return copy_tables_to_duckdb(spark, con, COHORT_STAGE_TABLES, folder)


def build_study_on_spark(warehouse: Any, run_id: str, con: Any, study: StudyDefinition) -> StudyBuild:
    """A study's cohort stage on the warehouse's Spark session (after the phenotype stage of the same run, which
    handed it the staging tables: pipelines/phenotypes/spark_stage.py), the study's rows of the cohort tables copied
    back into DuckDB `con`, the run's build database (the other studies' rows are theirs to copy: a run builds its
    studies one after another on the same tables)."""
    spark = warehouse.spark_session()
    build = build_study(spark, study)
    create_output_tables(con)
    copy_tables_to_duckdb(spark, con, STUDY_ROWS, warehouse.spark_exchange_dir(run_id) / "cohort" / study.id,
                          {"study_id": study.id})
    return build


def run_phenotype_and_cohort_stages(
    spark: Any,
    stage_inputs: Path | None = None,
    studies: dict[str, StudyDefinition] | None = None,
    library: PhenotypeLibrary | None = None,
) -> tuple[dict[str, PhenotypeCounts], dict[str, StudyBuild]]:
    """Run the phenotype stage and every study's cohort stage (default: all studies/*.yaml) on `spark`, reading
    the staging tables from the session's catalog, or first from the Parquet files in `stage_inputs`."""
    if stage_inputs is not None:
        register_stage_inputs(spark, stage_inputs)
    engine = as_engine(spark)
    counts = run_phenotypes(engine, library)
    builds = build_all_studies(engine, studies)
    return counts, builds
