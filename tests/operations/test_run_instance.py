"""The instance `legcramp-run` executes a run in (pipelines/operations/run_instance.py): the project's instance on
the same storage, asking it once per run whether the site partition exists, and keeping one SQLAlchemy engine per
SQLite file. A real persistent Dagster instance with the project's dagster.yaml; the second handle on the same
storage plays the other process (the UI)."""

import hashlib

import dagster as dg
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.runs.sqlite import sqlite_run_storage

from pipelines.operations import run_instance as run_instance_module
from pipelines.operations.run_instance import SiteRunInstance, site_run_instance

SITES = dg.DynamicPartitionsDefinition(name="site")


def test_a_partition_seen_to_exist_is_not_asked_again_and_a_missing_one_always_is(dagster_instance):
    run_instance = site_run_instance(dagster_instance)
    assert isinstance(run_instance, SiteRunInstance)
    assert run_instance.event_log_storage.path_for_shard("index") == \
        dagster_instance.event_log_storage.path_for_shard("index")

    assert not run_instance.has_dynamic_partition("site", "north")  # a missing partition is not remembered...
    dagster_instance.add_dynamic_partitions("site", ["north"])
    assert run_instance.has_dynamic_partition("site", "north")  # ...so it is found once another handle adds it

    # Deleted through another handle on the same storage: the run goes on seeing its partition (it was asked once).
    dagster_instance.delete_dynamic_partition("site", "north")
    assert not dagster_instance.has_dynamic_partition("site", "north")
    assert run_instance.has_dynamic_partition("site", "north")

    # Deleted through the run's own instance: forgotten.
    dagster_instance.add_dynamic_partitions("site", ["north"])
    run_instance.delete_dynamic_partition("site", "north")
    assert not run_instance.has_dynamic_partition("site", "north")
    assert not dagster_instance.has_dynamic_partition("site", "north")


def test_a_run_in_it_is_stored_in_the_project_instance_with_its_partition_and_lineage(dagster_instance):
    @dg.asset(partitions_def=SITES)
    def upstream() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 1})

    @dg.asset(partitions_def=SITES, deps=[upstream], code_version="v1")
    def downstream() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 2})

    dagster_instance.add_dynamic_partitions("site", ["north"])
    job = dg.Definitions(assets=[upstream, downstream]).resolve_implicit_global_asset_job_def()
    run_instance = site_run_instance(dagster_instance)
    result = job.execute_in_process(instance=run_instance, partition_key="north")
    assert result.success
    # The run's own partition checks went through it: asked once during the run, remembered after a deletion.
    dagster_instance.delete_dynamic_partition("site", "north")
    assert run_instance.has_dynamic_partition("site", "north")

    # Read back through the other handle: the run, its partitioned materializations and their data-version lineage.
    assert dagster_instance.get_run_by_id(result.run_id).tags["dagster/partition"] == "north"
    [record] = dagster_instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=downstream.key, asset_partitions=["north"]), limit=1).records
    assert record.run_id == result.run_id
    tags = record.asset_materialization.tags
    assert tags["dagster/code_version"] == "v1"
    [upstream_record] = dagster_instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=upstream.key, asset_partitions=["north"]), limit=1).records
    assert tags["dagster/input_event_pointer/upstream"] == str(upstream_record.storage_id)
    # A partitioned input's version is the hash of its partitions' versions (here one), as Dagster computes it.
    upstream_version = upstream_record.asset_materialization.tags["dagster/data_version"]
    assert tags["dagster/input_data_version/upstream"] == hashlib.sha256(upstream_version.encode()).hexdigest()


def test_an_ephemeral_instance_is_used_as_it_is():
    instance = dg.DagsterInstance.ephemeral()
    assert site_run_instance(instance) is instance


def test_its_storage_keeps_one_engine_per_database_and_stores_what_dagster_stores(dagster_instance, monkeypatch):
    """Dagster's SQLite storage builds an engine per query; the run's keeps one per database file. The run's events
    are the same, in the same order, as those of the same job run in the instance as dagster.yaml gives it."""
    built = []
    for module in (run_instance_module, sqlite_event_log, sqlite_run_storage):
        monkeypatch.setattr(module, "create_engine", _counted(built, module.create_engine))

    @dg.asset(partitions_def=SITES)
    def upstream() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 1})

    @dg.asset(partitions_def=SITES, deps=[upstream], check_specs=[dg.AssetCheckSpec("positive", asset="downstream")])
    def downstream():
        yield dg.MaterializeResult(metadata={"rows": 2}, check_results=[dg.AssetCheckResult(passed=True)])

    dagster_instance.add_dynamic_partitions("site", ["north"])
    job = dg.Definitions(assets=[upstream, downstream]).resolve_implicit_global_asset_job_def()
    run_instance = site_run_instance(dagster_instance)
    # The same storage (folders and files) as the project's, Dagster's SQLite classes with their engines kept.
    assert isinstance(run_instance.event_log_storage, sqlite_event_log.SqliteEventLogStorage)
    assert run_instance.run_storage._conn_string == dagster_instance.run_storage._conn_string  # noqa: SLF001

    built.clear()
    result = job.execute_in_process(instance=run_instance, partition_key="north")
    during_run = list(built)
    plain = job.execute_in_process(instance=dagster_instance, partition_key="north")
    assert result.success and plain.success
    # Dozens of queries and writes (events, the run's status, the asset index), one engine per database: the run's
    # shard, the index and the runs' database (built at the first query of each), with Dagster's storage one per
    # query.
    assert len(built) - len(during_run) > 40  # the plain run
    assert len(during_run) == len(set(during_run)) <= 3
    assert run_instance.event_log_storage.conn_string_for_shard(result.run_id) in during_run

    def events(run_id):
        return [(record.dagster_event.event_type_value, record.dagster_event.step_key)
                for record in dagster_instance.all_logs(run_id) if record.dagster_event]

    assert events(result.run_id) == events(plain.run_id)
    assert len(events(result.run_id)) > 15
    [latest, earlier] = dagster_instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(downstream.key, "positive"), limit=2)
    assert (latest.run_id, earlier.run_id) == (plain.run_id, result.run_id)


def _counted(built, create_engine):
    def counting(conn_string, **options):
        built.append(conn_string)
        return create_engine(conn_string, **options)
    return counting
