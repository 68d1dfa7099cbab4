"""``expect_no_violating_rows``: a SQL check in the style of the OHDSI Data Quality Dashboard, as a GX expectation.

Most of our checks need SQL that GX's column expectations cannot express (joins to the person, death and observation
tables, one regex per vocabulary, duplicates over several columns). GX's own ``UnexpectedRowsExpectation`` runs such
a query, but it executes it twice (once to count, once to fetch up to 200 rows; with the gx_duckdb workaround the
second would copy every violating row into Python), and it reports only the count.

``ExpectNoViolatingRows`` takes the same ``unexpected_rows_query`` (``{batch}`` is replaced by the checked table) and
runs it *once*, as ``SELECT *, count(*) OVER () ... LIMIT 5``: the window gives the number of violating rows and
the limit keeps a few of them as examples. Its result looks like a column expectation's: ``unexpected_count``,
``element_count`` (rows of the checked table, the DQD denominator), ``unexpected_percent`` and
``partial_unexpected_list`` (the example rows), so the runner treats every expectation the same way. Like GX's
column expectations it takes ``mostly``: it succeeds when at least that share of the table's rows is not violating
(the suites set ``mostly = 1 - threshold / 100``, the DQD threshold), so Data Docs agree with ``dq.check_results``.

Each metric has a SQL implementation (GX's SQL datasource on the DuckDB file) and a Spark one (GX's Spark
datasource on the Spark session's tables, ``runner.run_suites(..., spark=session)``): on Spark the checked batch
becomes a temporary view for ``{batch}`` and the same query, with the same wrapping, runs through the engine layer's
translation (pipelines/engine/), so both engines answer the same SQL text.

Importing this module registers the metric and the expectation with GX, so suites that name
``expect_no_violating_rows`` can be loaded.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, ClassVar

from great_expectations.compatibility import pydantic
from great_expectations.compatibility.sqlalchemy import sqlalchemy as sa
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import SparkDFExecutionEngine, SqlAlchemyExecutionEngine
from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.query_metric_provider import QueryMetricProvider

from pipelines.quality.suites import DEFINED_PHENOTYPES_QUERY

EXAMPLE_ROW_LIMIT = 5
_TOTAL_COLUMN = "violating_row_total"
_EXAMPLE_NUMBER_COLUMN = "example_number"
PHENOTYPE_COLUMN = "phenotype_id"  # the column per-phenotype checks return and are judged by


def json_safe(value: Any) -> Any:
    """A value GX, Dagster and json.dumps can store: dates as ISO text, decimals as floats."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def count_and_examples_sql(query: str) -> str:
    """One scan: count(*) OVER () is computed over every violating row before LIMIT keeps a few of them."""
    return (f"SELECT *, count(*) OVER () AS {_TOTAL_COLUMN} FROM ({query}) AS violating_rows "
            f"LIMIT {EXAMPLE_ROW_LIMIT}")


def per_phenotype_sql(query: str) -> str:
    """One scan: the violating rows counted per phenotype and numbered, the first few of each kept. Written without
    QUALIFY (Spark has none; sqlglot's rewrite of it keeps its helper columns beside `*`); Spark's row_number needs
    an ORDER BY, and any order within a phenotype serves: the examples are a few of its violating rows."""
    return (f"SELECT * FROM (SELECT *, count(*) OVER (PARTITION BY {PHENOTYPE_COLUMN}) AS {_TOTAL_COLUMN}, "
            f"row_number() OVER (PARTITION BY {PHENOTYPE_COLUMN} ORDER BY {PHENOTYPE_COLUMN}) "
            f"AS {_EXAMPLE_NUMBER_COLUMN} FROM ({query}) AS violating_rows) AS numbered "
            f"WHERE {_EXAMPLE_NUMBER_COLUMN} <= {EXAMPLE_ROW_LIMIT}")


def rows_per_phenotype_sql(phenotypes_query: str) -> str:
    """Rows of the checked table ({batch}) per phenotype that `phenotypes_query` lists, 0 for those without rows."""
    return (f"WITH checked AS (SELECT * FROM {{batch}}), "
            f"rows_per_phenotype AS (SELECT {PHENOTYPE_COLUMN}, count(*) AS row_count FROM checked "
            f"GROUP BY {PHENOTYPE_COLUMN}) "
            f"SELECT judged.{PHENOTYPE_COLUMN}, coalesce(any_value(r.row_count), 0) AS row_count "
            f"FROM ({phenotypes_query}) AS judged LEFT JOIN rows_per_phenotype AS r "
            f"ON r.{PHENOTYPE_COLUMN} = judged.{PHENOTYPE_COLUMN} GROUP BY judged.{PHENOTYPE_COLUMN}")


def _count_and_examples(rows: list[dict[str, Any]]) -> dict[str, Any]:
    count = rows[0][_TOTAL_COLUMN] if rows else 0
    examples = [{name: json_safe(value) for name, value in row.items() if name != _TOTAL_COLUMN} for row in rows]
    return {"count": int(count), "examples": examples}


