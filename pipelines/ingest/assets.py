"""Staging assets: one per canonical table, loaded together in one step (events are checked against persons)."""


import dagster as dg

from pipelines import extract_spec as spec
from pipelines.ingest.formats import FormatLoad, load_extract_any_format  # [extract formats] dispatch by layout
from pipelines.ingest.loader import TableLoad
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


def _format_metadata(result: FormatLoad, table: spec.Table) -> dict:
    """[extract formats] The detected layout, and the phenotypes this table's codes cannot reach."""
    metadata: dict = {"extract_format": result.extract_format}
    unresolvable = result.unresolvable_phenotypes.get(table.name)
    if unresolvable:
        metadata["unresolvable_phenotypes"] = ", ".join(unresolvable)
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
        # [extract formats] detects canonical / OMOP CDM / Synthea / site layouts; canonical goes to load_extract.
        result = load_extract_any_format(con, extract.path, log=context.log.info)
    loads = result.loads
    for warning in result.warnings:
        context.log.warning(warning)
    total_in = sum(load.input_records for load in loads.values())
    total_rejected = sum(load.rejected for load in loads.values())
    context.log.info(f"extract {extract.path}: {total_in:,} records in, {total_rejected:,} rejected")
    for table in spec.TABLES:
        metadata = _metadata(loads[table.name], table)
        metadata.update(_format_metadata(result, table))  # [extract formats]
        yield dg.MaterializeResult(asset_key=staging_key(table.name), metadata=metadata)


assets = [staging_tables]
