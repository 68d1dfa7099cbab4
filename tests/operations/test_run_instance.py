"""The instance `legcramp-run` executes a run in (pipelines/operations/run_instance.py): the project's instance on
the same storage, asking it once per run whether the site partition exists. A real persistent Dagster instance
with the project's dagster.yaml; the second handle on the same storage plays the other process (the UI)."""

import hashlib

import dagster as dg

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
