"""Jobs of the code location."""

from __future__ import annotations

import dagster as dg

STUDY_JOB_NAME = "leg_cramp_study"

# DuckDB allows one writing process per file: every job that writes the warehouse carries this tag, and
# dagster.yaml limits runs with it to one at a time.
WRITER_TAG = {"legcramp/duckdb-writer": "true"}

# One process per run: all steps share the run's DuckDB build file, which only one process may hold.
study_job = dg.define_asset_job(
    name=STUDY_JOB_NAME,
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    tags=WRITER_TAG,
    description="Load the extract, build phenotypes, cohorts and statistics, check data quality, publish.",
)
