"""Jobs of the code location."""

from __future__ import annotations

import dagster as dg

from pipelines.network.sites import NETWORK_GROUP
from pipelines.warehouse import WRITER_TAG

__all__ = ["STUDY_JOB_NAME", "WRITER_TAG", "study_job"]

STUDY_JOB_NAME = "leg_cramp_study"

# One process per run: all steps share the run's DuckDB build file, which only one process may hold.
# Every study asset is partitioned by site, so a run builds one site (partition key = site name); the network
# assets (pooled over sites, unpartitioned) have their own job (pipelines/network/assets.py).
study_job = dg.define_asset_job(
    name=STUDY_JOB_NAME,
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups(NETWORK_GROUP),
    executor_def=dg.in_process_executor,
    tags=WRITER_TAG,
    description="Load the extract, build phenotypes, cohorts and statistics, check data quality, publish.",
)
