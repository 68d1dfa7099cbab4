"""Run data-quality suites on a DuckDB database (or on Spark's tables of a run whose stages ran on Spark): GX
validates inside the engine, results go to dq.check_results.

    result = run_suite("build/leg_cramps.duckdb", "staging.person")
    results = run_layer("build/leg_cramps.duckdb", "staging")

A run has three phases, and never two connections to the database at once (DuckDB allows one writing process, and
connections of one process must share one configuration):

1. prepare, with one DuckDB connection: the ``dq`` schema, ``dq.valid_icd10cm_codes`` and ``dq.check_results``;
2. validate, through a GX SQL datasource (SQLAlchemy + duckdb-engine, read-only): every expectation is a SQL query
   that DuckDB answers; no table is pulled into Python. The GX engines are disposed afterwards, so nothing keeps
   the file open;
3. record, with one DuckDB connection: one row per expectation appended to ``dq.check_results``.

With ``spark=session`` phase 2 validates the tables of that Spark session instead, through GX's Spark datasource:
GX's column expectations compute on Spark DataFrames, and the project's SQL checks run their DuckDB SQL through the
engine layer's translation (violating_rows.py); the same checks give the same verdicts and counts on both engines
(tests/spark/test_quality_on_spark.py). Phases 1 and 3 stay on DuckDB (the reference codes are also written to
Spark when a suite reads them), so ``dq.check_results`` is the run's DuckDB table either way.

GX also writes its Data Docs site (static HTML) to ``docs_dir`` (default ``<database folder>/data_docs/``), keeping
every validation result it has seen there, so the site lists earlier suites and runs of that folder too. A pipeline
run passes its own folder (``Warehouse.build_data_docs_dir``), so runs never share a site. No network is used (GX
analytics are off).

Disclosure (docs/disclosure.md): ``dq.check_results`` and the Data Docs are published, so they carry no row of the
data (no person id, no date of a person) and no count of 1 to threshold-1 rows (the site floor) nor one that gives
such a count away (published_counts: one decision per suite result for both): GX's store writes each validation
result in that form (PublishableValidationResultsStore), so no other form reaches the Data Docs folder. The example
rows of failing checks go to a diagnostics file beside the database (``<database stem>_diagnostics/``), which is never
published; the ExpectationResult objects keep them for the Dagster checks of the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import duckdb
import great_expectations as gx
import pyarrow as pa
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.data_context.store.validation_results_store import ValidationResultsStore
from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from pipelines import tables
from pipelines.disclosure import site_floor, small_count_sql
from pipelines.quality import suites
from pipelines.quality.published_counts import (SQL_CHECK_TYPES, Publication, check_name, derived_hidden, hidden_counts,
                                                printed_counts_of_results, printed_counts_of_validation, publication,
                                                publishable_counts)
from pipelines.quality.gx_configuration_cache import expectation_configurations_cached
from pipelines.quality.gx_duckdb import duckdb_results_buffered
from pipelines.quality.offline_docs import make_data_docs_offline
from pipelines.quality.valid_codes import (VALID_ICD10CM_TABLE, ensure_valid_icd10cm_codes,
                                          ensure_valid_icd10cm_codes_on_spark)
# Importing violating_rows registers expect_no_violating_rows with GX, so the suites can name it.
from pipelines.quality.violating_rows import EXAMPLE_ROW_LIMIT, json_safe
from pipelines.sql_quoting import quote_identifier, quote_literal

CHECK_RESULTS_TABLE = tables.CHECK_RESULTS
DATA_DOCS_FOLDER = "data_docs"
# GX's stores of the suites and results the Data Docs show, kept inside the Data Docs folder.
_SUITES_FOLDER = "_expectation_suites"
_VALIDATION_RESULTS_FOLDER = "_validation_results"
DATA_DOCS_INDEX_LIMIT = 500  # validation results listed on the Data Docs index page

CHECK_RESULTS_COLUMNS = """
    run_id VARCHAR,
    checked_at TIMESTAMP,
    suite VARCHAR,
    expectation VARCHAR,
    expectation_type VARCHAR,
    table_name VARCHAR,
    column_name VARCHAR,
    category VARCHAR,
    subcategory VARCHAR,
    severity VARCHAR,
    threshold_pct DOUBLE,
    unexpected_count BIGINT,
    unexpected_pct DOUBLE,
    element_count BIGINT,
    observed_value VARCHAR,
    passed BOOLEAN,
    error VARCHAR,
    phenotype_id VARCHAR,
    suppressed BOOLEAN
