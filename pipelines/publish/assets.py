"""Publishing: the last asset of a run moves the run's build file over the published database.

os.replace is an atomic rename on one filesystem: an analyst who opened the previous file keeps reading it (the old
inode lives until the last handle closes), and a new connection sees the new version. A run that fails or is
killed never reaches this step, so the published file stays as it was.
"""


import os
import shutil
from pathlib import Path
from typing import Sequence

import dagster as dg

from pipelines.data_dictionary import comment_database_file
from pipelines.warehouse import Warehouse

PUBLISHED_KEY = dg.AssetKey(["published_database"])


def build_publish_asset(upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=PUBLISHED_KEY,
        deps=list(upstream),
        group_name="publish",
        kinds={"duckdb"},
        description="The published DuckDB database analysts query, replaced atomically at the end of each run.",
    )
    def published_database(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        comment_database_file(warehouse.build_path(context.run_id))  # refuses undescribed tables/columns
        schemas = publish_build(warehouse, context.run_id)
        target = warehouse.published_path
        context.log.info(f"published {target}")
        outputs = publish_outputs(warehouse.build_outputs_dir(context.run_id),
                                  warehouse.build_path(context.run_id).parent / "data_docs",
                                  warehouse.published_outputs_dir)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(target)),
                "size_mb": round(target.stat().st_size / 1e6, 1),
                "tables_per_schema": dg.MetadataValue.json(schemas),
                "outputs": dg.MetadataValue.path(str(outputs)),
            }
        )

    return published_database


def publish_build(warehouse: Warehouse, run_id: str) -> dict[str, int]:
    """Move the run's build file over the published database (one atomic rename); tables per schema published."""
    build = warehouse.build_path(run_id)
    target = warehouse.published_path
    with warehouse.connect(run_id) as con:
        con.execute("CHECKPOINT")
        schemas = con.execute(
            "SELECT schema_name, count(*) FROM duckdb_tables() GROUP BY 1 ORDER BY 1"
        ).fetchall()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(build, target)
    return dict(schemas)


def publish_outputs(run_outputs: Path, run_data_docs: Path, published_outputs: Path) -> Path:
    """Put the run's plots, reports and Data Docs beside the published database, replacing the previous ones."""
    staged = published_outputs.with_name(published_outputs.name + ".new")
    shutil.rmtree(staged, ignore_errors=True)
    if run_outputs.exists():
        shutil.move(str(run_outputs), staged)
    staged.mkdir(parents=True, exist_ok=True)
    if run_data_docs.exists():
        shutil.move(str(run_data_docs), staged / "data_docs")
    old = published_outputs.with_name(published_outputs.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if published_outputs.exists():
        published_outputs.rename(old)
    staged.rename(published_outputs)
    shutil.rmtree(old, ignore_errors=True)
    return published_outputs
