"""The project's Spark SQL dialect: how the DuckDB SQL of sql/ is written for Spark, and how `$name` parameters are
bound there.

The SQL files are written once, in DuckDB's dialect, restricted to constructs Spark runs with the same result
(tests/core/test_sql_portability.py holds them to that). sqlglot's Spark dialect translates them; `ProjectSpark`
holds the few places where its translation would change a result silently:

- quantile_cont(x, q) becomes Spark's exact `percentile(x, q)` (linear interpolation between the two nearest
  ranks, as DuckDB's quantile_cont and numpy's default); sqlglot's PERCENTILE_CONT(x, q) is not the same function
  on Spark.
- WITH name AS NOT MATERIALIZED (DuckDB's hint for a CTE read twice) loses the hint: Spark inlines CTEs by itself.
- hash(...) (ROW_HASH) becomes xxhash64(...), also 64 bits.
- list functions of the data-quality checks (the check-digit formats, pipelines/vocabularies.py): list_extract(l, i)
  becomes try_element_at(l, i) (1-based, NULL beyond the list, as DuckDB; a computed `l[i]` would keep DuckDB's
  1-based index on Spark's 0-based brackets, since sqlglot shifts an index only when it can type it),
  list_reduce(l, lambda, initial) becomes aggregate(l, initial, lambda), list_sum(l) an aggregate that skips
  NULLs and gives NULL for a list without values, as DuckDB's.
- HUGEINT (exact integer sums) becomes DECIMAL(38, 0), Spark's widest exact integer.
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
# DuckDB's 64-bit hash of a row's values; on Spark the 64-bit xxhash64 (Spark's hash() has 32 bits: many more
# collisions). The values differ between the engines, so a hash may only narrow a search that an exact comparison
# then decides (the data-quality checks' repeated-value candidates), never be a result.
ROW_HASH = "hash"


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


def _cte_without_materialization_hint(self: Spark.Generator, expression: exp.CTE) -> str:
    expression = expression.copy()
    expression.set("materialized", None)
    return Spark.Generator.cte_sql(self, expression)


def _list_sum(self: Spark.Generator, values: exp.Expression) -> str:
    """DuckDB's list_sum: the sum of the non-NULL elements, NULL for a list without any."""
    return (f"AGGREGATE({self.sql(values)}, CAST(NULL AS BIGINT), (list_sum_total, list_sum_value) -> "
            f"CASE WHEN list_sum_value IS NULL THEN list_sum_total "
            f"ELSE COALESCE(list_sum_total, 0) + list_sum_value END)")


def _duckdb_functions(self: Spark.Generator, expression: exp.Anonymous) -> str:
    name = expression.name.lower()
    arguments = expression.expressions
    if name == ROW_HASH:
        return self.func("XXHASH64", *arguments)
    if name == "list_extract" and len(arguments) == 2:  # 1-based, NULL beyond the list on both
        return self.func("TRY_ELEMENT_AT", *arguments)
    if name == "list_reduce" and len(arguments) == 3:  # DuckDB (list, lambda, initial); Spark (list, initial, lambda)
        values, merge, initial = arguments
        return self.func("AGGREGATE", values, initial, merge)
    if name == "list_sum" and len(arguments) == 1:
        return _list_sum(self, arguments[0])
    return Spark.Generator.anonymous_sql(self, expression)


def _exact_percentile(self: Spark.Generator, expression: exp.PercentileCont) -> str:
    return self.func("PERCENTILE", expression.this, expression.expression)


class ProjectSpark(Spark):
    """sqlglot's Spark dialect with the project's overrides (module docstring)."""

    class Generator(Spark.Generator):
        TRANSFORMS = {
            **Spark.Generator.TRANSFORMS,
            exp.PercentileCont: _exact_percentile,
            exp.Div: _signed_infinity_division,
            exp.CTE: _cte_without_materialization_hint,
            exp.Anonymous: _duckdb_functions,
        }
        # Exact integer sums (Table 1's sums of squares) use DuckDB's HUGEINT; Spark's widest exact integer is
        # DECIMAL(38, 0).
        TYPE_MAPPING = {**Spark.Generator.TYPE_MAPPING, exp.DataType.Type.INT128: "DECIMAL(38, 0)"}


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


