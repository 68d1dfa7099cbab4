"""Dagster asset checks that run a data-quality suite on an asset of the run's DuckDB build file (or, in a run whose
stages ran on Spark, on Spark's tables of the phenotype and cohort layers: SPARK_CHECKED_LAYERS).

``build_suite_asset_checks(["staging", "person"], "staging.person")`` returns one check, ``staging_data_quality``
on staging/person, computed by one suite run (one GX validation), that reports every expectation of the suite as a
sub-result; ``cohort_asset_checks()`` gives each study's cohort asset one check, ``cohort_data_quality``, the same
way. ``phenotype_asset_checks()`` runs the phenotype suite once for all phenotype assets and gives each phenotype
asset one check, ``phenotype_data_quality``, with every check of the suite for that phenotype as sub-results
(``packaged_check_result``). A check is ``blocking`` when its suite has a fatal expectation: when a fatal
sub-check fails it fails with severity ERROR, Dagster does not run the assets downstream of the checked asset, and
so the run is not published; when only warnings fail it fails with severity WARN and stops nothing. Its
description names each failing sub-check with its count.

(dagster-ge cannot be used: it requires great_expectations < 1.0.)
"""

# No `from __future__ import annotations` here: Dagster reads the context parameter's annotation at definition time.

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import dagster as dg

from pipelines import extract_spec as spec
from pipelines.cohorts.settings import StudySettings
from pipelines.cohorts.study import StudyDefinition, load_studies
from pipelines.engine.session import DUCKDB, SPARK
from pipelines.quality import suites
from pipelines.quality.runner import DIAGNOSTICS_FILE, ExpectationResult, SuiteResult, render_data_docs, run_suite
from pipelines.warehouse import Warehouse


STAGING_CHECK_NAME = "staging_data_quality"
COHORT_CHECK_NAME = "cohort_data_quality"


def build_suite_asset_checks(asset_key: dg.AssetKey | Sequence[str] | str, suite_name: str,
                             check_name: str = STAGING_CHECK_NAME) -> dg.AssetChecksDefinition:
    """The one asset check `check_name` on `asset_key` that runs the stored suite `suite_name` and reports each of its
    expectations as a sub-result; it needs the "warehouse" resource."""
    return _suite_asset_checks(asset_key, suites.read_suite_json(suite_name), lambda context: suite_name, check_name)


def _suite_asset_checks(asset_key: dg.AssetKey | Sequence[str] | str, suite_json: dict[str, Any],
                        suite_for_run: Callable[[Any], str | dict[str, Any]], check_name: str,
                        required_resource_keys: frozenset[str] = frozenset()) -> dg.AssetChecksDefinition:
    """One Dagster asset check, `check_name`, computed by one GX validation of the suite `suite_for_run(context)`
    returns (a stored suite's name or a suite's JSON form), with every expectation of `suite_json` as a sub-result
    (packaged_check_result). It is blocking when any expectation is fatal."""
    asset_key = dg.AssetKey.from_coercible(asset_key)
    suite_name = suite_json["name"]
    expectations = suite_json["expectations"]
    spec = packaged_check_spec(asset_key, check_name, suite_name, expectations)

    @dg.multi_asset_check(
        specs=[spec],
        name=f"{suite_name.replace('.', '_')}_data_quality",
        description=f"Runs the GX suite {suite_name} {where_checked(suite_name)}.",
        required_resource_keys={Warehouse.resource_key, *required_resource_keys},
    )
    def suite_checks(context: dg.AssetCheckExecutionContext):
        warehouse: Warehouse = getattr(context.resources, Warehouse.resource_key)
        result = run_check_suite(context, warehouse, suite_for_run(context))
        yield packaged_check_result(asset_key, check_name, expectations, result.results, result,
                                    warehouse.published_data_docs_index,
                                    metadata={"suite": suite_name, **engine_checked_on(warehouse, suite_name)})

    return suite_checks