"""
# Columns added after the first release: added to an existing dq.check_results (a published database of an older
# version) before this version writes to it.
ADDED_CHECK_RESULTS_COLUMNS = {"phenotype_id": "VARCHAR", "suppressed": "BOOLEAN"}
DIAGNOSTICS_FILE = "data_quality_examples.jsonl"

# Keys of a GX result that hold rows or values of the data: never in the published Data Docs.
ROW_LEVEL_RESULT_KEYS = ("partial_unexpected_list", "partial_unexpected_index_list", "partial_unexpected_counts",
                         "unexpected_list", "unexpected_index_list", "unexpected_index_query", "unexpected_rows",
                         "examples")


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one check (one GX expectation) in DQD terms."""

    name: str
    expectation_type: str
    table: str
    column: str | None
    category: str
    subcategory: str
    severity: str  # fatal | warning
    threshold: float  # allowed failing percentage
    description: str
    observed_value: Any  # GX's observed value; for row-level column checks, the failing percentage
    unexpected_count: int | None  # failing rows (None for table-level checks that count nothing)
    unexpected_percent: float | None
    element_count: int | None  # rows judged (the DQD denominator)
    example_rows: tuple[dict[str, Any], ...]
    passed: bool  # no error, and the failing percentage is not above the threshold
    error: str | None = None  # the exception GX caught, when the check could not be evaluated
    phenotype_id: str | None = None  # the phenotype judged, for checks judged per phenotype
    missing_count: int | None = None  # empty values (GX's column checks; their percentage is of the others)

    @property
    def fatal(self) -> bool:
        return self.severity == suites.FATAL


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    table: str
    run_id: str
    checked_at: datetime.datetime
    results: tuple[ExpectationResult, ...]
    data_docs_index: Path | None

    @property
    def passed(self) -> bool:
        """Every check passed, warnings included."""
        return all(r.passed for r in self.results)

    @property
    def fatal_passed(self) -> bool:
        """Every fatal check passed: the data is fit for the next steps."""
        return all(r.passed for r in self.results if r.fatal)

    def failed(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.passed]

    def result(self, name: str, phenotype_id: str | None = None) -> ExpectationResult:
        for r in self.results:
            if r.name == name and r.phenotype_id == phenotype_id:
                return r
        raise KeyError(f"{self.suite} has no check {name!r}" + (f" of {phenotype_id!r}" if phenotype_id else ""))


def data_docs_dir(database_path: str | Path) -> Path:
    return Path(database_path).resolve().parent / DATA_DOCS_FOLDER


def diagnostics_path(database_path: str | Path) -> Path:
    """The run's non-published file of example rows: `<database folder>/<database stem>_diagnostics/...jsonl`."""
    path = Path(database_path).resolve()
    return path.parent / f"{path.stem}_diagnostics" / DIAGNOSTICS_FILE


def run_suite(database_path: str | Path, suite_name: str | dict[str, Any], **options: Any) -> SuiteResult:
    """Run one suite (e.g. "staging.person", or a suite's JSON form) on the database and record its results;
    options as run_suites."""
    return run_suites(database_path, [suite_name], **options)[0]


def run_layer(database_path: str | Path, layer: str = suites.STAGING_LAYER, **options: Any) -> list[SuiteResult]:
    """Run every suite of a layer (expectations/<layer>/*.json); options as run_suites."""
    return run_suites(database_path, suites.layer_suite_names(layer), **options)


