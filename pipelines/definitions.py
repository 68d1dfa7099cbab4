"""The Dagster code location: composes each domain's assets, checks and resources."""

from __future__ import annotations

import dagster as dg

from pipelines import jobs
from pipelines.cohorts import assets as cohort_assets
from pipelines.cohorts.settings import StudySettings
from pipelines.ingest import assets as ingest_assets
from pipelines.ingest.resources import ExtractSource
from pipelines.network import assets as network_assets
from pipelines.network.sites import SITE_PARTITIONS
from pipelines.operations import schedules as operations_schedules
from pipelines.operations.run_config import StudyWarehouse
from pipelines.operations import sensors as operations_sensors
from pipelines.phenotypes.assets import phenotype_assets
from pipelines.publish.assets import build_publish_asset
from pipelines.quality.checks import cohort_asset_checks, phenotype_asset_checks, staging_asset_checks
from pipelines.statistics import assets as statistics_assets

domain_assets = [
    *ingest_assets.assets,
    *phenotype_assets,
    *cohort_assets.assets,
    *statistics_assets.assets,
]

publish_asset = build_publish_asset(
    [key for assets_def in domain_assets for key in assets_def.keys]
)

# One partition per site for the whole study graph, applied here in one place: the domains define their assets
# unpartitioned (their unit tests materialise them without a partition), the code location partitions them by site.
site_partitioned_assets = dg.map_asset_specs(
    lambda spec: spec.replace_attributes(partitions_def=SITE_PARTITIONS), [*domain_assets, publish_asset]
)

defs = dg.Definitions(
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