def packaged_check_spec(asset_key: dg.AssetKey, check_name: str, suite_name: str,
                        expectations: Sequence[dict[str, Any]]) -> dg.AssetCheckSpec:
    """The spec of a check that reports every expectation of a suite as a sub-result: blocking when any is fatal;
    its metadata `checks` lists the sub-checks with their severity (the asset-graph snapshot shows them)."""
    return dg.AssetCheckSpec(
        name=check_name,
        asset=asset_key,
        description=f"The {len(expectations)} checks of the GX suite {suite_name}, reported together (metadata "
                    "`checks`); fatal ones block: "
                    + "; ".join(f"{e['meta']['name']} ({e['meta']['severity']}): {e['meta']['description']}"
                                for e in expectations),
        blocking=any(e["meta"]["severity"] == suites.FATAL for e in expectations),
        metadata={"suite": suite_name,
                  "checks": dg.MetadataValue.json([{"name": e["meta"]["name"], **_spec_metadata(e)}
                                                   for e in expectations])},
    )


def run_check_suite(context: dg.AssetCheckExecutionContext, warehouse: Warehouse,
                    suite: str | dict[str, Any]) -> SuiteResult:
    """Validate one suite in the run's build file, as every data-quality check step does. The Data Docs are rendered
    once per run, by the publish step (runner.render_data_docs); a step whose suite has a failing fatal check
    renders them at once, so a run that a blocking check stops still leaves its Data Docs in its build folder
    (a failing warning stops nothing: the publish step renders it with the rest)."""
    run_id = context.run.run_id  # an asset check's context has no run_id of its own
    docs_dir = warehouse.build_data_docs_dir(run_id)
    on_spark = checked_on_spark(warehouse, suite)
    result = run_suite(
        warehouse.build_path(run_id),
        suite,
        spark=warehouse.spark_session() if on_spark else None,
        run_id=run_id,
        # Each run builds a new file: carry the published database's earlier results into dq.check_results.
        history_database=warehouse.published_path,
        duckdb_config=duckdb_settings(warehouse),
        docs_dir=docs_dir,
        build_data_docs=False,
        diagnostics_file=warehouse.diagnostics_dir(run_id) / DIAGNOSTICS_FILE,
    )
    failed = result.failed()
    if not result.fatal_passed:
        render_data_docs(docs_dir)
    context.log.info(f"{result.suite}: {len(result.results) - len(failed)} of {len(result.results)} checks "
                     f"passed on {'Spark' if on_spark else 'DuckDB'}; Data Docs once published: "
                     f"{warehouse.published_data_docs_index}")
    return dataclasses.replace(result, data_docs_index=docs_dir / "index.html")


# The layers a run with engine = spark builds on Spark: their suites check Spark's tables (runner.run_suites with
# spark=). The staging tables are loaded by DuckDB's ingest in every run, and checked there.
SPARK_CHECKED_LAYERS = (suites.PHENOTYPE_LAYER, suites.COHORT_LAYER)


def where_checked(suite_name: str) -> str:
    """Where a run validates the suite, in words for a check's description (written when the definitions are
    built, before any run has chosen its engine)."""
    if suite_name.split(".", 1)[0] in SPARK_CHECKED_LAYERS:
        return "on the run's engine (its DuckDB build file, or its Spark tables in a run on Spark)"
    return "in the run's DuckDB build file (the ingest loads it on every engine)"


def engine_checked_on(warehouse: Warehouse, suite: str) -> dict[str, str]:
    """What a check result records about the engine its suite ran on (metadata "engine", as a stage's
    materialisations record the run's engine: Warehouse.engine_metadata): in a run on Spark, Spark for the layers
    it builds there and DuckDB for the staging suites."""
    return {"engine": SPARK if checked_on_spark(warehouse, suite) else DUCKDB}


def checked_on_spark(warehouse: Warehouse, suite: str | dict[str, Any]) -> bool:
    """Whether the run validates `suite` (a stored suite's name or a suite's JSON form) on its Spark session."""
    name = suite if isinstance(suite, str) else suite["name"]
    return warehouse.on_spark and name.split(".", 1)[0] in SPARK_CHECKED_LAYERS


def duckdb_settings(warehouse: Warehouse) -> dict[str, str]:
    """The settings of the connections the checks open: they write the build file (dq.check_results), so the
    warehouse's settings of its every writer (memory, threads, spill, the vacuum kept off)."""
    return warehouse.connection_settings()


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
                               COHORT_CHECK_NAME, required_resource_keys=frozenset({StudySettings.resource_key}))


PHENOTYPE_CHECK_NAME = "phenotype_data_quality"