def run_suites(database_path: str | Path, suite_names: Sequence[str | dict[str, Any]], *, run_id: str | None = None,
               history_database: str | Path | None = None, build_data_docs: bool = True,
               duckdb_config: Mapping[str, str] | None = None,
               small_cell_threshold: int | None = None,
               docs_dir: str | Path | None = None,
               diagnostics_file: str | Path | None = None,
               spark: Any = None,
               column_examples: bool = True) -> list[SuiteResult]:
    """Validate the suites on the database, append the results to dq.check_results and build Data Docs.

    suite_names: stored suites by name ("staging.person"), or suites in their JSON form built for this run (the
        cohort suites, from the study as the run resolves it).

    run_id: names this run in dq.check_results and Data Docs (the Dagster run id; a new UUID by default).
    history_database: a database whose dq.check_results is copied into this one when this one has none yet. Each
        pipeline run builds a fresh database file, so the checks pass the published database here to keep the
        results of earlier runs (the table is append-only across runs).
    build_data_docs: also write the Data Docs site (<docs_dir>/index.html).
    docs_dir: the Data Docs folder (default: <database folder>/data_docs).
    duckdb_config: DuckDB settings for every connection opened here (memory_limit, threads, temp_directory).
    small_cell_threshold: counts of 1 to threshold-1 rows are not published (default: the site floor).
    diagnostics_file: where the example rows of failing checks go; never inside a folder that is published
        (default: diagnostics_path(database_path)).
    spark: a SparkSession whose catalogue holds the checked tables (a run whose stages ran on Spark): GX validates
        them there, through its Spark datasource, and the SQL checks run through the engine layer's translation
        (violating_rows.py); the results are recorded in the DuckDB database all the same.
    column_examples: fetch the example values of GX's column expectations, one query per expectation whether or
        not it finds any (on Spark, a job each). False leaves them out, for a caller that reads verdicts and counts
        only: the counts come from GX's other queries and stay the same, and the SQL checks keep their examples
        (one query gives their count and examples).
    """
    database_path = Path(database_path).resolve()
    if not database_path.exists():
        raise FileNotFoundError(database_path)
    run_id = run_id or str(uuid.uuid4())
    threshold = site_floor() if small_cell_threshold is None else small_cell_threshold
    checked_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    suite_jsons = [name if isinstance(name, dict) else suites.read_suite_json(name) for name in suite_names]

    config = dict(duckdb_config or {})

    # 1. prepare
    con = duckdb.connect(str(database_path), config=config)
    try:
        ensure_valid_icd10cm_codes(con)
        ensure_check_results_table(con, history_database)
    finally:
        con.close()
    if spark is not None and any(VALID_ICD10CM_TABLE in json.dumps(suite) for suite in suite_jsons):
        ensure_valid_icd10cm_codes_on_spark(spark)

    # 2. validate
    docs_dir = Path(docs_dir) if docs_dir is not None else data_docs_dir(database_path)
    validations = _validate_with_gx(database_path, suite_jsons, run_id, checked_at, docs_dir, build_data_docs,
                                    config, threshold, spark, column_examples)
    docs_index = docs_dir / "index.html" if build_data_docs else None

    results = [
        SuiteResult(
            suite=suite_json["name"],
            table=suite_json["meta"]["table"],
            run_id=run_id,
            checked_at=checked_at,
            results=tuple(result for r in validation.results
                          for result in expectation_results(r, suite_json["meta"]["table"])),
            data_docs_index=docs_index,
        )
        for suite_json, validation in zip(suite_jsons, validations)
    ]

    # 3. record
    write_diagnostics(Path(diagnostics_file) if diagnostics_file is not None else diagnostics_path(database_path),
                      results)
    con = duckdb.connect(str(database_path), config=config)
    try:
        record_results(con, results, threshold, {suite["name"]: publication(suite, threshold) for suite in suite_jsons})
    finally:
        con.close()
    return results


def write_diagnostics(path: Path, suite_results: Sequence[SuiteResult]) -> None:
    """Append the example rows of every failing check to the run's diagnostics file (JSON lines; not published)."""
    lines = [json.dumps({"run_id": s.run_id, "suite": s.suite, "expectation": r.name, "phenotype_id": r.phenotype_id,
                         "unexpected_count": r.unexpected_count, "example_rows": list(r.example_rows)}, default=str)
             for s in suite_results for r in s.results if r.example_rows]
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as file:
            file.write("\n".join(lines) + "\n")


def publishable_results(results: Sequence[Mapping[str, Any]], published: Publication) -> list[dict[str, Any]]:
    """A suite's GX expectation results (JSON form) as the Data Docs may show them: no row-level values, and no
    count of 1 to threshold-1 rows nor anything that gives one away (published_counts: the complements a reader
    forms from the counts of all the suite's results, their percentages, GX's observed value)."""
    hidden = hidden_counts(printed_counts_of_validation(results), published)
    shown = []
    for expectation_result in results:
        name = check_name(expectation_result.get("expectation_config") or {})
        result = {key: value for key, value in (expectation_result.get("result") or {}).items()
                  if key not in ROW_LEVEL_RESULT_KEYS}
        result = publishable_counts(result, hidden.get((name, None), set()))
        details = result.get("details")
        if isinstance(details, Mapping) and isinstance(details.get("per_phenotype"), Mapping):
            result["details"] = {**details, "per_phenotype": {
                phenotype: publishable_counts({key: value for key, value in found.items()
                                               if key not in ROW_LEVEL_RESULT_KEYS},
                                              hidden.get((name, phenotype), set()))
                for phenotype, found in details["per_phenotype"].items()}}
        shown.append({**expectation_result, "result": result})
    return shown


