"""The DuckDB warehouse: where a run builds its database and where the published copy lives.

A run never writes the published file. It builds `<published dir>/.runs/<run id>.duckdb` and the publish step moves
that file over the published path with one atomic rename (see pipelines/publish/). Every asset of a run opens the
same build file through `Warehouse.connect(run_id)`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Iterator

import dagster as dg
import duckdb

from pipelines import paths
from pipelines.operations.run_config import RunConfigError, run_problems


class Warehouse(dg.ConfigurableResource):
    """DuckDB settings and file locations for one published database."""

    # The resource key the code location binds this class to (named in configuration errors).
    resource_key: ClassVar[str] = "warehouse"

    database_path: str = str(paths.DEFAULT_DATABASE)
    memory_limit: str | None = None  # e.g. "6GB"; DuckDB's default is 80% of RAM
    threads: int | None = None  # DuckDB's default is the number of cores
    temp_directory: str | None = None  # where DuckDB spills when memory_limit is reached

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Fail the run while its resources are set up, before any step, when its configuration cannot work
        (missing extract folder, unwritable database folder, a setting DuckDB refuses, an unknown study tag)."""
        run = context.dagster_run
        if run is None:  # built outside a run (build_resources, tests of the resource itself)
            return
        problems = run_problems(run.run_config or {}, run.tags, self.resource_key,
                                {name: getattr(self, name) for name in
                                 ("database_path", "memory_limit", "threads", "temp_directory")})
        if problems:
            raise RunConfigError(f"invalid run configuration of run {run.run_id}:\n  - " + "\n  - ".join(problems))

    @property
    def published_path(self) -> Path:
        return Path(self.database_path).resolve()

    def build_path(self, run_id: str) -> Path:
        return self.published_path.parent / ".runs" / f"{run_id}.duckdb"

    def build_outputs_dir(self, run_id: str) -> Path:
        """Files a run writes beside its database (plots, reports), published together with it."""
        return self.published_path.parent / ".runs" / f"{run_id}_outputs"

    @property
    def published_outputs_dir(self) -> Path:
        """Plots, study reports and Data Docs of the published database: `<database stem>_outputs/`."""
        return self.published_path.parent / f"{self.published_path.stem}_outputs"

    @contextmanager
    def connect(self, run_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection to this run's build file (created on first use)."""
        path = self.build_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), config=self._settings())
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def read_published(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the published database, as an analyst would open it."""
        con = duckdb.connect(str(self.published_path), read_only=True)
        try:
            yield con
        finally:
            con.close()

    def _settings(self) -> dict[str, str]:
        settings: dict[str, str] = {"preserve_insertion_order": "true"}
        if self.memory_limit:
            settings["memory_limit"] = self.memory_limit
        if self.threads:
            settings["threads"] = str(self.threads)
        if self.temp_directory:
            os.makedirs(self.temp_directory, exist_ok=True)
            settings["temp_directory"] = self.temp_directory
        return settings
