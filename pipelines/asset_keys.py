"""The one rule for Dagster asset keys: an asset is keyed like the table (or table rows) it materialises,
[schema, table] or [schema, table, study], as dagster-open-platform keys assets in one translator. Every domain
and check module asks here; none builds a key of its own."""

from __future__ import annotations

import dagster as dg


def staging_key(table_name: str) -> dg.AssetKey:
    """staging.<table>, loaded by the ingest."""
    return dg.AssetKey(["staging", table_name])


def phenotype_key(phenotype_id: str) -> dg.AssetKey:
    """One phenotype's rows of phenotype.events and phenotype.person_summary."""
    return dg.AssetKey(["phenotype", phenotype_id])


def cohort_key(study_id: str) -> dg.AssetKey:
    """One study's rows of the cohort.* tables."""
    return dg.AssetKey(["cohort", study_id])


def attrition_key(study_id: str) -> dg.AssetKey:
    return dg.AssetKey(["results", "attrition", study_id])


def table1_key(study_id: str) -> dg.AssetKey:
    return dg.AssetKey(["results", "table1", study_id])


def associations_key(study_id: str) -> dg.AssetKey:
    return dg.AssetKey(["results", "associations", study_id])


# The run's database, published as one version with its outputs.
PUBLISHED_KEY = dg.AssetKey(["published_database"])
# The network database's pooled estimates.
POOLED_KEY = dg.AssetKey(["network", "pooled_associations"])