class PublishableValidationResultsStore(ValidationResultsStore):
    """GX's validation results store (the Data Docs' source) that writes each result as its `publishable_result`:
    the unpublishable rows and small counts never reach the Data Docs folder, and each result is serialised once
    (rewriting the stored results afterwards cost a read and a second write per suite)."""

    publication: Publication | None = None  # the suite being validated (None: the site floor)

    def serialize(self, value):
        published = self.publication or Publication(site_floor())
        suite_result = value.to_json_dict()
        suite_result["results"] = publishable_results(suite_result.get("results") or [], published)
        return self._expectationSuiteValidationResultSchema.dumps(suite_result, indent=2, sort_keys=True)


def _validation_keys(context, run_id: str, suite_names: Sequence[str]) -> list[Any]:
    """The stored validation results of these suites in this run. Not every result of the run: each Dagster check
    step validates its own suites, and rendering the earlier steps' results again made the check steps of a run
    cost quadratically in their number."""
    names = set(suite_names)
    return [key for key in context.validation_results_store.list_keys()
            if key.run_id.run_name == run_id and key.expectation_suite_identifier.name in names]


# ---------------------------------------------------------------------------------------------------------------
# GX
# ---------------------------------------------------------------------------------------------------------------
def _gx_context(docs_dir: Path):
    """An ephemeral GX context whose suites, validation results and Data Docs are kept in docs_dir.

    The stores are on disk so that the site keeps every suite and earlier result: GX removes the pages of suites
    its store no longer has, and the Dagster checks run one suite at a time.
    """
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        # A store name of our own: GX replaces a store named like its default whose class is not its default class
        # (DataContextConfig._init_stores), and leaves the default one unused in memory.
        validation_results_store_name="publishable_validation_results_store",
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    for store_name, store_class, folder in (
        (config.expectations_store_name, "ExpectationsStore", _SUITES_FOLDER),
        (config.validation_results_store_name, PublishableValidationResultsStore.__name__,
         _VALIDATION_RESULTS_FOLDER),
    ):
        config.stores[store_name] = {
            "class_name": store_class,
            "module_name": ("pipelines.quality.runner" if store_class == PublishableValidationResultsStore.__name__
                            else "great_expectations.data_context.store"),
            # No .ge_store_backend_id file: GX would write a random id into the published folder (nothing here reads
            # it), and two runs on the same data would publish different files.
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir / folder),
                              "suppress_store_backend_id": True},
        }
    config.data_docs_sites = {
        "local_site": {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            # The index lists the latest results only, so building it does not slow down as runs accumulate.
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                   "validation_results_limit": DATA_DOCS_INDEX_LIMIT},
        }
    }
    return gx.get_context(project_config=config, mode="ephemeral")


def load_suite(suite_json: dict[str, Any]) -> gx.ExpectationSuite:
    """A GX suite from its JSON. GX drops (and only logs) expectations it cannot build, so count them."""
    suite = gx.ExpectationSuite(name=suite_json["name"], expectations=suite_json["expectations"],
                                meta=suite_json.get("meta"))
    if len(suite.expectations) != len(suite_json["expectations"]):
        raise ValueError(f"suite {suite_json['name']}: GX accepted {len(suite.expectations)} of "
                         f"{len(suite_json['expectations'])} expectations (see the GX log for the invalid ones)")
    return suite


