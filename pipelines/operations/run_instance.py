"""The Dagster instance a `legcramp-run` run executes in: the project's instance, with its site partition looked up
once per run instead of once per asset input and output, and its SQLite storage's engines kept instead of built
anew for every query.

Every study asset is partitioned by site (a dynamic partition, pipelines/network/sites.py). While a run executes,
Dagster checks that the run's partition exists each time it maps the step's partition to an input or an output
(`DynamicPartitionsDefinition.has_partition_key`, called from the data-version reads at each step's start and from
each output's context): about 830 queries of the instance's storage in a 100-patient run, each opening and closing
a SQLite connection (Dagster 1.13's SqlEventLogStorage.has_dynamic_partition, after a has_table check that opens
another). The run registers its site before it starts (pipelines/network/sites.py, register_site), so within the
run the answer does not change: this instance remembers a partition it has seen exist and asks the storage only
about one it has not. Everything else (the run, its events, asset lineage, data versions, the UI's partition view)
is the project's instance as dagster.yaml configures it, through Dagster's documented custom-instance-class hook.

Only positive answers are kept, and only in the run's own process: a partition deleted through this instance is
forgotten; one deleted by another process during the run (the UI) is still seen by the run until it ends, which is
the run that process would have interrupted.

Dagster's SQLite storage (the default, dagster.yaml) builds a new SQLAlchemy engine for every query and every
write, and drops it after (Dagster 1.13: `SqliteEventLogStorage._connect`, `SqliteRunStorage.connect`; about 4,000
in a 100-patient run). A new engine sets up its dialect on its first connection and compiles every statement
afresh (SQLAlchemy caches compiled statements per engine). The run's instance keeps one engine per SQLite file
instead (`SiteRunStorage`, through Dagster's custom-storage hook, in place of its DagsterSqliteStorage with the same
configuration): still no connection pool (NullPool: each query opens and closes its SQLite connection, as before,
so WAL checkpoints, locks and files are Dagster's), the same files, schema and rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (DagsterSqliteStorage, _event_logs_directory, _runs_directory,
                                                  _schedule_directory)
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

__all__ = ["SiteRunInstance", "SiteRunStorage", "site_run_instance"]


class SiteRunInstance(dg.DagsterInstance):
    """A DagsterInstance that remembers the dynamic partitions it has seen exist (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._partitions_seen: set[tuple[str, str]] = set()

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        if (partitions_def_name, partition_key) in self._partitions_seen:
            return True
        exists = super().has_dynamic_partition(partitions_def_name, partition_key)
        if exists:
            self._partitions_seen.add((partitions_def_name, partition_key))
        return exists

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self._partitions_seen.discard((partitions_def_name, partition_key))
        super().delete_dynamic_partition(partitions_def_name, partition_key)


class _KeptEngines:
    """One SQLAlchemy engine per SQLite database, built on first use and kept (NullPool, as Dagster's)."""

    def __init__(self, **engine_options: Any) -> None:
        self._engines: dict[str, Engine] = {}
        self._options = engine_options

    def __call__(self, database: str, conn_string: Callable[[], str]) -> Engine:
        """The engine of `database` (a shard's name), built from `conn_string()` the first time: Dagster's
        connection strings take a few path operations to build, once per database is enough."""
        engine = self._engines.get(database)
        if engine is None:
            engine = self._engines[database] = create_engine(conn_string(), poolclass=NullPool, **self._options)
        return engine

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


class _EngineKeepingEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log (one database per run and an index), each database's engine kept."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._kept_engines = _KeptEngines(connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # Dagster 1.13's SqliteEventLogStorage._connect, with the engine kept rather than built and disposed.
        with self._db_lock:
            engine = self._kept_engines(shard, lambda: self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def has_table(self, table_name: str) -> bool:
        # Dagster 1.13's SqliteEventLogStorage.has_table (asked before many index queries), with the engine kept.
        engine = self._kept_engines(INDEX_SHARD_NAME, lambda: self.conn_string_for_shard(INDEX_SHARD_NAME))
        with engine.connect() as conn:
            return bool(engine.dialect.has_table(conn, table_name))

    def dispose(self) -> None:
        super().dispose()
        self._kept_engines.dispose()


class _EngineKeepingRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage, its engine kept."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._kept_engines = _KeptEngines()
        super().__init__(conn_string, inst_data=inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        # Dagster 1.13's SqliteRunStorage.connect, with the engine kept.
        with self._kept_engines("runs", lambda: self._conn_string).connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        self._kept_engines.dispose()


class SiteRunStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (runs, event logs, schedules in the same folders and files) whose run and
    event-log storages keep their engines (see the module's docstring)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # Dagster 1.13's DagsterSqliteStorage.__init__, with the two engine-keeping storages.
        self.base_dir = base_dir
        self._run_storage = _EngineKeepingRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = _EngineKeepingEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> SiteRunStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


def site_run_instance(instance: dg.DagsterInstance | None = None) -> dg.DagsterInstance:
    """The instance a run executes in: `instance` (default: $DAGSTER_HOME's) as a SiteRunInstance on the same
    storage (rebuilt from its reference: a few hundredths of a second), Dagster's default SQLite storage as a
    SiteRunStorage on the same folders. An instance without a reference (ephemeral, in tests) or of a custom class of
    its own (an `instance_class` in dagster.yaml) is returned as it is; a storage other than the default SQLite one
    is kept as it is."""
    instance = instance if instance is not None else dg.DagsterInstance.get()
    if isinstance(instance, SiteRunInstance) or not instance.is_persistent:
        return instance
    ref = instance.get_ref()
    if ref.custom_instance_class_data is not None:
        return instance
    own_class = ConfigurableClassData(__name__, SiteRunInstance.__name__, "{}\n")
    ref = ref._replace(custom_instance_class_data=own_class)
    default_storage = ref.storage_data
    if (default_storage is not None and (default_storage.module_name, default_storage.class_name)
            == (DagsterSqliteStorage.__module__, DagsterSqliteStorage.__name__)):
        ref = ref._replace(storage_data=ConfigurableClassData(__name__, SiteRunStorage.__name__,
                                                              default_storage.config_yaml))
    return dg.DagsterInstance.from_ref(ref)
