"""The Dagster instance a `legcramp-run` run executes in: the project's instance, with its site partition looked up
once per run instead of once per asset input and output.

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
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import ConfigurableClassData

__all__ = ["SiteRunInstance", "site_run_instance"]


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


def site_run_instance(instance: dg.DagsterInstance | None = None) -> dg.DagsterInstance:
    """The instance a run executes in: `instance` (default: $DAGSTER_HOME's) as a SiteRunInstance on the same
    storage (rebuilt from its reference: a few hundredths of a second). An instance without a reference (ephemeral,
    in tests) or of a custom class of its own (an `instance_class` in dagster.yaml) is returned as it is."""
    instance = instance if instance is not None else dg.DagsterInstance.get()
    if isinstance(instance, SiteRunInstance) or not instance.is_persistent:
        return instance
    ref = instance.get_ref()
    if ref.custom_instance_class_data is not None:
        return instance
    own_class = ConfigurableClassData(__name__, SiteRunInstance.__name__, "{}\n")
    return dg.DagsterInstance.from_ref(ref._replace(custom_instance_class_data=own_class))