class _KeptDuckDBValidation:
    """A GX context and its SQL datasource on one DuckDB file, kept from one run_suites call to the next on the same
    file, Data Docs folder and DuckDB settings (a pipeline run validates its suites in one check step each, 14 at
    100 persons): GX's context, its datasource (whose creation tests the connection) and a table asset per suite
    are built once, where they cost about 0.05 s of CPU per call (GX writes its whole project configuration as YAML
    at each change). What each call validates and stores is as before (tests/quality/test_quality_gx_speed.py
    compares dq.check_results and the stored results with a context built per call). No connection outlives a call
    (`dispose_gx_engines` after each; GX reflects each batch's table anew) and each call tests its asset's
    connection again, as adding the asset did. One is kept per process, the latest."""

    def __init__(self, key: tuple, docs_dir: Path, database_path: Path, duckdb_config: dict[str, str]) -> None:
        self.key = key
        self.lock = threading.Lock()  # one validation at a time on the kept datasource
        self.context = _gx_context(docs_dir)
        # Read-only: the checks never change data.
        self.datasource = self.context.data_sources.add_sql(
            name="warehouse",
            connection_string=f"duckdb:///{database_path}",
            kwargs={"connect_args": {"read_only": True, "config": duckdb_config}},
        )
        self._batches: dict[str, tuple[str, Any]] = {}  # suite -> (table, its whole-table batch definition)
        self._definitions: set[str] = set()  # the suites whose validation definition the context holds

    def batch_definition(self, suite: str, table: str):
        """The whole-table batch of `table` for `suite` ("staging.person": GX splits schema and table itself)."""
        kept = self._batches.get(suite)
        if kept is not None and kept[0] == table:
            self.datasource.get_asset(suite).test_connection()
            return kept[1]
        if kept is not None:  # the suite now checks another table
            self.datasource.delete_asset(suite)
        batch = self.datasource.add_table_asset(name=suite, table_name=table) \
            .add_batch_definition_whole_table("whole_table")
        self._batches[suite] = (table, batch)
        return batch

    def validation_definition(self, suite: gx.ExpectationSuite, batch) -> gx.ValidationDefinition:
        """The suite's validation definition, replacing one kept from an earlier call (its suite may differ)."""
        definitions = self.context.validation_definitions
        if suite.name in self._definitions:
            definitions.delete(suite.name)
        self._definitions.add(suite.name)
        return definitions.add(gx.ValidationDefinition(name=suite.name, data=batch, suite=suite))


_kept_validation: _KeptDuckDBValidation | None = None
_kept_validation_lock = threading.Lock()


def _duckdb_validation(docs_dir: Path, database_path: Path, duckdb_config: dict[str, str]) -> _KeptDuckDBValidation:
    """The kept GX context and datasource for this file, Data Docs folder and settings (a new one replaces the
    kept one when any differs)."""
    global _kept_validation
    key = (str(docs_dir.resolve()), str(database_path), tuple(sorted(duckdb_config.items())))
    with _kept_validation_lock:
        if _kept_validation is None or _kept_validation.key != key:
            _kept_validation = _KeptDuckDBValidation(key, docs_dir, database_path, duckdb_config)
        return _kept_validation


def _validate_with_gx(database_path: Path, suite_jsons: list[dict], run_id: str, checked_at: datetime.datetime,
                      docs_dir: Path, build_data_docs: bool, duckdb_config: dict[str, str], threshold: int,
                      spark: Any = None, column_examples: bool = True):
    if spark is None:
        kept = _duckdb_validation(docs_dir, database_path, duckdb_config)
        context, datasource, in_use = kept.context, kept.datasource, kept.lock

        def batch(suite: str, table: str):
            return kept.batch_definition(suite, table), None

        def validation_definition(suite: gx.ExpectationSuite, batch_definition) -> gx.ValidationDefinition:
            return kept.validation_definition(suite, batch_definition)
    else:
        context, in_use = _gx_context(docs_dir), contextlib.nullcontext()
        # persist=False: GX would otherwise cache every checked table in the executors' memory; the checks are
        # a few scans each.
        datasource = context.data_sources.add_spark(name="warehouse", persist=False)

        def batch(suite: str, table: str):
            return datasource.add_dataframe_asset(name=suite).add_batch_definition_whole_dataframe("whole_table"), \
                {"dataframe": spark.table(".".join(f"`{part}`" for part in table.split(".")))}

        def validation_definition(suite: gx.ExpectationSuite, batch_definition) -> gx.ValidationDefinition:
            return context.validation_definitions.add(
                gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=suite))
    gx_run_id = gx.RunIdentifier(run_name=run_id, run_time=checked_at)
    validations = []
    with in_use:
        try:
            with duckdb_results_buffered(), expectation_configurations_cached():
                for suite_json in suite_jsons:
                    context.validation_results_store.publication = publication(suite_json, threshold)
                    # One asset per suite: several suites may check one table (the cohort suites of every study).
                    batch_definition, batch_parameters = batch(suite_json["name"], suite_json["meta"]["table"])
                    suite = context.suites.add_or_update(load_suite(suite_json))
                    definition = validation_definition(suite, batch_definition)
                    validations.append(definition.run(
                        batch_parameters=batch_parameters,
                        run_id=gx_run_id,
                        # 0: GX's example query asks for no row (LIMIT 0), which Spark answers without a job.
                        result_format={"result_format": "SUMMARY",
                                       "partial_unexpected_count": EXAMPLE_ROW_LIMIT if column_examples else 0},
                    ))
                if build_data_docs:
                    # The stored results (written publishable by PublishableValidationResultsStore, in the Data
                    # Docs folder) are what the Data Docs render.
                    this_call = _validation_keys(context, run_id, [s["name"] for s in suite_jsons])
                    # Render these suites' pages only (earlier steps' and runs' pages are on disk already), then
                    # the index.
                    context.build_data_docs(resource_identifiers=[
                        *this_call, *(ExpectationSuiteIdentifier(name=s["name"]) for s in suite_jsons)])
                    make_data_docs_offline(docs_dir)  # no CDN at view time (pipelines/quality/offline_docs.py)
        finally:
            if spark is None:
                dispose_gx_engines(datasource)
    return validations


