"""Staging assets: one per canonical table, loaded together in one step (events are checked against persons)."""


import dagster as dg

from pipelines import extract_spec as spec
from pipelines.ingest.loader import TableLoad, load_extract
from pipelines.ingest.resources import ExtractSource
from pipelines.warehouse import Warehouse

INGEST_GROUP = "ingest"


def staging_key(table_name: str) -> dg.AssetKey:
    return dg.AssetKey(["staging", table_name])


def _column_schema(table: spec.Table) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, c.type, description=c.description,
                           constraints=dg.TableColumnConstraints(nullable=not c.required))
            for c in table.columns
        ]
    )


def _metadata(load: TableLoad, table: spec.Table) -> dict:
    metadata = {
        "dagster/row_count": load.loaded,
        "dagster/column_schema": _column_schema(table),
        "source_file": load.file or "(absent: optional table)",
        "input_records": load.input_records,
        "loaded": load.loaded,
        "rejected": load.rejected,
    }
    for reason, count in load.rejected_by_reason.items():
        metadata[f"rejected_{reason}"] = count
    if load.physical_lines is not None and load.physical_lines != load.input_records:
        metadata["warning"] = (
            f"{load.physical_lines} physical lines but {load.input_records} records: quoted fields span lines "
            "or a quote is unbalanced (see ingest.rejects)."
        )
    if load.ignored_columns:
        metadata["ignored_columns"] = ", ".join(load.ignored_columns)
    return metadata


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            staging_key(table.name),
            description=f"{table.description} Typed and normalised; refused rows are in ingest.rejects.",
            group_name=INGEST_GROUP,
            kinds={"duckdb"},
        )
        for table in spec.TABLES
    ],
    name="load_extract",
)
def staging_tables(context: dg.AssetExecutionContext, extract: ExtractSource, warehouse: Warehouse):
    """Load the extract folder into staging.*, with every refused row in ingest.rejects and its reason."""
    with warehouse.connect(context.run_id) as con:
        loads = load_extract(con, extract.path, log=context.log.info)
    total_in = sum(load.input_records for load in loads.values())
    total_rejected = sum(load.rejected for load in loads.values())
    context.log.info(f"extract {extract.path}: {total_in:,} records in, {total_rejected:,} rejected")
    for table in spec.TABLES:
        yield dg.MaterializeResult(asset_key=staging_key(table.name), metadata=_metadata(loads[table.name], table))


assets = [staging_tables]
