"""The DuckDB warehouse: where a run builds its database and outputs, and where the published version lives.

Layout beside the published path `<dir>/<name>.duckdb` (e.g. build/leg_cramps.duckdb):

    .runs/<run id>/<name>.duckdb       the run's build database (every asset opens it via `Warehouse.connect`)
    .runs/<run id>/outputs/            the run's plots, reports and Data Docs
    .runs/<run id>.lock                held (flock) by the run's process while the run is alive
    <stem>.versions/<run id>/          a published version: the build folder, moved here whole
    <stem>.current -> <stem>.versions/<run id>        the one link whose swap publishes a version
    <name>.duckdb  -> <stem>.current/<name>.duckdb    what analysts open
    <stem>_outputs -> <stem>.current/outputs          plots, reports, Data Docs of that same version

A run never writes a published version; publishing (pipelines/publish/) moves the build folder into `<stem>.versions/`
and swaps `<stem>.current` with one atomic rename, so database and outputs change together. A new run first removes
what runs that are no longer alive left behind (`clean_dead_runs`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import dagster as dg
import duckdb

from pipelines import paths
from pipelines.engine.session import DUCKDB, ENGINES, SPARK, local_spark_session, spark_requirement_missing
from pipelines.run_failures import fail_run_setup

# DuckDB allows one writing process per file: every job that writes the warehouse carries this tag, and
# dagster.yaml limits runs with it to one at a time.
WRITER_TAG = {"legcramp/duckdb-writer": "true"}
# The connections `Warehouse.connect` has open in this process, for `interrupt_open_connections`.
_open_connections: set[duckdb.DuckDBPyConnection] = set()
_open_connections_lock = threading.Lock()


def interrupt_open_connections() -> None:
    """Interrupt the query each open `Warehouse.connect` connection of this process is running (DuckDB's
    `interrupt`, safe from another thread): the stop-signal watcher's way to end the query a run's step is in
    (pipelines/operations/stop_signals.py). Dagster's own interrupt does not reach a running DuckDB query."""
    with _open_connections_lock:
        connections = list(_open_connections)
    for con in connections:
        con.interrupt()


# DuckDB settings of every connection that writes a run's build file (the stages', the data-quality checks', the
# publish step's). max_vacuum_tasks = 0: no checkpoint vacuums, i.e. merges part-filled row groups by rewriting them.
# Two threads writing one table (CREATE TABLE AS, INSERT ... SELECT) leave such groups, and a rewrite costs nearly
# what writing the table did; the vacuum runs at whichever checkpoint first finds them with it on, so keeping it off
# in the ingest alone (pipelines/ingest/loader.py, session 13) only moved the rewrite of staging to the next writer.
# At 200,000 patients (issue #21, session 14; DuckDB 2.0.1, 2 threads, CPU s measured twice): phenotypes + cohorts
# 71.4, 72.1 and 71.5 with the vacuum on, 57.2, 56.5 and 54.9 off, with identical tables; the unmerged staging
# groups (drug_exposure 206 instead of 143) cost their scans about 0.5 CPU s. A publish step opening the file with
# the vacuum on paid it there instead (its comments: 1.0 -> 10.2 CPU s). Table and method: docs/performance.md,
# session 14.
BUILD_FILE_WRITER_SETTINGS = {"max_vacuum_tasks": "0"}
# Warehouse settings DuckDB itself must accept (checked by opening an in-memory database with them).
DUCKDB_SETTINGS = ("memory_limit", "threads")
# The warehouse settings a run may set (resources.<key>.config).
WAREHOUSE_SETTINGS = ("database_path", "memory_limit", "threads", "temp_directory", "engine")

# Runs the instance may still show as running although their process is gone.
RUNNING_STATUSES = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
OUTPUTS_FOLDER = "outputs"
LOCK_SUFFIX = ".lock"
# `<run id>.spark/` beside the build folder: the Parquet files a run hands between DuckDB and Spark (never
# published; removed when the run ends, succeeded or failed, or, after a killed run, with its other leftovers by
# the next run, clean_dead_runs).
SPARK_EXCHANGE_SUFFIX = ".spark"
# The Dagster kinds of the assets whose stage runs on the run's engine (phenotypes, cohorts, statistics). An asset's
# kinds are fixed when the code location loads, before a run chooses its engine, so they name both engines; each
# materialisation says which one ran it (metadata "engine": Warehouse.engine_metadata).
ENGINE_KINDS = frozenset(ENGINES)
# File descriptors of the liveness locks this process holds, by lock file (released when the run ends or the
# process dies).
_run_locks: dict[Path, int] = {}


