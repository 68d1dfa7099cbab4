"""Dagster asset checks that run a data-quality suite on an asset of the run's DuckDB build file.

``build_suite_asset_checks(["staging", "person"], "staging.person")`` returns one multi-asset check: one Dagster
asset check per expectation of the suite, all computed by one suite run (one GX validation).
``phenotype_asset_checks()`` does the same for the ~50 phenotype assets with one suite run for all of them: each
check of the phenotype suite is judged per phenotype and reported on that phenotype's asset. Fatal checks are
``blocking``: when one fails (severity ERROR) Dagster does not run the assets downstream of the checked asset, and
so the run is not published. Warnings fail with severity WARN and stop nothing.

(dagster-ge cannot be used: it requires great_expectations < 1.0.)
"""

# No `from __future__ import annotations` here: Dagster reads the context parameter's annotation at definition time.

from pathlib import Path
from typing import Any, Callable, Sequence

import dagster as dg

from pipelines import extract_spec as spec
from pipelines.cohorts.settings import StudySettings
from pipelines.cohorts.study import StudyDefinition, load_studies
from pipelines.quality import suites
from pipelines.quality.runner import DIAGNOSTICS_FILE, ExpectationResult, SuiteResult, run_suite
from pipelines.warehouse import Warehouse


def build_suite_asset_checks(asset_key: dg.AssetKey | Sequence[str] | str, suite_name: str) -> dg.AssetChecksDefinition:
    """Asset checks for `asset_key`, one per expectation of the stored suite; they need the "warehouse" resource."""
    return _suite_asset_checks(asset_key, suites.read_suite_json(suite_name), lambda context: suite_name)


def _suite_asset_checks(asset_key: dg.AssetKey | Sequence[str] | str, suite_json: dict[str, Any],
                        suite_for_run: Callable[[Any], str | dict[str, Any]],
                        required_resource_keys: frozenset[str] = frozenset()) -> dg.AssetChecksDefinition:
    """One Dagster asset check per expectation of `suite_json` (names, descriptions, blocking), all computed by one
    GX validation of the suite `suite_for_run(context)` returns (a stored suite's name or a suite's JSON form)."""
    asset_key = dg.AssetKey.from_coercible(asset_key)
    suite_name = suite_json["name"]
    specs = []
    for expectation in suite_json["expectations"]:
        meta = expectation["meta"]
        specs.append(dg.AssetCheckSpec(
            name=meta["name"],
            asset=asset_key,
            description=meta["description"],
            blocking=meta["severity"] == suites.FATAL,
            metadata=_spec_metadata(expectation),
        ))

    @dg.multi_asset_check(
        specs=specs,
        name=f"{suite_name.replace('.', '_')}_data_quality",
        description=f"Runs the GX suite {suite_name} inside the run's DuckDB build file.",
        required_resource_keys={Warehouse.resource_key, *required_resource_keys},
    )
    def suite_checks(context: dg.AssetCheckExecutionContext):
        warehouse: Warehouse = getattr(context.resources, Warehouse.resource_key)
        run_id = context.run.run_id  # an asset check's context has no run_id of its own
        result = run_suite(
            warehouse.build_path(run_id),
            suite_for_run(context),
            run_id=run_id,
            # Each run builds a new file: carry the published database's earlier results into dq.check_results.
            history_database=warehouse.published_path,
            duckdb_config=duckdb_settings(warehouse),
            docs_dir=warehouse.build_data_docs_dir(run_id),
            diagnostics_file=warehouse.diagnostics_dir(run_id) / DIAGNOSTICS_FILE,
        )
        failed = result.failed()
        context.log.info(f"{suite_name}: {len(result.results) - len(failed)} of {len(result.results)} checks "
                         f"passed; Data Docs once published: {warehouse.published_data_docs_index}")
        for check in result.results:
            yield dg.AssetCheckResult(
                asset_key=asset_key,
                check_name=check.name,
                passed=check.passed,
                severity=_severity(check.severity),
                description=check.description,
                metadata=check_metadata(check, result, warehouse.published_data_docs_index),
            )

    return suite_checks