def render_data_docs(docs_dir: str | Path) -> Path | None:
    """Render the Data Docs site of `docs_dir` from the suites and validation results stored there (by run_suites
    with build_data_docs=False), offline; returns its index. A pipeline run renders once, when it publishes:
    rendering costs about a second of CPU per call whatever the data size (GX compiles its page templates anew
    for each build), so rendering after each of a run's check steps cost more than all its validations.
    None when nothing was validated into `docs_dir`."""
    docs_dir = Path(docs_dir)
    if not (docs_dir / _VALIDATION_RESULTS_FOLDER).is_dir():
        return None
    _gx_context(docs_dir).build_data_docs()
    make_data_docs_offline(docs_dir)  # no CDN at view time (pipelines/quality/offline_docs.py)
    return docs_dir / "index.html"


def dispose_gx_engines(datasource) -> None:
    """Close every connection GX opened, so no handle on the DuckDB file outlives the validation.

    The datasource has its own engine (used to test the connection) and its execution engine another.
    """
    engines = []
    if datasource._execution_engine is not None:
        engines.append(datasource._execution_engine.engine)
    if datasource._engine is not None:
        engines.append(datasource._engine)
    for engine in engines:
        engine.dispose()


# ---------------------------------------------------------------------------------------------------------------
# Reading GX results
# ---------------------------------------------------------------------------------------------------------------
def _error_message(validation_result: ExpectationValidationResult) -> str | None:
    """GX's caught exception: {raised_exception, exception_message} or a dict of those per failed metric."""
    info = validation_result.exception_info or {}
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    messages = [v.get("exception_message") or "error" for v in info.values()
                if isinstance(v, dict) and v.get("raised_exception")]
    return "; ".join(messages) or None


def expectation_results(validation_result: ExpectationValidationResult, table: str) -> list[ExpectationResult]:
    """The check results of one GX expectation: one, or one per phenotype for checks judged per phenotype."""
    overall = expectation_result(validation_result, table)
    if overall.expectation_type != "expect_no_violating_rows_per_phenotype" or overall.error:
        # An expectation that could not be evaluated has no per-phenotype results; report it once, failed.
        return [overall]
    per_phenotype = ((validation_result.result or {}).get("details") or {}).get("per_phenotype") or {}
    results = []
    for phenotype_id, found in sorted(per_phenotype.items()):
        percent = found["unexpected_percent"]
        passed = percent <= overall.threshold if percent is not None else found["unexpected_count"] == 0
        results.append(dataclasses.replace(
            overall,
            observed_value=found["unexpected_count"],
            unexpected_count=found["unexpected_count"],
            unexpected_percent=percent,
            element_count=found["element_count"],
            example_rows=tuple(found["examples"][:EXAMPLE_ROW_LIMIT]),
            passed=passed,
            phenotype_id=phenotype_id,
        ))
    return results


