"""The network asset: pooled cross-site estimates, published atomically beside the per-site rows.

`["network", "pooled_associations"]` depends on every site partition of `published_database`. It asks the Dagster
instance where each site's latest successful run published its database (the `path` metadata of that partition's
`published_database` materialization), opens each one read-only, and builds the network database:

    results.site_associations    every site's results.associations rows, with the site
    results.pooled_associations  fixed- and random-effects pooled estimates (pipelines/network/pooling.py)
    results.network_sites        which site database (path, run, time) each version pooled

Like a study run it builds `<network folder>/.runs/<run id>.duckdb` and publishes with one atomic rename, so
analysts never see a half-built network database. No `from __future__ import annotations` here: Dagster inspects
the real annotations of the asset function.
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar

import dagster as dg
from pydantic import Field

from pipelines.asset_keys import POOLED_KEY, PUBLISHED_KEY
from pipelines.cohorts.study import load_studies
from pipelines.network.pooling import (
    NETWORK_SITES_COLUMNS,
    NETWORK_SITES_COMMENT,
    NETWORK_SITES_TABLE,
    SITE_ASSOCIATIONS_TABLE,
    SITE_TABLE_COMMENT,
    comment_on,
    comment_on_columns,
    create_table,
    pool_site_associations,
    write_pooled,
)
from pipelines.network.sites import NETWORK_DATABASE, NETWORK_GROUP, SITE_PARTITIONS
from pipelines.publish.assets import publish_build
from pipelines.sql_quoting import quote_identifier, quote_literal
from pipelines.tables import ASSOCIATIONS as ASSOCIATIONS_TABLE
from pipelines.warehouse import WRITER_TAG, Warehouse

NETWORK_JOB_NAME = "leg_cramp_network"


class NetworkWarehouse(Warehouse):
    """The network database (the study assets use `warehouse`, the site's database)."""

    resource_key: ClassVar[str] = "network_warehouse"
    database_path: str = str(NETWORK_DATABASE)



class NetworkConfig(dg.Config):
    sites: list[str] = Field(
        default_factory=list,
        description="Sites (partitions) to pool; empty = every site with a published database.")


@dataclass(frozen=True)
class PublishedSite:
    site: str
    database_path: Path
    run_id: str
    published_at: datetime


class NetworkError(ValueError):
    """The network database cannot be built; the message says which sites and why."""


def published_sites(instance: dg.DagsterInstance, wanted: list[str]) -> tuple[list[PublishedSite], list[str]]:
    """The latest published database of each wanted site (default: every registered site), and notes on the rest.

    Two sites that published to the same file cannot both be read from it: the later publish owns the file.
    """
    registered = list(instance.get_dynamic_partitions(SITE_PARTITIONS.name))
    unknown = sorted(set(wanted) - set(registered))
    if unknown:
        raise NetworkError(f"config sites: unknown site(s) {', '.join(unknown)}; "
                           f"registered sites: {', '.join(sorted(registered)) or 'none'}")
    notes, found = [], []
    for site in sorted(wanted or registered):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=PUBLISHED_KEY, asset_partitions=[site]), limit=1).records
        if not records:
            notes.append(f"{site}: no successful run has published its database yet")
            continue
        record = records[0]
        path = Path(record.asset_materialization.metadata["path"].value)
        found.append(PublishedSite(site, path, record.run_id,
                                   datetime.fromtimestamp(record.timestamp, tz=timezone.utc)))
    owners: dict[Path, PublishedSite] = {}
    for published in sorted(found, key=lambda p: p.published_at):
        if published.database_path in owners:
            notes.append(f"{owners[published.database_path].site}: not pooled, its database "
                         f"{published.database_path} was since replaced by site {published.site}'s run")
        owners[published.database_path] = published
    sites = []
    for published in sorted(owners.values(), key=lambda p: p.site):
        if published.database_path.exists():
            sites.append(published)
        else:
            notes.append(f"{published.site}: not pooled, {published.database_path} no longer exists")
    return sites, notes


def _study_thresholds() -> tuple[dict[str, int], int]:
    """Each study's small-cell threshold, and the strictest (for rows of no single study, e.g. sequence symmetry)."""
    thresholds = {study_id: study.threshold for study_id, study in load_studies().items()}
    return thresholds, max(thresholds.values())


def pooled_markdown(pooled) -> str:
    if pooled.empty:
        return "No pooled estimates."

    def number(value, digits: int = 2) -> str:  # a pooled cell hidden by the small-cell rule is NULL
        return "suppressed" if value is None or value != value else f"{value:.{digits}f}"

    lines = ["| study | exposure | analysis | sites | fixed effect (95% CI) | random effects, DL (95% CI) "
             "| random effects, HKSJ 95% CI | tau² | I² |", "|---|---|---|---|---|---|---|---|---|"]
    for r in pooled.to_dict("records"):
        i_squared = r["i_squared"]
        lines.append(
            f"| {r['study_id']} | {r['exposure']} | {r['analysis_id']} | {r['n_sites']} "
            f"| {number(r['fixed_estimate'])} ({number(r['fixed_ci_lower'])}–{number(r['fixed_ci_upper'])}) "
            f"| {number(r['random_estimate'])} ({number(r['random_ci_lower'])}–{number(r['random_ci_upper'])}) "
            f"| {number(r['hksj_ci_lower'])}–{number(r['hksj_ci_upper'])} "
            f"| {number(r['tau_squared'], 3)} | {number(None if i_squared is None else 100 * i_squared, 0)}% |")
    return "\n".join(lines)


