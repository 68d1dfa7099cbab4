"""Dagster assets of the phenotype library: one asset per phenotype, all computed together in one pass.

One ``@dg.multi_asset`` runs ``run_phenotypes`` (every phenotype at once, one statement per staging table) and
reports one materialization per phenotype, keyed ``["phenotype", <id>]`` in group ``phenotypes``, with the event row
count, the person count and the definition version as metadata. Selecting a single phenotype still computes all of
them (they share the scans) but reports only the selected ones.

Compose into the code location with::

    from pipelines.phenotypes.assets import phenotype_assets
    dg.Definitions(assets=[staging_asset, *phenotype_assets, ...], resources={"warehouse": Warehouse(...)})

The definitions are loaded and checked when this module is imported, so a broken phenotype file stops the code
location from loading, with the file, field and problem in the error.
"""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation when the asset is defined.
import hashlib
from typing import Iterator

import dagster as dg

from pipelines import paths
from pipelines.asset_keys import phenotype_key as phenotype_asset_key
from pipelines.asset_keys import staging_key
from pipelines.phenotypes.compiler import run_phenotypes
from pipelines.phenotypes.loader import LoadedPhenotype, PhenotypeLibrary, phenotype_library
from pipelines.phenotypes.reference_page import rule_text
from pipelines.phenotypes.spark_stage import run_phenotypes_on_spark
from pipelines.vocabularies import STAGING_TABLES_BY_DOMAIN
from pipelines.warehouse import ENGINE_KINDS, Warehouse

GROUP_NAME = "phenotypes"


def build_phenotype_assets(library: PhenotypeLibrary | None = None) -> dg.AssetsDefinition:
    """The multi-asset computing every phenotype of ``library`` (default: the files in phenotypes/)."""
    if library is None:
        library = phenotype_library()
    sql_digest = _sql_digest()

    @dg.multi_asset(
        name="phenotypes",
        specs=[_asset_spec(phenotype, sql_digest) for phenotype in library],
        can_subset=True,
        description="Every phenotype of phenotypes/*.yaml, computed in one pass over the staging tables.",
    )
    def phenotypes(context: dg.AssetExecutionContext, warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
        with warehouse.connect(context.run_id) as con:
            if warehouse.on_spark:
                counts = run_phenotypes_on_spark(warehouse, context.run_id, con, library, log=context.log.info)
            else:
                counts = run_phenotypes(con, library)
        # The library is in dependency order (a composite after its parts), the order Dagster requires.
        for phenotype in library:
            key = phenotype_asset_key(phenotype.id)
            if key not in context.selected_asset_keys:
                continue
            result = counts[phenotype.id]
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "dagster/row_count": dg.MetadataValue.int(result.event_rows),
                    "person_count": dg.MetadataValue.int(result.person_count),
                    "version": dg.MetadataValue.int(result.version),
                    "definition_sha256": phenotype.sha256,
                    "source_file": phenotype.source_file,
                    **warehouse.engine_metadata(),
                },
            )

    return phenotypes


def _asset_spec(phenotype: LoadedPhenotype, sql_digest: str) -> dg.AssetSpec:
    definition = phenotype.definition
    deps = [staging_key(table) for table in STAGING_TABLES_BY_DOMAIN[definition.domain]]
    deps += [phenotype_asset_key(referenced) for referenced in definition.referenced_phenotypes]
    return dg.AssetSpec(
        key=phenotype_asset_key(phenotype.id),
        group_name=GROUP_NAME,
        deps=deps,
        description=f"{definition.name}. {definition.description}\n\nRule: {rule_text(definition)}",
        # Changes when the YAML file or the phenotype SQL changes, so Dagster shows the asset as out of date.
        code_version=f"v{definition.version}-{phenotype.sha256[:12]}-{sql_digest[:12]}",
        metadata={"domain": definition.domain, "version": definition.version, "source_file": phenotype.source_file},
        kinds=set(ENGINE_KINDS),
    )


def _sql_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((paths.SQL_DIR / "phenotypes").rglob("*.sql")):
        digest.update(path.relative_to(paths.SQL_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


phenotypes_multi_asset = build_phenotype_assets()

# What the code location composes.
phenotype_assets: list[dg.AssetsDefinition] = [phenotypes_multi_asset]
PHENOTYPE_ASSET_KEYS: tuple[dg.AssetKey, ...] = tuple(phenotypes_multi_asset.keys)