def duckdb_settings(warehouse: Warehouse) -> dict[str, str]:
    """The warehouse's memory, thread and spill settings, for the connections the checks open."""
    settings = {}
    if warehouse.memory_limit:
        settings["memory_limit"] = warehouse.memory_limit
    if warehouse.threads:
        settings["threads"] = str(warehouse.threads)
    if warehouse.temp_directory:
        settings["temp_directory"] = warehouse.temp_directory
    return settings


def staging_asset_checks() -> list[dg.AssetChecksDefinition]:
    """Checks for every staging table: asset ["staging", <table>], suite "staging.<table>"."""
    return [
        build_suite_asset_checks(["staging", table.name], suites.suite_name(suites.STAGING_LAYER, table.name))
        for table in spec.TABLES
    ]


def cohort_asset_checks(studies: dict[str, StudyDefinition] | None = None) -> list[dg.AssetChecksDefinition]:
    """Checks for every study's cohort asset ["cohort", <study>], suite "cohort.<study>".

    The checks are named and described from the study file; a run validates the suite built from the study as that
    run resolves it (the file plus the overrides of its `studies` resource), so an overridden study period is
    checked against the period the run used.
    """
    return [cohort_study_asset_checks(study) for study in (studies or load_studies()).values()]


def cohort_study_asset_checks(study: StudyDefinition) -> dg.AssetChecksDefinition:
    def suite_for_run(context: dg.AssetCheckExecutionContext) -> dict[str, Any]:
        study_settings: StudySettings = getattr(context.resources, StudySettings.resource_key)
        return suites.build_cohort_suite(study_settings.resolve(study))

    return _suite_asset_checks(["cohort", study.id], suites.build_cohort_suite(study), suite_for_run,
                               required_resource_keys=frozenset({StudySettings.resource_key}))


def phenotype_asset_checks(phenotype_asset_keys: Sequence[dg.AssetKey] | None = None) -> dg.AssetChecksDefinition:
    """Checks on every phenotype asset, from one run of the suite "phenotype.phenotypes".

    The suite runs once per run over phenotype.person_summary and judges each phenotype separately; each of its
    checks becomes one Dagster asset check per phenotype asset (asset key ``[..., <phenotype id>]``), blocking where
    the check is fatal, so a phenotype that fails one stops only what is downstream of it.

    phenotype_asset_keys: the phenotype assets to check (default: every asset of the phenotype multi-asset).
    """
    if phenotype_asset_keys is None:
        from pipelines.phenotypes.assets import PHENOTYPE_ASSET_KEYS  # loads the phenotype library

        phenotype_asset_keys = PHENOTYPE_ASSET_KEYS
    suite_name = suites.PHENOTYPE_SUITE
    suite_json = suites.read_suite_json(suite_name)
    phenotype_of_key = {key: key.path[-1] for key in phenotype_asset_keys}
    specs = [
        dg.AssetCheckSpec(
            name=expectation["meta"]["name"],
            asset=key,
            description=expectation["meta"]["description"],
            blocking=expectation["meta"]["severity"] == suites.FATAL,
            metadata=_spec_metadata(expectation),
        )
        for key in phenotype_asset_keys
        for expectation in suite_json["expectations"]
    ]

    @dg.multi_asset_check(
        specs=specs,
        name="phenotype_data_quality",
        can_subset=True,
        description=f"Runs the GX suite {suite_name} (expectations/{suite_name.replace('.', '/')}.json) once over "
                    "phenotype.person_summary in the run's DuckDB build file and reports each check per phenotype.",
    )
    def phenotype_checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
        run_id = context.run.run_id
        result = run_suite(warehouse.build_path(run_id), suite_name, run_id=run_id,
                           history_database=warehouse.published_path, duckdb_config=duckdb_settings(warehouse),
                           docs_dir=warehouse.build_data_docs_dir(run_id),
            diagnostics_file=warehouse.diagnostics_dir(run_id) / DIAGNOSTICS_FILE)
        by_check = {(check.name, check.phenotype_id): check for check in result.results}
        failed = result.failed()
        context.log.info(f"{suite_name}: {len(result.results) - len(failed)} of {len(result.results)} checks "
                         f"passed; Data Docs once published: {warehouse.published_data_docs_index}")
        for check_key in context.selected_asset_check_keys:
            check = by_check.get((check_key.name, phenotype_of_key[check_key.asset_key]))
            if check is None:
                # No result for this phenotype: it is not in phenotype.definitions of this run, or the check
                # could not be evaluated at all (then it is reported once, without a phenotype).
                check = by_check.get((check_key.name, None))
            if check is None:
                yield dg.AssetCheckResult(
                    asset_key=check_key.asset_key, check_name=check_key.name, passed=False,
                    severity=_severity(next(e["meta"]["severity"] for e in suite_json["expectations"]
                                            if e["meta"]["name"] == check_key.name)),
                    description=f"No result: {phenotype_of_key[check_key.asset_key]} is not in "
                                "phenotype.definitions of this run.",
                )
                continue
            yield dg.AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=check_key.name,
                passed=check.passed,
                severity=_severity(check.severity),
                description=check.description,
                metadata=check_metadata(check, result, warehouse.published_data_docs_index),
            )

    return phenotype_checks


