"""Dagster asset checks that run a data-quality suite on an asset of the run's DuckDB build file.

``build_suite_asset_checks(["staging", "person"], "staging.person")`` returns one multi-asset check: one Dagster
asset check per expectation of the suite, all computed by one suite run (one GX validation). Fatal checks are
``blocking``: when one fails (severity ERROR) Dagster does not run the assets downstream of the checked asset, and
so the run is not published. Warnings fail with severity WARN and stop nothing.

(dagster-ge cannot be used: it requires great_expectations < 1.0.)
"""

# No `from __future__ import annotations` here: Dagster reads the context parameter's annotation at definition time.

from typing import Any, Sequence

import dagster as dg

from pipelines import extract_spec as spec
from pipelines.quality import suites
from pipelines.quality.runner import ExpectationResult, SuiteResult, run_suite
from pipelines.warehouse import Warehouse


def build_suite_asset_checks(asset_key: dg.AssetKey | Sequence[str] | str, suite_name: str) -> dg.AssetChecksDefinition:
    """Asset checks for `asset_key`, one per expectation of the suite; they need the "warehouse" resource."""
    asset_key = dg.AssetKey.from_coercible(asset_key)
    suite_json = suites.read_suite_json(suite_name)
    specs = []
    for expectation in suite_json["expectations"]:
        meta = expectation["meta"]
        specs.append(dg.AssetCheckSpec(
            name=meta["name"],
            asset=asset_key,
            description=meta["description"],
            blocking=meta["severity"] == suites.FATAL,
            metadata={
                "category": f"{meta['category']} / {meta['subcategory']}",
                "severity": meta["severity"],
                "threshold_pct": float(meta["threshold"]),
                "expectation_type": expectation["type"],
            },
        ))

    @dg.multi_asset_check(
        specs=specs,
        name=f"{suite_name.replace('.', '_')}_data_quality",
        description=f"Runs the GX suite {suite_name} (expectations/{suite_name.replace('.', '/')}.json) inside "
                    "the run's DuckDB build file.",
    )
    def suite_checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
        run_id = context.run.run_id  # an asset check's context has no run_id of its own
        result = run_suite(
            warehouse.build_path(run_id),
            suite_name,
            run_id=run_id,
            # Each run builds a new file: carry the published database's earlier results into dq.check_results.
            history_database=warehouse.published_path,
            duckdb_config=duckdb_settings(warehouse),
        )
        failed = result.failed()
        context.log.info(f"{suite_name}: {len(result.results) - len(failed)} of {len(result.results)} checks "
                         f"passed; Data Docs: {result.data_docs_index}")
        for check in result.results:
            yield dg.AssetCheckResult(
                asset_key=asset_key,
                check_name=check.name,
                passed=check.passed,
                severity=dg.AssetCheckSeverity.ERROR if check.fatal else dg.AssetCheckSeverity.WARN,
                description=check.description,
                metadata=check_metadata(check, result),
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


def cohort_asset_checks() -> list[dg.AssetChecksDefinition]:
    """Checks for every study's cohort asset ["cohort", <study>], suite "cohort.<study>"."""
    return [
        build_suite_asset_checks(["cohort", suite["meta"]["study_id"]], suite["name"])
        for suite in suites.cohort_suites()
    ]


# ---------------------------------------------------------------------------------------------------------------
# What the Dagster UI shows for one check
# ---------------------------------------------------------------------------------------------------------------
def check_metadata(check: ExpectationResult, suite_result: SuiteResult) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "expectation": dg.MetadataValue.md(f"`{check.expectation_type}` on `{check.table}`"
                                           + (f", column `{check.column}`" if check.column else "")),
        "category": f"{check.category} / {check.subcategory}",
        "severity": check.severity,
        "threshold_pct": check.threshold,
        "observed_value": dg.MetadataValue.json(check.observed_value)
        if isinstance(check.observed_value, (list, dict)) else _text_or_number(check.observed_value),
        "example_rows": dg.MetadataValue.md(markdown_table(check.example_rows)),
    }
    if check.unexpected_count is not None:
        metadata["unexpected_count"] = int(check.unexpected_count)
    if check.unexpected_percent is not None:
        metadata["unexpected_percent"] = float(check.unexpected_percent)
    if check.element_count is not None:
        metadata["element_count"] = int(check.element_count)
    if check.error:
        metadata["error"] = dg.MetadataValue.text(check.error)
    if suite_result.data_docs_index is not None:
        metadata["data_docs"] = dg.MetadataValue.path(str(suite_result.data_docs_index))
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