def phenotype_asset_checks(phenotype_asset_keys: Sequence[dg.AssetKey] | None = None) -> dg.AssetChecksDefinition:
    """One check on every phenotype asset, from one run of the suite "phenotype.phenotypes".

    The suite runs once per run over phenotype.person_summary and judges each phenotype separately. Each phenotype
    asset (asset key ``[..., <phenotype id>]``) gets one Dagster asset check, ``phenotype_data_quality``, that
    reports every check of the suite for that phenotype as its sub-results (a table in its metadata, with the
    counts and example rows of each failing one). It is blocking: when a fatal sub-check fails it fails with
    severity ERROR and stops what is downstream; when only warnings fail it fails with severity WARN and stops
    nothing. One check per phenotype rather than one per (phenotype, suite check): each Dagster check result is a
    few events in the instance's event log at a fixed cost, and ~360 of them cost minutes on a loaded machine
    whatever the data size.

    phenotype_asset_keys: the phenotype assets to check (default: every asset of the phenotype multi-asset).
    """
    if phenotype_asset_keys is None:
        from pipelines.phenotypes.assets import PHENOTYPE_ASSET_KEYS  # loads the phenotype library

        phenotype_asset_keys = PHENOTYPE_ASSET_KEYS
    suite_name = suites.PHENOTYPE_SUITE
    expectations = suites.read_suite_json(suite_name)["expectations"]
    phenotype_of_key = {key: key.path[-1] for key in phenotype_asset_keys}
    specs = [packaged_check_spec(key, PHENOTYPE_CHECK_NAME, suite_name, expectations)
             for key in phenotype_asset_keys]

    @dg.multi_asset_check(
        specs=specs,
        name="phenotype_data_quality",
        can_subset=True,
        description=f"Runs the GX suite {suite_name} (expectations/{suite_name.replace('.', '/')}.json) once over "
                    f"phenotype.person_summary {where_checked(suite_name)}, and reports it per phenotype.",
    )
    def phenotype_checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
        result = run_check_suite(context, warehouse, suite_name)
        for check_key in context.selected_asset_check_keys:
            yield phenotype_check_result(check_key.asset_key, phenotype_of_key[check_key.asset_key], expectations,
                                         result, warehouse.published_data_docs_index,
                                         metadata=engine_checked_on(warehouse, suite_name))

    return phenotype_checks


def phenotype_check_result(asset_key: dg.AssetKey, phenotype_id: str, expectations: Sequence[dict[str, Any]],
                           suite_result: SuiteResult, data_docs_index: Path | None = None,
                           metadata: dict[str, Any] | None = None) -> dg.AssetCheckResult:
    """The one check result of a phenotype: every check of the phenotype suite, judged for this phenotype, as a
    sub-result (packaged_check_result), with `metadata` besides."""
    by_check = {(check.name, check.phenotype_id): check for check in suite_result.results}
    checks: list[ExpectationResult] = []
    for expectation in expectations:
        meta = expectation["meta"]
        # No result for this phenotype: it is not in phenotype.definitions of this run, or the check could not be
        # evaluated at all (then the suite reports it once, without a phenotype).
        check = by_check.get((meta["name"], phenotype_id)) or by_check.get((meta["name"], None))
        checks.append(check or _not_evaluated_result(
            expectation, suite_result.table,
            f"No result: {phenotype_id} is not in phenotype.definitions of this run.", phenotype_id))
    return packaged_check_result(asset_key, PHENOTYPE_CHECK_NAME, expectations, checks, suite_result,
                                 data_docs_index, metadata={**(metadata or {}), "phenotype_id": phenotype_id})


