"""Staging assets: one per canonical table, loaded together in one step (events are checked against persons).
The code location builds them with what the ingest reports of the phenotype library (`build_staging_asset`)."""


import dagster as dg

from pipelines import extract_spec as spec
from pipelines.asset_keys import staging_key
from pipelines.ingest.formats import FormatLoad, PhenotypeVocabularies, SparkIngest, load_extract_any_format
from pipelines.ingest.loader import TableLoad
from pipelines.ingest.reject_share import (
    CASCADE_CHECK,
    CASCADE_TABLE,
    DEFAULT_MAX_REJECT_SHARE,
    MAX_REJECT_SHARE_SETTING,
    TABLE_CHECK,
    reject_share_verdicts,
)
from pipelines.ingest.resources import ExtractSource
from pipelines.warehouse import ENGINE_KINDS, Warehouse

INGEST_GROUP = "ingest"


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
    if load.physical_lines is not None:
        # The loader has reconciled them: physical lines = records + blank lines + line breaks in quoted fields.
        metadata["physical_lines"] = load.physical_lines
        metadata["blank_lines"] = load.blank_lines
        metadata["quoted_line_breaks"] = load.quoted_line_breaks
    if load.ignored_columns:
        metadata["ignored_columns"] = ", ".join(load.ignored_columns)
    return metadata


def _format_metadata(result: FormatLoad, table: spec.Table) -> dict:
    """The detected layout, the engine that read it (`ingest_engine` names why when it is not the run's), and the
    phenotypes this table's codes cannot reach."""
    metadata: dict = {"extract_format": result.extract_format, "engine": result.engine}
    if result.engine_fallback:
        metadata["ingest_engine"] = result.ingest_engine
    unresolvable = result.unresolvable_phenotypes.get(table.name)
    if unresolvable:
        metadata["unresolvable_phenotypes"] = ", ".join(unresolvable)
    if table.name in result.table_warnings:
        metadata["warning"] = result.table_warnings[table.name]
    return metadata


def build_staging_asset(phenotype_vocabularies: PhenotypeVocabularies | None) -> dg.AssetsDefinition:
    """The ingest step's asset, reporting the phenotypes an extract's codes cannot reach from
    `phenotype_vocabularies` (PhenotypeLibrary.code_vocabularies: the code location passes it, read once; the
    ingest never reads the phenotype library itself). None: no phenotype is reported."""

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                staging_key(table.name),
                description=f"{table.description} Typed and normalised; refused rows are in ingest.rejects.",
                group_name=INGEST_GROUP,
                kinds=set(ENGINE_KINDS),  # ingested on the run's engine where it can (`engine` in the metadata)
            )
            for table in spec.TABLES
        ],
        check_specs=[
            *(dg.AssetCheckSpec(TABLE_CHECK, asset=staging_key(table.name), blocking=True,
                                description=f"At most {MAX_REJECT_SHARE_SETTING} (default "
                                            f"{DEFAULT_MAX_REJECT_SHARE:.0%}) of the table's records are rejected.")
              for table in spec.TABLES),
            dg.AssetCheckSpec(CASCADE_CHECK, asset=staging_key(CASCADE_TABLE), blocking=True,
                              description=f"At most {MAX_REJECT_SHARE_SETTING} (default "
                                          f"{DEFAULT_MAX_REJECT_SHARE:.0%}) of all event records are rejected as "
                                          "unknown_person (persons lost from the person table)."),
        ],
        name="load_extract",
    )
    def staging_tables(context: dg.AssetExecutionContext, extract: ExtractSource, warehouse: Warehouse):
        """Load the extract folder into staging.*, with every refused row in ingest.rejects and its reason."""
        spark = (SparkIngest(warehouse.spark_session, warehouse.spark_ingest_dir(context.run_id))
                 if warehouse.on_spark else None)
        with warehouse.connect(context.run_id) as con:
            # Detects the layout (pipelines/ingest/formats/registry.py) and loads it through the canonical loader,
            # on the warehouse's engine where that engine can read it (else on DuckDB, with a warning saying why).
            result = load_extract_any_format(con, extract.path, log=context.log.info, spark=spark,
                                             warn=context.log.warning, phenotype_vocabularies=phenotype_vocabularies)
        loads = result.loads
        for warning in result.warnings:
            context.log.warning(warning)
        total_in = sum(load.input_records for load in loads.values())
        total_rejected = sum(load.rejected for load in loads.values())
        context.log.info(f"extract {extract.path}: {total_in:,} records in, {total_rejected:,} rejected")
        for table in spec.TABLES:
            metadata = _metadata(loads[table.name], table)
            metadata.update(_format_metadata(result, table))
            yield dg.MaterializeResult(asset_key=staging_key(table.name), metadata=metadata)
        for verdict in reject_share_verdicts(loads, extract.max_reject_share):
            log = context.log.info if verdict.passed else context.log.error
            log(verdict.description)
            yield dg.AssetCheckResult(
                asset_key=staging_key(verdict.table), check_name=verdict.check, passed=verdict.passed,
                severity=dg.AssetCheckSeverity.ERROR, description=verdict.description,
                metadata={"rejected": verdict.rejected, "input_records": verdict.input_records,
                          "share": round(verdict.share, 6), "max_share": verdict.max_share},
            )

    return staging_tables


# The ingest step without the phenotype report, for loading an extract alone (the ingest's own tests); the study
# job's asset is the code location's build_staging_asset(phenotype_library().code_vocabularies()).
staging_tables = build_staging_asset(None)