def expectation_result(validation_result: ExpectationValidationResult, table: str) -> ExpectationResult:
    config = validation_result.expectation_config
    meta, kwargs = config.meta or {}, config.kwargs
    result = validation_result.result or {}
    error = _error_message(validation_result)

    unexpected_count = result.get("unexpected_count")
    unexpected_percent = result.get("unexpected_percent")
    element_count = result.get("element_count")
    observed_value = result.get("observed_value")
    column = kwargs.get("column") or meta.get("column")

    if config.type == "expect_table_columns_to_match_set" and not error:
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        examples = [{"missing_column": c} for c in mismatched.get("missing") or []] + \
                   [{"unexpected_column": c} for c in mismatched.get("unexpected") or []]
        unexpected_count = len(examples)
        element_count = len(kwargs.get("column_set") or [])
    elif config.type in ("expect_no_violating_rows", "expect_no_violating_rows_per_phenotype"):
        examples = list(result.get("partial_unexpected_list") or [])
    else:  # column expectations: the first few failing values
        examples = [{column: json_safe(v)} for v in result.get("partial_unexpected_list") or []]
        if observed_value is None:
            observed_value = unexpected_percent

    threshold = float(meta.get("threshold", 0))
    if error:
        passed = False
    elif unexpected_percent is not None:
        passed = unexpected_percent <= threshold  # DQD: fails when the failing share is above the threshold
    elif unexpected_count is not None:
        passed = unexpected_count == 0
    else:
        passed = bool(validation_result.success)

    return ExpectationResult(
        name=meta.get("name") or config.type,
        expectation_type=config.type,
        table=table,
        column=column,
        category=meta.get("category", ""),
        subcategory=meta.get("subcategory", ""),
        severity=meta.get("severity", suites.FATAL),
        threshold=threshold,
        description=meta.get("description", ""),
        observed_value=json_safe(observed_value),
        unexpected_count=unexpected_count,
        unexpected_percent=unexpected_percent,
        element_count=element_count,
        example_rows=tuple(examples[:EXAMPLE_ROW_LIMIT]),
        passed=passed,
        error=error,
        missing_count=result.get("missing_count"),
    )


# ---------------------------------------------------------------------------------------------------------------
# dq.check_results
# ---------------------------------------------------------------------------------------------------------------
def _table_exists(con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str) -> bool:
    return con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
        [database, schema, table],
    ).fetchall()[0][0] > 0