def packaged_check_result(asset_key: dg.AssetKey, check_name: str, expectations: Sequence[dict[str, Any]],
                          results: Sequence[ExpectationResult], suite_result: SuiteResult,
                          data_docs_index: Path | None = None,
                          metadata: dict[str, Any] | None = None) -> dg.AssetCheckResult:
    """One Dagster check result that reports each expectation of a suite as a sub-result.

    It fails when any sub-check fails: with severity ERROR when a fatal one fails (a blocking check then stops what
    is downstream), else WARN (which stops nothing). The description names each failing sub-check with its
    severity and count (the on-call engineer sees which check failed in the run's log and the asset's check list,
    without opening Data Docs); the metadata holds a table of every sub-check, the names of the failing ones
    (`checks_failed`, the fatal ones again in `fatal_checks_failed`), every sub-check's verdict as JSON
    (`sub_checks`) and, for each failing one, its own metadata under `<check>/` (counts, example rows).
    An expectation of `expectations` without a result in `results` is reported as failed (it was not evaluated).
    One Dagster check per table, study or phenotype rather than one per expectation: each check result is a few
    writes to the instance's event log at a fixed cost whatever the data size (docs/performance.md).
    """
    by_name = {check.name: check for check in results}
    checks = [by_name.get(e["meta"]["name"]) or _not_evaluated_result(
        e, suite_result.table, "No result: the suite run returned none for this check.") for e in expectations]
    failed = [check for check in checks if not check.passed]
    fatal_failed = [check for check in failed if check.fatal]
    result_metadata: dict[str, Any] = {
        **(metadata or {}),
        "checks": dg.MetadataValue.md(markdown_table([_sub_check_row(check) for check in checks])),
        "checks_passed": len(checks) - len(failed),
        "checks_failed": dg.MetadataValue.json([check.name for check in failed]),
        "fatal_checks_failed": dg.MetadataValue.json([check.name for check in fatal_failed]),
        "sub_checks": dg.MetadataValue.json([_sub_check_verdict(check) for check in checks]),
    }
    if suite_result.data_docs_index is not None:
        result_metadata["data_docs"] = dg.MetadataValue.path(str(data_docs_index or suite_result.data_docs_index))
    for check in failed:  # the detail of each failing sub-check, under its name
        for key, value in check_metadata(check, suite_result, data_docs_index).items():
            if key not in ("phenotype_id", "data_docs"):
                result_metadata[f"{check.name}/{key}"] = value
    if failed:
        # Fatal ones first: they are what stopped the run.
        description = "failed: " + "; ".join(f"{check.name} ({check.severity}): {_verdict_text(check)}"
                                             for check in [*fatal_failed, *(c for c in failed if not c.fatal)])
    else:
        description = f"all {len(checks)} passed: " + "; ".join(
            f"{check.name} ({check.severity}): {check.description}" for check in checks)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=not failed,
        severity=_severity(suites.FATAL if fatal_failed else suites.WARNING),
        description=description,
        metadata=result_metadata,
    )


def _verdict_text(check: ExpectationResult) -> str:
    """What a failing sub-check found, in a few words: its count against its threshold, or its error."""
    if check.error:
        return check.error
    if check.unexpected_count is None:
        return f"observed {check.observed_value}; {check.description}"
    found = f"{check.unexpected_count} failing"
    if check.element_count is not None:
        found += f" of {check.element_count}"
    if check.unexpected_percent is not None:
        found += f" ({check.unexpected_percent:.2f}%, threshold {check.threshold:g}%)"
    return f"{found}; {check.description}"


def _sub_check_verdict(check: ExpectationResult) -> dict[str, Any]:
    return {"name": check.name, "severity": check.severity, "passed": check.passed,
            "unexpected_count": check.unexpected_count, "unexpected_percent": check.unexpected_percent,
            "element_count": check.element_count, "threshold_pct": check.threshold, "error": check.error}


def _not_evaluated_result(expectation: dict[str, Any], table: str, error: str,
                          phenotype_id: str | None = None) -> ExpectationResult:
    """A failed result for an expectation the suite run gave no result for, saying why (`error`)."""
    meta = expectation["meta"]
    extra = {"phenotype_id": phenotype_id} if phenotype_id is not None else {}
    return ExpectationResult(
        name=meta["name"], expectation_type=expectation["type"], table=table, column=None,
        category=meta["category"], subcategory=meta["subcategory"], severity=meta["severity"],
        threshold=float(meta["threshold"]), description=meta["description"], observed_value=None,
        unexpected_count=None, unexpected_percent=None, element_count=None, example_rows=(), passed=False,
        error=error, **extra)


def _sub_check_row(check: ExpectationResult) -> dict[str, Any]:
    return {
        "check": check.name,
        "severity": check.severity,
        "passed": "yes" if check.passed else "NO",
        "failing rows": check.unexpected_count,
        "rows judged": check.element_count,
        "failing %": None if check.unexpected_percent is None else f"{check.unexpected_percent:.2f}",
        "threshold %": f"{check.threshold:g}",
        "error": check.error,
    }


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
