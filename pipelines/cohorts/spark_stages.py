"""The phenotype and cohort stages on a SparkSession, from staging tables another engine loaded.

    export_stage_inputs(con, folder)        DuckDB: every staging.* and vocabulary.* table as <schema>.<table>.parquet
    register_stage_inputs(spark, folder)    Spark: those files as tables of the same names (external Parquet tables)
    run_phenotype_and_cohort_stages(spark)  the phenotype stage, then every study's cohort stage, through the Spark
                                            engine of pipelines/engine/: tables phenotype.*, cohort.*,
                                            results.attrition and results.table1 with DuckDB's names and columns

The SQL is the same files DuckDB runs (sql/phenotypes, sql/cohorts), translated by the project dialect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.cohorts.build import StudyBuild, build_all_studies
from pipelines.cohorts.study import StudyDefinition
from pipelines.engine import as_engine
from pipelines.phenotypes.compiler import PhenotypeCounts, run_phenotypes
from pipelines.phenotypes.loader import PhenotypeLibrary
from pipelines.sql_quoting import qualified_name, quote_literal

# The schemas the phenotype and cohort stages read and the ingest writes.
STAGE_INPUT_SCHEMAS = ("staging", "vocabulary")


def export_stage_inputs(con: Any, folder: Path) -> list[Path]:
    """Write every table of the stage-input schemas of a DuckDB connection as Parquet; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE list_contains($schemas, schema_name) "
            "ORDER BY ALL", {"schemas": list(STAGE_INPUT_SCHEMAS)}).fetchall():
        path = folder / f"{schema}.{table}.parquet"
        con.execute(f"COPY {qualified_name(schema, table)} TO {quote_literal(path)} (FORMAT parquet)")
        files.append(path)
    return files


def register_stage_inputs(spark: Any, folder: Path) -> list[str]:
    """Make every <schema>.<table>.parquet of `folder` a Spark table <schema>.<table>; returns the table names."""
    names = []
    for path in sorted(folder.glob("*.parquet")):
        schema, table = path.stem.split(".", 1)
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{schema}`")
        spark.sql(f"DROP TABLE IF EXISTS `{schema}`.`{table}`")
        spark.catalog.createTable(f"{schema}.{table}", path=str(path.resolve()), source="parquet")
        names.append(f"{schema}.{table}")
    return names


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
