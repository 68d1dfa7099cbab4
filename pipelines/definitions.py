"""The Dagster code location: composes each domain's assets, checks and resources.

The definitions are built on first use (``load_definitions()``, or the module attribute ``defs`` that Dagster's
``-m pipelines.definitions`` finds), not when this module is imported: building them imports every domain (the
statistics libraries, Great Expectations) and loads every study and phenotype, which took over a minute on a loaded
machine. ``legcramp-run --check`` and the command line's argument errors never pay for it (docs/performance.md).
"""

from __future__ import annotations

import functools
from typing import Any

import dagster as dg

__all__ = ["defs", "load_definitions"]


@functools.cache
def load_definitions() -> dg.Definitions:
    """The code location's definitions, built once per process."""
    from pipelines import jobs
    from pipelines.cohorts import assets as cohort_assets
    from pipelines.cohorts.settings import StudySettings
    from pipelines.ingest import assets as ingest_assets
    from pipelines.ingest.resources import ExtractSource
    from pipelines.network import assets as network_assets
    from pipelines.network.sites import SITE_PARTITIONS
    from pipelines.operations import schedules as operations_schedules
    from pipelines.operations import sensors as operations_sensors
    from pipelines.operations.run_config import StudyWarehouse
    from pipelines.phenotypes.assets import phenotype_assets
    from pipelines.phenotypes.loader import phenotype_library
    from pipelines.publish.assets import build_publish_asset
    from pipelines.quality.checks import cohort_asset_checks, phenotype_asset_checks, staging_asset_checks
    from pipelines.statistics import assets as statistics_assets

    domain_assets = [
        ingest_assets.build_staging_asset(phenotype_library().code_vocabularies()),
        *phenotype_assets,
        *cohort_assets.assets,
        *statistics_assets.assets,
    ]

    publish_asset = build_publish_asset(
        [key for assets_def in domain_assets for key in assets_def.keys]
    )

    # One partition per site for the whole study graph, applied here in one place: the domains define their assets
    # unpartitioned (their unit tests materialise them without a partition), the code location partitions them by
    # site.
    site_partitioned_assets = dg.map_asset_specs(
        lambda spec: spec.replace_attributes(partitions_def=SITE_PARTITIONS), [*domain_assets, publish_asset]
    )

    return dg.Definitions(
        assets=[*site_partitioned_assets, *network_assets.assets],
        asset_checks=[*staging_asset_checks(), phenotype_asset_checks(), *cohort_asset_checks()],
        jobs=[jobs.study_job, network_assets.network_job],
        # One stopped schedule per study, the extract-drop sensor (stopped) and the run-failure summary sensor.
        schedules=operations_schedules.study_schedules,
        sensors=operations_sensors.sensors,
        resources={
            "warehouse": StudyWarehouse(),
            "extract": ExtractSource(),
            network_assets.NetworkWarehouse.resource_key: network_assets.NetworkWarehouse(),
            # Study-parameter overrides per run (Launchpad); the default runs the study files as written.
            StudySettings.resource_key: StudySettings(),
        },
    )


def __getattr__(name: str) -> Any:
    """``defs``, built on first access (PEP 562): ``from pipelines.definitions import defs`` and Dagster's module
    loader, which lists the module's members with ``dir()``, both find it."""
    if name == "defs":
        return load_definitions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
