"""The phenotype stage of a run whose warehouse sets engine = spark: the staging tables are handed to Spark (those
the run's Spark ingest wrote are read where they are; the rest, and all of them after a DuckDB ingest, go from the
run's DuckDB database as Parquet: pipelines/engine/transfer.py hand_stage_inputs), the phenotypes computed there
from the same SQL files (`run_phenotypes(spark)`, pipelines/engine/), and Spark's phenotype tables copied back into
the run's DuckDB database, which the data-quality suites check and the run publishes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.engine import as_engine
from pipelines.engine.duckdb_engine import DuckDBEngine
from pipelines.engine.transfer import copy_tables_to_duckdb, hand_stage_inputs
from pipelines.phenotypes.compiler import PhenotypeCounts, run_phenotypes
from pipelines.phenotypes.loader import PhenotypeLibrary

# The schema the phenotype stage writes (sql/phenotypes/create_tables.sql): definitions, code lists, rules, events
# and person summaries.
PHENOTYPE_SCHEMA = "phenotype"


def copy_phenotype_stage_to_duckdb(spark: Any, con: Any, folder: Path) -> dict[str, int]:
    """Replace DuckDB's phenotype tables with Spark's (every table of the phenotype schema), in DuckDB's own table
    definitions (sql/phenotypes/create_tables.sql); returns the rows per table. `folder`: where Spark writes the
    Parquet files DuckDB reads."""
    DuckDBEngine(con).execute_file("phenotypes/create_tables.sql")
    names = sorted(name for name in as_engine(spark).table_names() if name.split(".", 1)[0] == PHENOTYPE_SCHEMA)
    return copy_tables_to_duckdb(spark, con, names, folder)


def run_phenotypes_on_spark(warehouse: Any, run_id: str, con: Any, library: PhenotypeLibrary | None = None,
                            log: Callable[[str], None] = lambda message: None) -> dict[str, PhenotypeCounts]:
    """The phenotype stage on the warehouse's Spark session, from the staging tables of the run (Spark's own when
    the run ingested on Spark, else DuckDB `con`'s, the run's build database), its outputs copied back into `con`.
    The hand-over lives in the run's exchange folder (Warehouse.spark_exchange_dir); the cohort stage of the same
    run reads the staging tables from the session's catalogue."""
    spark = warehouse.spark_session()
    folder = warehouse.spark_exchange_dir(run_id)
    handed = hand_stage_inputs(spark, con, folder / "stage_inputs", owner=str(warehouse.spark_ingest_dir(run_id)))
    log(f"stage inputs on Spark: {len(handed.reused)} from the run's Spark ingest"
        f"{' (' + ', '.join(handed.reused) + ')' if handed.reused else ''}, {len(handed.exported)} exported from "
        f"DuckDB{' (' + ', '.join(handed.exported) + ')' if handed.exported else ''}")
    counts = run_phenotypes(spark, library)
    copy_phenotype_stage_to_duckdb(spark, con, folder / "phenotype")
    return counts
