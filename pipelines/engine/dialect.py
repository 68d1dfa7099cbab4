"""The project's Spark SQL dialect: how the DuckDB SQL of sql/ is written for Spark, and how `$name` parameters are
bound there.

The SQL files are written once, in DuckDB's dialect, restricted to constructs Spark runs with the same result
(tests/core/test_sql_portability.py holds them to that). sqlglot's Spark dialect translates them; `ProjectSpark`
holds the few places where its translation would change a result silently:

- quantile_cont(x, q) becomes Spark's exact `percentile(x, q)` (linear interpolation between the two nearest
  ranks, as DuckDB's quantile_cont and numpy's default); sqlglot's PERCENTILE_CONT(x, q) is not the same function
  on Spark.
- a / b follows DuckDB: a number divided by zero is +inf, -inf or NaN (0/0), NULL stays NULL. Spark's ANSI mode
  (its default) raises an error instead, and its legacy mode returns NULL.

Parameters: the files name run-time values as DuckDB prepared-statement parameters ($name). Spark SQL has no
prepared statements, so `bind_parameters` writes each value into the statement as a literal (strings through
pipelines/sql_quoting.py).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Mapping

from sqlglot import exp, parse, parse_one
from sqlglot.dialects.spark import Spark

from pipelines.sql_quoting import quote_spark_literal

SOURCE_DIALECT = "duckdb"


class UnboundParameter(KeyError):
    """A statement names $name, and no value was given for it."""


def _signed_infinity_division(self: Spark.Generator, expression: exp.Div) -> str:
    numerator = self.sql(expression, "this")
    denominator = self.sql(expression, "expression")
    return (f"(CASE WHEN {denominator} = 0 THEN "
            f"CASE WHEN {numerator} > 0 THEN CAST('Infinity' AS DOUBLE) "
            f"WHEN {numerator} < 0 THEN CAST('-Infinity' AS DOUBLE) "
            f"WHEN {numerator} = 0 THEN CAST('NaN' AS DOUBLE) END "
            f"ELSE {numerator} / {denominator} END)")


def _exact_percentile(self: Spark.Generator, expression: exp.PercentileCont) -> str:
    return self.func("PERCENTILE", expression.this, expression.expression)


class ProjectSpark(Spark):
    """sqlglot's Spark dialect with the project's overrides (module docstring)."""

    class Generator(Spark.Generator):
        TRANSFORMS = {
            **Spark.Generator.TRANSFORMS,
            exp.PercentileCont: _exact_percentile,
            exp.Div: _signed_infinity_division,
        }


def literal_sql(value: Any) -> str:
    """`value` as a Spark SQL literal. Lists become typed arrays (an empty list is an array of strings: every list
    parameter of the project is a list of ids or codes)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "CAST('NaN' AS DOUBLE)"
        if math.isinf(value):
            return f"CAST('{'Infinity' if value > 0 else '-Infinity'}' AS DOUBLE)"
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP {quote_spark_literal(value.isoformat(sep=' '))}"
    if isinstance(value, dt.date):
        return f"DATE {quote_spark_literal(value.isoformat())}"
    if isinstance(value, str):
        return quote_spark_literal(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "CAST(ARRAY() AS ARRAY<STRING>)"
        return "ARRAY(" + ", ".join(literal_sql(item) for item in value) + ")"
    raise TypeError(f"no SQL literal for a {type(value).__name__} parameter")


def parameter_names(statement: exp.Expression) -> set[str]:
    """The $name parameters a parsed statement uses."""
    return {node.name for node in statement.find_all(exp.Placeholder) if node.name}


def bind_parameters(statement: exp.Expression, parameters: Mapping[str, Any]) -> exp.Expression:
    """A copy of `statement` with every $name replaced by its value as a literal."""
    missing = parameter_names(statement) - parameters.keys()
    if missing:
        raise UnboundParameter(f"SQL parameters without a value: {', '.join(sorted(missing))}")

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name:
            return parse_one(literal_sql(parameters[node.name]), read=ProjectSpark)
        return node

    return statement.copy().transform(replace)


def parse_statements(sql: str) -> list[exp.Expression]:
    """The statements of DuckDB SQL text (comments and empty statements dropped)."""
    return [statement for statement in parse(sql, read=SOURCE_DIALECT) if statement is not None]


def to_spark_sql(statement: exp.Expression, parameters: Mapping[str, Any] | None = None) -> str:
    """One parsed DuckDB statement as Spark SQL text, parameters bound."""
    bound = bind_parameters(statement, parameters or {})
    return bound.sql(dialect=ProjectSpark)


def translate(sql: str, parameters: Mapping[str, Any] | None = None) -> list[str]:
    """DuckDB SQL text (one or more statements) as Spark SQL statements, parameters bound. DDL that Spark's plain
    tables do not take is the Spark engine's business (pipelines/engine/spark_engine.py), not this function's."""
    return [to_spark_sql(statement, parameters) for statement in parse_statements(sql)]
