"""Cohort assets: one multi-asset per study (studies/<id>.yaml), materialising three asset keys in one step:

    ["cohort", <study_id>]                 the study's rows of cohort.cohort_definition, cohort.cohort,
                                           cohort.study_variables, cohort.person_variables, cohort.study_population
    ["results", "attrition", <study_id>]   its rows of results.attrition
    ["results", "table1", <study_id>]      its rows of results.table1

They depend on the staging tables the cohort SQL reads and on ["phenotype", <id>] for every phenotype the study
references. Keys and dependencies come from the study file; a run builds the study with the overrides of its
`studies` resource merged in (pipelines/cohorts/settings.py). No `from __future__ import annotations` here:
Dagster inspects the real annotation of `context`.
"""

import dagster as dg

from pipelines.asset_keys import attrition_key, cohort_key, phenotype_key, staging_key, table1_key
from pipelines.cohorts.attrition import attrition_markdown
from pipelines.cohorts.build import StudyBuild, build_study, staging_tables_read
from pipelines.cohorts.settings import StudySettings
from pipelines.cohorts.spark_stages import build_study_on_spark
from pipelines.cohorts.study import StudyDefinition, load_studies
from pipelines.cohorts.table1 import table1_markdown
from pipelines.disclosure import count_text, is_small
from pipelines.warehouse import ENGINE_KINDS, Warehouse

COHORTS_GROUP = "cohorts"


def upstream_keys(study: StudyDefinition) -> list[dg.AssetKey]:
    """The staging tables the cohort SQL reads and the phenotypes the study references."""
    return ([staging_key(table) for table in staging_tables_read(study)]
            + [phenotype_key(phenotype) for phenotype in dict.fromkeys(study.phenotype_ids)])


def _cohort_metadata(study: StudyDefinition, build: StudyBuild, overrides: dict) -> dict:
    metadata = {
        "title": study.title,
        # What this run changed from the study file (Launchpad/run config), so the UI shows what the run used.
        "study_overrides": dg.MetadataValue.json(overrides),
        "design": study.index.rule,
        # The cohort's outcome count is printed by the statistics stage, once the cross-table small-cell rule has
        # decided whether it may be (docs/disclosure.md): the estimates' events add up to it.
        "cohort_size": build.shown(build.cohort_size),
        "attrition": dg.MetadataValue.md(attrition_markdown(build.attrition)),
        "small_cell_threshold": build.threshold,
    }
    if build.warnings:
        metadata["warnings"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in build.warnings))
    return metadata


def build_study_asset(study: StudyDefinition) -> dg.AssetsDefinition:
    """The multi-asset that builds one study."""
    description = f"{study.title}. {study.description}".strip()

    @dg.multi_asset(
        name=f"cohort_{study.id}",
        specs=[
            dg.AssetSpec(cohort_key(study.id), deps=upstream_keys(study), group_name=COHORTS_GROUP,
                         kinds=set(ENGINE_KINDS), description=f"Study population and cohorts. {description}"),
            dg.AssetSpec(attrition_key(study.id), deps=[cohort_key(study.id)], group_name=COHORTS_GROUP,
                         kinds=set(ENGINE_KINDS),
                         description=f"Attrition of study {study.id} (small cells suppressed)."),
            dg.AssetSpec(table1_key(study.id), deps=[cohort_key(study.id)], group_name=COHORTS_GROUP,
                         kinds=set(ENGINE_KINDS), description=f"Table 1 of study {study.id} (small cells suppressed)."),
        ],
    )
    def _build(context: dg.AssetExecutionContext, warehouse: Warehouse, studies: StudySettings):
        study_in_run = studies.resolve(study)
        overrides = studies.effective_override(study)
        if overrides:
            context.log.info(f"{study.id}: run config overrides {overrides}")
        with warehouse.connect(context.run_id) as con:
            if warehouse.on_spark:
                build = build_study_on_spark(warehouse, context.run_id, con, study_in_run)
            else:
                build = build_study(con, study_in_run)
        for warning in build.warnings:
            context.log.warning(f"{study.id}: {warning}")
        context.log.info(f"{study.id}: {count_text(build.cohort_size, build.threshold)} persons")
        # The row count of cohort.study_population is the cohort size: a small one is not shown.
        row_count = {} if is_small(build.cohort_size, build.threshold) else {"dagster/row_count": build.cohort_size}
        yield dg.MaterializeResult(asset_key=cohort_key(study.id), metadata={
            **_cohort_metadata(study_in_run, build, overrides), **row_count, **warehouse.engine_metadata()})
        yield dg.MaterializeResult(asset_key=attrition_key(study.id), metadata={
            "attrition": dg.MetadataValue.md(attrition_markdown(build.attrition)),
            "dagster/row_count": len(build.attrition), **warehouse.engine_metadata()})
        yield dg.MaterializeResult(asset_key=table1_key(study.id), metadata={
            "table1": dg.MetadataValue.md(table1_markdown(build.table1)),
            "dagster/row_count": len(build.table1), **warehouse.engine_metadata()})

    return _build


def build_study_assets(studies: dict[str, StudyDefinition]) -> list[dg.AssetsDefinition]:
    return [build_study_asset(study) for study in studies.values()]


# Every studies/*.yaml; a broken study file stops the code location from loading, with the file and field named.
assets = build_study_assets(load_studies())