# ---------------------------------------------------------------------------------------------------------------
# DuckDB temporary macros
# ---------------------------------------------------------------------------------------------------------------
# Spark SQL has no macros. A CREATE TEMP MACRO statement is kept by the engine as a definition, and later statements
# get every call of it replaced by its body with the arguments put in (as DuckDB itself expands a scalar macro).
Macros = dict[str, tuple[tuple[str, ...], exp.Expression]]


def is_macro_definition(statement: exp.Expression) -> bool:
    return isinstance(statement, exp.Create) and str(statement.args.get("kind") or "").upper() == "MACRO"


def define_macro(statement: exp.Expression, macros: Macros) -> None:
    """Add the macro a CREATE MACRO statement defines to `macros` (its body already expanded)."""
    function = statement.this
    parameters = tuple(parameter.name for parameter in function.expressions)
    macros[function.this.name.lower()] = (parameters, expand_macros(statement.expression, macros))


def expand_macros(statement: exp.Expression, macros: Macros) -> exp.Expression:
    """A copy of `statement` with every call of a macro in `macros` replaced by the macro's body."""
    if not macros:
        return statement

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.lower() in macros:
            parameters, body = macros[node.name.lower()]
            arguments = dict(zip(parameters, (expand_macros(argument, macros) for argument in node.expressions)))
            if len(arguments) != len(node.expressions) or len(parameters) != len(node.expressions):
                raise ValueError(f"macro {node.name} takes {len(parameters)} arguments")
            expanded = body.copy().transform(
                lambda inner: arguments[inner.name].copy()
                if isinstance(inner, exp.Column) and not inner.table and inner.name in arguments else inner)
            return exp.Paren(this=expanded)
        return node

    return statement.copy().transform(replace)


# ---------------------------------------------------------------------------------------------------------------
# DuckDB texts the data-quality checks (run on DuckDB through GX) and the ingest's duplicate ids are written with
# ---------------------------------------------------------------------------------------------------------------
def cte_read_twice(name: str) -> str:
    """`WITH <name> AS` for a CTE a query reads twice: NOT MATERIALIZED, because DuckDB materialises a CTE read more
    than once (for the duplicate-event check, a copy of every compared column: 40 GB of spill at 600 million rows).
    ProjectSpark drops the hint."""
    return f"WITH {name} AS NOT MATERIALIZED"


# Finding repeated values in two passes: a 64-bit hash of the compared columns first (one integer per row instead
# of every compared value, which at 10 million patients means 600 million drug rows' worth of spill), keep the
# hashes seen more than once, then group exactly only the rows with such a hash. The second pass makes the result
# exact: a hash collision can add a candidate, never a repeated value.
# The hashes seen more than once are found by sorting them and comparing each with the one before: on DuckDB the
# sort costs about two thirds of the CPU and half the memory of a hash aggregate with one group per row (15 M drug
# rows: 2.3 against 3.5 CPU s, 0.5 against 1.0 GB) and spills as a sort. (On Spark a window without a partition
# runs in one task; the staging suites and the ingest's duplicate ids run on DuckDB in a pipeline run.)
def repeated_hash_candidates(columns: str) -> str:
    """A CTE `candidates` (row_hash) of the hashes of `columns` that occur on more than one row of `checked` (a
    hash found on n rows is listed n - 1 times): used by the data-quality checks of repeated values and the
    ingest's duplicate ids."""
    return (f"candidates AS (SELECT row_hash FROM ("
            f"SELECT row_hash, lag(row_hash) OVER (ORDER BY row_hash) AS previous_hash "
            f"FROM (SELECT {ROW_HASH}({columns}) AS row_hash FROM checked) AS hashed) AS sorted "
            f"WHERE row_hash = previous_hash)")


def column_types_relation(relation: str) -> str:
    """A relation (column_name, column_type) of the columns of `relation` with their DuckDB type names. Spark SQL
    has no DESCRIBE as a relation, and its type names differ: the Spark engine replaces it with the relation's
    schema on its session, in DuckDB's type names (spark_engine.SparkEngine._described_relations). That needs a
    session, so the session-less portability check still refuses it (tests/core/test_sql_portability.py names
    the one check that uses it)."""
    return f"(DESCRIBE SELECT * FROM {relation})"