def _per_phenotype(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    per_phenotype: dict[str, dict[str, Any]] = {}
    for values in rows:
        found = per_phenotype.setdefault(values[PHENOTYPE_COLUMN], {"count": int(values[_TOTAL_COLUMN]),
                                                                      "examples": []})
        found["examples"].append({k: json_safe(v) for k, v in values.items()
                                  if k not in (_TOTAL_COLUMN, _EXAMPLE_NUMBER_COLUMN)})
    return per_phenotype


def spark_records(execution_engine: SparkDFExecutionEngine, metric_domain_kwargs: dict, query: str
                  ) -> list[dict[str, Any]]:
    """The rows of `query` (the project's DuckDB SQL, `{batch}` for the checked table) on GX's Spark batch: the
    batch becomes a temporary view and the query runs through the engine layer's translation
    (pipelines/engine/), as every SQL text of the project does on Spark."""
    from pipelines.engine import as_engine

    frame, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE)
    view = "gx_batch_" + uuid.uuid4().hex
    frame.createOrReplaceTempView(view)
    try:
        return as_engine(execution_engine.spark).records(QueryMetricProvider._format_query(query, batch=view))
    finally:
        execution_engine.spark.catalog.dropTempView(view)


class ViolatingRowsCountAndExamples(QueryMetricProvider):
    """Metric ``violating_rows.count_and_examples``: {"count": rows the query returns, "examples": the first few}."""

    metric_name = "violating_rows.count_and_examples"
    value_keys = ("unexpected_rows_query",)
    query_param_name: ClassVar[str] = "unexpected_rows_query"

    @metric_value(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(
        cls,
        execution_engine: SqlAlchemyExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict[str, Any]:
        batch_selectable, _, _ = execution_engine.get_compute_domain(
            metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
        )
        # The same {batch} substitution GX uses for UnexpectedRowsExpectation.
        query = cls._get_substituted_batch_subquery_from_query_and_batch_selectable(
            query=cls._get_query_from_metric_value_kwargs(metric_value_kwargs),
            batch_selectable=batch_selectable,
            execution_engine=execution_engine,
        )
        rows = execution_engine.execute_query(sa.text(count_and_examples_sql(query))).fetchall()
        return _count_and_examples([dict(row._mapping) for row in rows])

    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(
        cls,
        execution_engine: SparkDFExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict[str, Any]:
        query = cls._get_query_from_metric_value_kwargs(metric_value_kwargs)
        return _count_and_examples(spark_records(execution_engine, metric_domain_kwargs,
                                                 count_and_examples_sql(query)))


class ExpectNoViolatingRows(UnexpectedRowsExpectation):
    """Expect the SQL query to return no rows; every row it returns is one violation (DQD's "violated rows").

    Args:
        unexpected_rows_query: SQL returning the violating rows; ``{batch}`` stands for the checked table.
        mostly: the share of the table's rows that must not be violating (1.0: none may be).
    """

    mostly: float = pydantic.Field(1.0, ge=0.0, le=1.0)

    metric_dependencies: ClassVar[tuple[str, ...]] = ("violating_rows.count_and_examples", "table.row_count")
    success_keys: ClassVar[tuple[str, ...]] = ("unexpected_rows_query", "mostly")

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine=None) -> dict:
        violating = metrics["violating_rows.count_and_examples"]
        row_count = metrics["table.row_count"]
        count = violating["count"]
        success = count == 0 or (row_count > 0 and 1 - count / row_count >= self.mostly)
        return {
            "success": success,
            "result": {
                "observed_value": count,
                "element_count": row_count,
                "unexpected_count": count,
                "unexpected_percent": 100.0 * count / row_count if row_count else None,
                "partial_unexpected_list": violating["examples"],
            },
        }


# ---------------------------------------------------------------------------------------------------------------
# Per phenotype: one query for all phenotypes, one result per phenotype
# ---------------------------------------------------------------------------------------------------------------


class ViolatingRowsPerPhenotype(QueryMetricProvider):
    """Metric ``violating_rows.per_phenotype``: {phenotype_id: {"count": violating rows, "examples": a few}}.

    One scan: the query returns the violating rows of every phenotype; a window counts them per phenotype and
    keeps the first few of each, so at most EXAMPLE_ROW_LIMIT rows per phenotype reach Python.
    """

    metric_name = "violating_rows.per_phenotype"
    value_keys = ("unexpected_rows_query",)
    query_param_name: ClassVar[str] = "unexpected_rows_query"

    @metric_value(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(
        cls,
        execution_engine: SqlAlchemyExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict[str, dict[str, Any]]:
        batch_selectable, _, _ = execution_engine.get_compute_domain(
            metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
        )
        query = cls._get_substituted_batch_subquery_from_query_and_batch_selectable(
            query=cls._get_query_from_metric_value_kwargs(metric_value_kwargs),
            batch_selectable=batch_selectable,
            execution_engine=execution_engine,
        )
        rows = execution_engine.execute_query(sa.text(per_phenotype_sql(query))).fetchall()
        return _per_phenotype([dict(row._mapping) for row in rows])

    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(
        cls,
        execution_engine: SparkDFExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict[str, dict[str, Any]]:
        query = cls._get_query_from_metric_value_kwargs(metric_value_kwargs)
        return _per_phenotype(spark_records(execution_engine, metric_domain_kwargs, per_phenotype_sql(query)))


class RowsPerPhenotype(QueryMetricProvider):
    """Metric ``table.rows_per_phenotype``: {phenotype_id: rows of the checked table} for every phenotype that
    ``phenotypes_query`` lists (0 for those without rows). The same for every check of a suite, so GX computes it
    once per validation."""

    metric_name = "table.rows_per_phenotype"
    value_keys = ("phenotypes_query",)
    query_param_name: ClassVar[str] = "phenotypes_query"

    @metric_value(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(
        cls,
        execution_engine: SqlAlchemyExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict[str, int]:
        batch_selectable, _, _ = execution_engine.get_compute_domain(
            metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
        )
        phenotypes = cls._get_query_from_metric_value_kwargs(metric_value_kwargs)
        query = cls._get_substituted_batch_subquery_from_query_and_batch_selectable(
            query=rows_per_phenotype_sql(phenotypes),
            batch_selectable=batch_selectable,
            execution_engine=execution_engine,
        )
        return {row[0]: int(row[1]) for row in execution_engine.execute_query(sa.text(query)).fetchall()}

    @metric_value(engine=SparkDFExecutionEngine)
    def _spark(
        cls,
        execution_engine: SparkDFExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict[str, int]:
        phenotypes = cls._get_query_from_metric_value_kwargs(metric_value_kwargs)
        rows = spark_records(execution_engine, metric_domain_kwargs, rows_per_phenotype_sql(phenotypes))
        return {row[PHENOTYPE_COLUMN]: int(row["row_count"]) for row in rows}


class ExpectNoViolatingRowsPerPhenotype(UnexpectedRowsExpectation):
    """Expect the SQL query to return no rows, judged per phenotype: one verdict for every phenotype.

    The query runs once for all phenotypes and must return a ``phenotype_id`` column; every row it returns is one
    violation of that phenotype. Each phenotype passes when at least ``mostly`` of its rows in the checked table
    are not violating (a phenotype without rows passes only with no violation). GX's own success is that every
    phenotype passes; ``result.details.per_phenotype`` holds each phenotype's count, denominator and examples,
    which the runner reports as one check result per phenotype.

    Args:
        unexpected_rows_query: SQL returning the violating rows with their phenotype_id; ``{batch}`` stands for
            the checked table.
        phenotypes_query: SQL listing the phenotypes judged (column phenotype_id).
        mostly: the share of a phenotype's rows that must not be violating (1.0: none may be).
    """

    phenotypes_query: str = DEFINED_PHENOTYPES_QUERY  # the suites always write it out
    mostly: float = pydantic.Field(1.0, ge=0.0, le=1.0)

    metric_dependencies: ClassVar[tuple[str, ...]] = ("violating_rows.per_phenotype", "table.rows_per_phenotype")
    success_keys: ClassVar[tuple[str, ...]] = ("unexpected_rows_query", "phenotypes_query", "mostly")

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine=None) -> dict:
        violating = metrics["violating_rows.per_phenotype"]
        rows = metrics["table.rows_per_phenotype"]
        per_phenotype = {}
        for phenotype_id in sorted(set(rows) | set(violating)):
            count = violating.get(phenotype_id, {}).get("count", 0)
            row_count = rows.get(phenotype_id, 0)
            per_phenotype[phenotype_id] = {
                "unexpected_count": count,
                "element_count": row_count,
                "unexpected_percent": 100.0 * count / row_count if row_count else None,
                "success": count == 0 or (row_count > 0 and 1 - count / row_count >= self.mostly),
                "examples": violating.get(phenotype_id, {}).get("examples", []),
            }
        total = sum(p["unexpected_count"] for p in per_phenotype.values())
        element_count = sum(rows.values())
        failing = sorted(p for p, found in per_phenotype.items() if not found["success"])
        return {
            "success": not failing,
            "result": {
                "observed_value": total,
                "element_count": element_count,
                "unexpected_count": total,
                "unexpected_percent": 100.0 * total / element_count if element_count else None,
                "partial_unexpected_list": [e for p in failing for e in per_phenotype[p]["examples"]
                                            ][:EXAMPLE_ROW_LIMIT],
                "details": {"failing_phenotypes": failing, "per_phenotype": per_phenotype},
            },
        }