@dg.asset(
    key=POOLED_KEY,
    deps=[PUBLISHED_KEY],  # every site partition (an unpartitioned asset depends on all partitions upstream)
    group_name=NETWORK_GROUP,
    kinds={"duckdb", "python"},
    description="Cross-site meta-analysis (fixed effect and DerSimonian-Laird random effects, with the "
                "Hartung-Knapp-Sidik-Jonkman interval) of every site's published estimates, "
                "matched on analysis_id, published atomically with the per-site rows in the network database.",
)
def pooled_associations(context: dg.AssetExecutionContext, config: NetworkConfig,
                        network_warehouse: NetworkWarehouse) -> dg.MaterializeResult:
    sites, notes = published_sites(context.instance, config.sites)
    if not sites:
        raise NetworkError("no site database to pool: " + ("; ".join(notes) or "no site is registered yet "
                           "(a site is registered by its first run: extract-drop sensor or legcramp-run)"))
    thresholds, strictest = _study_thresholds()
    with network_warehouse.connect(context.run_id) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS results")
        create_table(con, NETWORK_SITES_TABLE, NETWORK_SITES_COLUMNS, NETWORK_SITES_COMMENT)
        for index, published in enumerate(sites):
            alias = f"site_{index}"
            # Read-only: the site's file may be open by analysts, and a new version may replace it at any time
            # (atomic rename); this connection keeps reading the version it attached. The path is data (any
            # character a file name may hold), so it is written into the SQL as a quoted literal.
            con.execute(f"ATTACH {quote_literal(published.database_path)} AS {quote_identifier(alias)} (READ_ONLY)")
            select = f"SELECT ? AS site, * FROM {alias}.{ASSOCIATIONS_TABLE}"
            if index == 0:
                con.execute(f"CREATE TABLE {SITE_ASSOCIATIONS_TABLE} AS {select}", [published.site])
                # The columns mean what they mean in the site's table: take over its column comments.
                schema, table = ASSOCIATIONS_TABLE.split(".")
                site_comments = con.execute(
                    "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? "
                    "AND table_name = ? AND comment IS NOT NULL", [alias, schema, table]).fetchall()
                comment_on_columns(con, SITE_ASSOCIATIONS_TABLE, site_comments)
            else:
                con.execute(f"INSERT INTO {SITE_ASSOCIATIONS_TABLE} BY NAME {select}", [published.site])
            rows = con.execute(f"SELECT count(*) FROM {alias}.{ASSOCIATIONS_TABLE}").fetchall()[0][0]
            con.execute(f"DETACH {alias}")
            con.execute(f"INSERT INTO {NETWORK_SITES_TABLE} VALUES (?, ?, ?, ?, ?)",
                        [published.site, str(published.database_path), published.run_id,
                         published.published_at.replace(tzinfo=None), rows])
        comment_on(con, SITE_ASSOCIATIONS_TABLE, SITE_TABLE_COMMENT,
                   (("site", "VARCHAR", "The site (Dagster partition key) whose database the row comes from."),))
        site_rows = con.execute(f"SELECT * FROM {SITE_ASSOCIATIONS_TABLE}").df()
        pooling = pool_site_associations(site_rows, thresholds, strictest)
        write_pooled(con, pooling.pooled)
    if len(sites) < 2:
        notes.append(f"only {len(sites)} site has a published database: nothing to pool yet")
    notes += pooling.notes
    for note in notes:
        context.log.warning(note)
    schemas = publish_build(network_warehouse, context.run_id)
    context.log.info(f"published {network_warehouse.published_path}: {len(pooling.pooled)} pooled rows "
                     f"from {len(sites)} sites")
    metadata = {
        "dagster/row_count": len(pooling.pooled),
        "path": dg.MetadataValue.path(str(network_warehouse.published_path)),
        "sites": ", ".join(p.site for p in sites),
        "tables_per_schema": dg.MetadataValue.json(schemas),
        "pooled estimates": dg.MetadataValue.md(pooled_markdown(pooling.pooled)),
    }
    if notes:
        metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in notes))
    return dg.MaterializeResult(metadata=metadata)


network_job = dg.define_asset_job(
    name=NETWORK_JOB_NAME,
    selection=dg.AssetSelection.groups(NETWORK_GROUP),
    executor_def=dg.in_process_executor,
    # It writes a DuckDB file (the network database): one writing run at a time, like the study job.
    tags=WRITER_TAG,
    description="Pool every site's published estimates (fixed and random effects) into the network database.",
)

assets = [pooled_associations]