def _unwritable_folder(path: Path, field: str) -> str | None:
    """Why `path` (a file or folder the run will create) cannot be created, or None if it can."""
    existing = path.resolve().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{field}: {existing} is a file, so {path} cannot be created"
    if not os.access(existing, os.W_OK):
        return f"{field}: folder {existing} is not writable"
    return None


def _duckdb_setting_problems(config: Mapping[str, Any], prefix: str) -> list[str]:
    problems = []
    for name in DUCKDB_SETTINGS:
        value = config.get(name)
        if value is None:
            continue
        try:
            duckdb.connect(":memory:", config={name: str(value)}).close()
        except duckdb.Error as error:
            reason = str(error).strip().splitlines()[0]
            problems.append(f"{prefix}.{name}: DuckDB does not accept {value!r} ({reason})")
    return problems


def warehouse_config_problems(warehouse: Mapping[str, Any], prefix: str,
                              extract_folder: str | None = None) -> list[str]:
    """Everything wrong with a warehouse's settings (`prefix`: where they sit in the run config); the database
    must not lie inside `extract_folder` (extracts are read-only inputs)."""
    problems: list[str] = []
    database = warehouse.get("database_path")
    if database is not None:
        path = Path(database)
        if not str(database).strip():
            problems.append(f"{prefix}.database_path is empty; give the published .duckdb file")
        elif path.is_dir():
            problems.append(f"{prefix}.database_path: {path} is a folder; "
                            "give a file path such as build/leg_cramps.duckdb")
        else:
            # The run creates missing folders; the nearest existing one must be writable.
            problem = _unwritable_folder(path, f"{prefix}.database_path")
            if problem:
                problems.append(problem)
        if extract_folder is not None and str(extract_folder).strip() and str(database).strip() and \
                Path(extract_folder).resolve() in path.resolve().parents:
            problems.append(f"{prefix}.database_path must not be inside the extract folder "
                            f"({extract_folder}): extracts are read-only inputs")
    temp_directory = warehouse.get("temp_directory")
    if temp_directory is not None:
        if Path(temp_directory).is_file():
            problems.append(f"{prefix}.temp_directory: {temp_directory} is a file, not a folder")
        else:
            problem = _unwritable_folder(Path(temp_directory) / "spill", f"{prefix}.temp_directory")
            if problem:
                problems.append(problem)
    problems += _duckdb_setting_problems(warehouse, prefix)
    engine = warehouse.get("engine")
    if engine is not None and engine not in ENGINES:
        problems.append(f"{prefix}.engine: {engine!r} is not an engine; one of {', '.join(ENGINES)}")
    elif engine == SPARK:
        missing = spark_requirement_missing()
        if missing:
            problems.append(f"{prefix}.engine: spark cannot start here: {missing}")
    return problems


