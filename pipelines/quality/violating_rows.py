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

Importing this module registers the metric and the expectation with GX, so suites that name
``expect_no_violating_rows`` can be loaded.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any, ClassVar

from great_expectations.compatibility import pydantic
from great_expectations.compatibility.sqlalchemy import sqlalchemy as sa
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.query_metric_provider import QueryMetricProvider

EXAMPLE_ROW_LIMIT = 5
_TOTAL_COLUMN = "violating_row_total"


def json_safe(value: Any) -> Any:
    """A value GX, Dagster and json.dumps can store: dates as ISO text, decimals as floats."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


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
        # One scan: count(*) OVER () is computed over every violating row before LIMIT keeps a few of them.
        counted = (
            f"SELECT *, count(*) OVER () AS {_TOTAL_COLUMN} FROM ({query}) AS violating_rows "
            f"LIMIT {EXAMPLE_ROW_LIMIT}"
        )
        rows = [dict(row._mapping) for row in execution_engine.execute_query(sa.text(counted)).fetchall()]
        count = rows[0][_TOTAL_COLUMN] if rows else 0
        examples = [
            {name: json_safe(value) for name, value in row.items() if name != _TOTAL_COLUMN} for row in rows
        ]
        return {"count": int(count), "examples": examples}


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