def ensure_check_results_table(con: duckdb.DuckDBPyConnection, history_database: str | Path | None = None) -> None:
    """Create dq.check_results; when it is new, start it with the rows of history_database's dq.check_results."""
    con.execute("CREATE SCHEMA IF NOT EXISTS dq")
    [(this_database, this_path)] = con.execute(
        "SELECT database_name, path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    if _table_exists(con, this_database, "dq", "check_results"):
        for column, column_type in ADDED_CHECK_RESULTS_COLUMNS.items():
            con.execute(f"ALTER TABLE {CHECK_RESULTS_TABLE} ADD COLUMN IF NOT EXISTS {column} {column_type}")
        return
    con.execute(f"CREATE TABLE {CHECK_RESULTS_TABLE} ({CHECK_RESULTS_COLUMNS})")  # described in data_dictionary.yaml
    if history_database is None or not Path(history_database).exists():
        return
    history_path = Path(history_database).resolve()
    if this_path and history_path == Path(this_path).resolve():
        return
    con.execute(f"ATTACH {quote_literal(history_path)} AS dq_history (READ_ONLY)")
    try:
        if _table_exists(con, "dq_history", "dq", "check_results"):
            # BY NAME: rows written by an older version with fewer columns get NULL in the new ones.
            con.execute(f"INSERT INTO {CHECK_RESULTS_TABLE} BY NAME SELECT * FROM dq_history.dq.check_results")
    finally:
        con.execute("DETACH dq_history")


def record_results(con: duckdb.DuckDBPyConnection, suite_results: Sequence[SuiteResult],
                   threshold: int | None = None, publications: Mapping[str, Publication] | None = None) -> None:
    """Append the results as they may be published (published_counts: no small count, nor a count, percentage or
    observed value that gives one away, decided as for the suite's Data Docs), then hide every small count of
    the table again (the rows copied from earlier runs). `publications`: a suite's own threshold and what it
    publishes, where it differs from the run's (published_counts.publication)."""
    threshold = site_floor() if threshold is None else threshold
    ensure_check_results_table(con)
    columns = ("run_id", "checked_at", "suite", "expectation", "expectation_type", "table_name", "column_name",
               "category", "subcategory", "severity", "threshold_pct", "unexpected_count", "unexpected_pct",
               "element_count", "observed_value", "passed", "error", "phenotype_id", "suppressed")
    rows = []
    for s in suite_results:
        hidden = hidden_counts(printed_counts_of_results(s.results),
                               (publications or {}).get(s.suite) or Publication(threshold))
        for r in s.results:
            counts = hidden.get((r.name, r.phenotype_id), set())
            derived = derived_hidden(counts)
            observed_hidden = "observed_value" in derived or (
                "unexpected_percent" in derived and r.expectation_type not in SQL_CHECK_TYPES)
            rows.append((
                s.run_id, s.checked_at.replace(tzinfo=None), s.suite, r.name, r.expectation_type, r.table, r.column,
                r.category, r.subcategory, r.severity, r.threshold,
                None if "unexpected_count" in counts else r.unexpected_count,
                None if "unexpected_percent" in derived else r.unexpected_percent,
                None if "element_count" in counts else r.element_count,
                None if r.observed_value is None or observed_hidden else json.dumps(r.observed_value, default=str),
                r.passed, r.error, r.phenotype_id, bool(counts),
            ))
    if rows:
        # One INSERT of every result from an Arrow table: DuckDB's executemany runs one statement per row, which
        # cost about 20 ms per check on a database file (8 s for the 357 phenotype checks whatever the data).
        types = dict(line.strip().rstrip(",").split(" ", 1) for line in CHECK_RESULTS_COLUMNS.strip().splitlines())
        rows_table = pa.table({name: pa.array([row[i] for row in rows]) for i, name in enumerate(columns)})
        con.register("_check_result_rows", rows_table)
        try:
            con.execute(
                f"INSERT INTO {CHECK_RESULTS_TABLE} ({', '.join(columns)}) SELECT "
                + ", ".join(f"CAST({quote_identifier(name)} AS {types[name]})" for name in columns)
                + " FROM _check_result_rows"
            )
        finally:
            con.unregister("_check_result_rows")
    # The count of mismatched column names (expect_table_columns_to_match_set) counts no rows of data.
    counts_rows = "expectation_type <> 'expect_table_columns_to_match_set'"
    con.execute(f"UPDATE {CHECK_RESULTS_TABLE} SET unexpected_count = NULL, unexpected_pct = NULL, "
                f"observed_value = NULL, suppressed = true "
                f"WHERE {counts_rows} AND {small_count_sql('unexpected_count', threshold)}")
    con.execute(f"UPDATE {CHECK_RESULTS_TABLE} SET element_count = NULL, unexpected_pct = NULL, suppressed = true "
                f"WHERE {counts_rows} AND {small_count_sql('element_count', threshold)}")
    con.execute(f"UPDATE {CHECK_RESULTS_TABLE} SET suppressed = false WHERE suppressed IS NULL")


def iter_results(suite_results: Sequence[SuiteResult]) -> Iterator[tuple[SuiteResult, ExpectationResult]]:
    for s in suite_results:
        for r in s.results:
            yield s, r


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pipelines.quality.runner DATABASE [LAYER]`: check a database and print what failed."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("database", type=Path, help="a DuckDB file with the layer's tables")
    parser.add_argument("layer", nargs="?", default=suites.STAGING_LAYER, help="suites of expectations/<layer>/")
    args = parser.parse_args(argv)

    suite_results = run_layer(args.database, args.layer)
    fatal_failures = 0
    for suite_result, check in iter_results(suite_results):
        if not check.passed:
            fatal_failures += check.fatal
            found = check.error or f"{check.unexpected_count} failing ({check.unexpected_percent or 0:.2f}%, " \
                                   f"threshold {check.threshold:g}%)"
            where = f"{suite_result.suite}.{check.name}" + (f" [{check.phenotype_id}]" if check.phenotype_id else "")
            print(f"{check.severity:8s} {where}: {found}")
    checks = sum(len(s.results) for s in suite_results)
    print(f"{checks} checks, {sum(len(s.failed()) for s in suite_results)} failed ({fatal_failures} fatal); "
          f"results in {CHECK_RESULTS_TABLE}; Data Docs: {suite_results[0].data_docs_index if suite_results else '-'}")
    return 1 if fatal_failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