class Warehouse(dg.ConfigurableResource):
    """DuckDB settings and file locations for one published database."""

    # The resource key the code location binds this class to (named in configuration errors).
    resource_key: ClassVar[str] = "warehouse"

    database_path: str = str(paths.DEFAULT_DATABASE)
    memory_limit: str | None = None  # e.g. "6GB"; DuckDB's default is 80% of RAM
    threads: int | None = None  # DuckDB's default is the number of cores
    temp_directory: str | None = None  # where DuckDB spills when memory_limit is reached
    # The engine of the ingest (canonical CSV extracts; other layouts and Parquet files fall back to DuckDB, saying
    # so) and of the phenotype, cohort and statistics stages (docs/scaling.md): "duckdb", or "spark" (a local
    # session, or the Spark Connect server of SPARK_REMOTE), whose tables are copied into this run's database, which
    # stays what is published. Publishing runs on DuckDB either way.
    engine: str = DUCKDB

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Fail the run while its resources are set up, before any step, when its configuration cannot work
        (`run_problems`: an unwritable database folder, a setting DuckDB refuses; the study job's warehouse checks
        the whole run configuration). Then hold the run's liveness lock and remove what runs that are no longer
        alive left."""
        run = context.dagster_run
        if run is None:  # built outside a run (build_resources, tests of the resource itself)
            return
        problems = self.run_problems(run.run_config or {}, run.tags)
        if problems:
            fail_run_setup(context, problems)
        self.hold_run_lock(run.run_id)
        removed = clean_dead_runs(self, context.instance, run.run_id)
        if removed and context.log is not None:
            context.log.info("removed what runs no longer alive left: " + ", ".join(map(str, removed)))

    def settings(self) -> dict[str, Any]:
        """The settings this warehouse really uses (defaults included)."""
        return {name: getattr(self, name) for name in WAREHOUSE_SETTINGS}

    def run_problems(self, run_config: Mapping[str, Any], tags: Mapping[str, str]) -> list[str]:
        """Everything wrong with the run's configuration that this resource can judge: its own settings."""
        config = {name: value for name, value in self.settings().items() if value is not None}
        return warehouse_config_problems(config, f"resources.{self.resource_key}.config")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """When the run ends, succeeded or failed: remove its Spark exchange folder (the stages have copied what
        they need into the build database) and release its liveness lock."""
        if context.dagster_run is not None:
            remove_path(self.spark_exchange_dir(context.dagster_run.run_id))
            self.release_run_lock(context.dagster_run.run_id)

    # --- where things are ------------------------------------------------------------------------------------
    @property
    def published_path(self) -> Path:
        """The path analysts open. Absolute but not resolved: it is a link to the current version's file."""
        return Path(os.path.abspath(self.database_path))

    @property
    def runs_dir(self) -> Path:
        return self.published_path.parent / ".runs"

    def build_dir(self, run_id: str) -> Path:
        """Everything a run writes: its database and outputs, published together as one version."""
        return self.runs_dir / run_id

    def build_path(self, run_id: str) -> Path:
        return self.build_dir(run_id) / self.published_path.name

    def build_outputs_dir(self, run_id: str) -> Path:
        """Files a run writes beside its database (plots, reports, Data Docs), published together with it."""
        return self.build_dir(run_id) / OUTPUTS_FOLDER

    def build_data_docs_dir(self, run_id: str) -> Path:
        return self.build_outputs_dir(run_id) / "data_docs"

    def diagnostics_dir(self, run_id: str) -> Path:
        """Row-level examples of failing checks (docs/disclosure.md): outside the build folder, so never published
        with it, and kept when the cleanup of dead runs removes their build folders."""
        return self.published_path.parent / f"{self.published_path.stem}.diagnostics" / run_id

    def spark_exchange_dir(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}{SPARK_EXCHANGE_SUFFIX}"

    def spark_ingest_dir(self, run_id: str) -> Path:
        """Where the run's Spark ingest writes the tables DuckDB copies; its path also marks the Spark tables the
        ingest wrote as this run's (pipelines/engine/transfer.py mark_loaded_for)."""
        return self.spark_exchange_dir(run_id) / "ingest"

    @property
    def on_spark(self) -> bool:
        return self.engine == SPARK

    def engine_metadata(self) -> dict[str, str]:
        """What a materialisation of a stage that runs on the run's engine records about it (ENGINE_KINDS)."""
        return {"engine": self.engine}

    def spark_session(self) -> Any:
        """The process's Spark session for the stages (pipelines/engine/session.py)."""
        return local_spark_session()

    def run_lock_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}{LOCK_SUFFIX}"

    @property
    def versions_dir(self) -> Path:
        return self.published_path.parent / f"{self.published_path.stem}.versions"

    def version_dir(self, run_id: str) -> Path:
        return self.versions_dir / run_id

    @property
    def current_link(self) -> Path:
        """The link naming the published version; swapping it publishes database and outputs at once."""
        return self.published_path.parent / f"{self.published_path.stem}.current"

    @property
    def published_outputs_dir(self) -> Path:
        """Plots, study reports and Data Docs of the published database: `<database stem>_outputs/`."""
        return self.published_path.parent / f"{self.published_path.stem}_outputs"

    @property
    def published_data_docs_index(self) -> Path:
        return self.published_outputs_dir / "data_docs" / "index.html"

    def current_version(self) -> Path | None:
        """The published version folder, or None before the first publish."""
        if not self.current_link.is_symlink():
            return None
        return self.published_path.parent / os.readlink(self.current_link)

    # --- liveness of runs ------------------------------------------------------------------------------------
    def hold_run_lock(self, run_id: str) -> None:
        """Hold this run's liveness lock until the run ends; the kernel drops it when the process dies."""
        path = self.run_lock_path(run_id)
        if path in _run_locks:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _run_locks[path] = fd

    def release_run_lock(self, run_id: str) -> None:
        path = self.run_lock_path(run_id)
        fd = _run_locks.pop(path, None)
        if fd is None:
            return
        path.unlink(missing_ok=True)
        os.close(fd)

    @contextmanager
    def connect(self, run_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection to this run's build file (created on first use)."""
        path = self.build_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), config=self.connection_settings())
        with _open_connections_lock:
            _open_connections.add(con)
        try:
            yield con
        finally:
            with _open_connections_lock:
                _open_connections.discard(con)
            con.close()

    @contextmanager
    def read_published(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the published database, as an analyst would open it."""
        con = duckdb.connect(str(self.published_path), read_only=True)
        try:
            yield con
        finally:
            con.close()

    def connection_settings(self) -> dict[str, str]:
        """DuckDB settings of every connection that writes a run's build file: the stages', the data-quality
        checks' (quality/checks.duckdb_settings)."""
        settings: dict[str, str] = {"preserve_insertion_order": "true", **BUILD_FILE_WRITER_SETTINGS}
        if self.memory_limit:
            settings["memory_limit"] = self.memory_limit
        if self.threads:
            settings["threads"] = str(self.threads)
        if self.temp_directory:
            os.makedirs(self.temp_directory, exist_ok=True)
            settings["temp_directory"] = self.temp_directory
        return settings


def run_is_alive(lock_path: Path) -> bool:
    """A run is alive while some process holds its lock file (flock; released by the kernel when it dies)."""
    if not lock_path.exists():
        return False
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False


def database_has_writer(database: Path) -> bool:
    """A process holds `database` open read-write (DuckDB takes a POSIX write lock on the file; readers take a
    read lock, which does not conflict with the shared lock tried here)."""
    try:
        fd = os.open(database, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _run_id_of(entry: Path) -> str:
    """The run id an entry of .runs/ belongs to (`<id>`, `<id>.lock`; older layouts: `<id>.duckdb[.wal]`,
    `<id>_outputs`)."""
    name = entry.name
    return name.split(".", 1)[0].removesuffix("_outputs")


def clean_dead_runs(warehouse: Warehouse, instance: dg.DagsterInstance | None, current_run_id: str) -> list[Path]:
    """Remove what runs that are no longer alive left in `.runs/` (build database, WAL, outputs, lock) and
    published versions that are no longer current; mark runs the instance still shows as running, but whose
    process is gone, failed. Returns the removed paths."""
    removed: list[Path] = []
    runs_dir = warehouse.runs_dir
    entries = sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []
    by_run: dict[str, list[Path]] = {}
    for entry in entries:
        by_run.setdefault(_run_id_of(entry), []).append(entry)
    for run_id, leftovers in by_run.items():
        if run_id == current_run_id or run_is_alive(runs_dir / f"{run_id}{LOCK_SUFFIX}"):
            continue
        run = instance.get_run_by_id(run_id) if instance is not None else None
        if run is not None and run.status in RUNNING_STATUSES:
            instance.report_run_failed(run, f"the process of run {run_id} is gone (killed or crashed); "
                                            "marked failed by the next run, which removed its build files")
        for entry in leftovers:
            remove_path(entry)
            removed.append(entry)
    removed += remove_unused_versions(warehouse)
    return removed


def remove_unused_versions(warehouse: Warehouse) -> list[Path]:
    """Remove published versions other than the current one. Analysts reading an older version keep reading it
    (an open file outlives its name); a version some process holds read-write is kept until it closes."""
    current = warehouse.current_version()
    versions = warehouse.versions_dir
    removed = []
    for version in sorted(versions.iterdir()) if versions.is_dir() else []:
        if current is not None and version.name == current.name:
            continue
        if database_has_writer(version / warehouse.published_path.name):
            continue
        remove_path(version)
        removed.append(version)
    return removed


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
