"""Publishing: the last asset of a run publishes the run's database and outputs as one version.

The run's build folder (`.runs/<run id>/`: the database, and `outputs/` with plots, reports and Data Docs) is moved
into `<stem>.versions/<run id>/`, then the link `<stem>.current` is swapped to it with one atomic rename. The paths
analysts use, `<name>.duckdb` and `<stem>_outputs`, are fixed links through `<stem>.current`, so a reader sees either
the previous version or the new one, database and outputs together, even if the process is killed between any two
steps (tests/operations/test_faults_publishing.py).
An analyst who opened the previous database keeps reading it (an open file
outlives its name); a new connection sees the new version. A run that fails or is killed never swaps the link, so
the published version stays as it was. Layout: pipelines/warehouse.py.
"""

import os
import signal
from pathlib import Path
from typing import Sequence

import dagster as dg

from pipelines.asset_keys import PUBLISHED_KEY
from pipelines.data_dictionary import comment_database_file
from pipelines.quality.runner import render_data_docs
from pipelines.warehouse import Warehouse, remove_path, database_has_writer, remove_unused_versions

# Fault injection for tests: the publishing process kills itself (SIGKILL) at the named step.
KILL_AT_ENV = "LEGCRAMP_KILL_AT"
PUBLISH_STEPS = ("build_checkpointed", "version_moved", "current_swapped", "links_made")


class PublishRefused(RuntimeError):
    """Publishing would leave a database nobody can open; the message says what to do."""


def build_publish_asset(upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=PUBLISHED_KEY,
        deps=list(upstream),
        group_name="publish",
        kinds={"duckdb"},
        description="The published DuckDB database analysts query, with its plots, reports and Data Docs, "
                    "replaced together atomically at the end of each run.",
    )
    def published_database(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        comment_database_file(warehouse.build_path(context.run_id))  # refuses undescribed tables/columns
        # The check steps stored their validation results; their Data Docs are rendered once, here.
        render_data_docs(warehouse.build_data_docs_dir(context.run_id))
        schemas = publish_build(warehouse, context.run_id, log=context.log.warning)
        target = warehouse.published_path
        version = warehouse.current_version()
        context.log.info(f"published {target} (version {version}) with outputs {warehouse.published_outputs_dir}")
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(target)),
                "version": dg.MetadataValue.path(str(version)),
                "size_mb": round(target.stat().st_size / 1e6, 1),
                "tables_per_schema": dg.MetadataValue.json(schemas),
                "outputs": dg.MetadataValue.path(str(warehouse.published_outputs_dir)),
                "data_docs": dg.MetadataValue.path(str(warehouse.published_data_docs_index)),
            }
        )

    return published_database


def _step_done(step: str) -> None:
    if os.environ.get(KILL_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def publish_build(warehouse: Warehouse, run_id: str, log=None) -> dict[str, int]:
    """Publish the run's database and outputs as one version; tables per schema published."""
    with warehouse.connect(run_id) as con:
        con.execute("CHECKPOINT")
        schemas = con.execute(
            "SELECT schema_name, count(*) FROM duckdb_tables() GROUP BY 1 ORDER BY 1"
        ).fetchall()
    # Closed after a checkpoint: DuckDB has removed the build's WAL, so the version is one self-contained file.
    _step_done("build_checkpointed")
    remove_foreign_wal(warehouse, log)
    warehouse.build_outputs_dir(run_id).mkdir(parents=True, exist_ok=True)
    version = warehouse.version_dir(run_id)
    version.parent.mkdir(parents=True, exist_ok=True)
    os.rename(warehouse.build_dir(run_id), version)
    _step_done("version_moved")
    _swap_link(warehouse.current_link, os.path.relpath(version, warehouse.current_link.parent))
    _step_done("current_swapped")
    make_published_links(warehouse)
    _step_done("links_made")
    remove_unused_versions(warehouse)
    return dict(schemas)


def remove_foreign_wal(warehouse: Warehouse, log=None) -> None:
    """A `.wal` beside the published path belongs to no version: DuckDB keeps a version's WAL beside the version's
    own file (it resolves the link). One there is left by a read-write session on a published file of an older
    layout (a plain file); replayed against a new file it makes the database unopenable. Removed when its session
    is gone (its changes were to the version being replaced); refused while that session is alive."""
    wal = Path(f"{warehouse.published_path}.wal")
    if not wal.exists():
        return
    if database_has_writer(warehouse.published_path):
        raise PublishRefused(f"{warehouse.published_path} is open read-write in another process (its WAL {wal}); "
                             "close that session (analysts open the published database read-only), then rerun")
    wal.unlink()
    if log is not None:
        log(f"removed {wal}: the write-ahead log of a read-write session that ended without closing")


def _swap_link(link: Path, target: str) -> None:
    """Point `link` at `target` with one atomic rename (a new link replacing the old one)."""
    staged = link.with_name(f"{link.name}.{os.getpid()}.new")
    staged.unlink(missing_ok=True)
    os.symlink(target, staged)
    os.replace(staged, link)


def make_published_links(warehouse: Warehouse) -> None:
    """The fixed links analysts use: `<name>.duckdb` and `<stem>_outputs` through `<stem>.current`. Made once; a
    plain file or folder there (the layout before versions) is replaced."""
    current = warehouse.current_link.name
    for path, target in ((warehouse.published_path, f"{current}/{warehouse.published_path.name}"),
                         (warehouse.published_outputs_dir, f"{current}/outputs")):
        if path.is_symlink() and os.readlink(path) == target:
            continue
        if path.is_dir() and not path.is_symlink():
            retired = path.with_name(path.name + ".retired")
            remove_path(retired)
            path.rename(retired)
            _swap_link(path, target)
            remove_path(retired)
        else:
            _swap_link(path, target)  # a file is replaced atomically