def _spec_metadata(expectation: dict[str, Any]) -> dict[str, Any]:
    meta = expectation["meta"]
    return {
        "category": f"{meta['category']} / {meta['subcategory']}",
        "severity": meta["severity"],
        "threshold_pct": float(meta["threshold"]),
        "expectation_type": expectation["type"],
    }


def _severity(severity: str) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if severity == suites.FATAL else dg.AssetCheckSeverity.WARN


# ---------------------------------------------------------------------------------------------------------------
# What the Dagster UI shows for one check
# ---------------------------------------------------------------------------------------------------------------
def check_metadata(check: ExpectationResult, suite_result: SuiteResult,
                   data_docs_index: Path | None = None) -> dict[str, Any]:
    """data_docs_index: where the Data Docs are read (for a pipeline run, the published location); default the
    folder the suite wrote them to."""
    metadata: dict[str, Any] = {
        "expectation": dg.MetadataValue.md(f"`{check.expectation_type}` on `{check.table}`"
                                           + (f", column `{check.column}`" if check.column else "")
                                           + (f", phenotype `{check.phenotype_id}`" if check.phenotype_id else "")),
        "category": f"{check.category} / {check.subcategory}",
        "severity": check.severity,
        "threshold_pct": check.threshold,
        "observed_value": dg.MetadataValue.json(check.observed_value)
        if isinstance(check.observed_value, (list, dict)) else _text_or_number(check.observed_value),
        "example_rows": dg.MetadataValue.md(markdown_table(check.example_rows)),
    }
    if check.phenotype_id is not None:
        metadata["phenotype_id"] = check.phenotype_id
    if check.unexpected_count is not None:
        metadata["unexpected_count"] = int(check.unexpected_count)
    if check.unexpected_percent is not None:
        metadata["unexpected_percent"] = float(check.unexpected_percent)
    if check.element_count is not None:
        metadata["element_count"] = int(check.element_count)
    if check.error:
        metadata["error"] = dg.MetadataValue.text(check.error)
    if suite_result.data_docs_index is not None:
        metadata["data_docs"] = dg.MetadataValue.path(str(data_docs_index or suite_result.data_docs_index))
    return metadata


def _text_or_number(value: Any) -> Any:
    if value is None:
        return dg.MetadataValue.text("")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return dg.MetadataValue.text(str(value))
    return value


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Example rows as a Markdown table (or a note that there are none)."""
    if not rows:
        return "_no failing rows_"
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)

    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
