"""Constructs known not to run, or to give another result, on Spark: the check every SQL text of the project
passes (tests/core/test_sql_portability.py runs it on every statement of sql/ and every data-quality check).

A statement is checked twice: as written (DuckDB's dialect, where the construct is still visible) and as the Spark
engine would run it (translated by the project dialect, DDL mapped by spark_engine.spark_steps), which must parse as
Spark SQL and must not contain what Spark refuses. `portability_problems` names each problem with the fix.

Dates are recognised by name, as the project names every date column: *_date, *_start, *_end, *_until, *_from,
first_* and restart (a date minus a date is an INTERVAL on Spark, a number of days on DuckDB).
"""

from __future__ import annotations

import re
from sqlglot import ErrorLevel, exp, parse_one

from pipelines.engine.dialect import (
    Macros,
    ProjectSpark,
    define_macro,
    expand_macros,
    is_macro_definition,
    parse_statements,
)
from pipelines.engine.spark_engine import SQL, spark_steps

DATE_NAME = re.compile(r"(_date|_start|_end|_until|_from)$|^first_|^restart$|^date$")
# Functions whose value differs between the engines (hash: DuckDB's 64-bit hash against Spark's 32-bit Murmur3)
# or that count calendar units in an engine's own way (age and year differences around 29 February).
UNPORTABLE_FUNCTIONS = {
    "hash": "hash() gives other values on Spark; compare rows by their values, never by hash",
    "generate_subscripts": "generate_subscripts() does not exist on Spark; use array_position(list, element)",
    "age": "age() counts years in DuckDB's way; write ages with year/month/day arithmetic (sql/ages.sql)",
}
# Spark built-in functions sqlglot's Spark dialect does not model (so they parse as anonymous functions).
SPARK_FUNCTIONS_SQLGLOT_LACKS = {"xxhash64", "make_date"}
CALENDAR_UNITS = {"year", "years", "month", "months", "quarter", "quarters"}
# What must not be left in the Spark SQL the engine runs.
SPARK_REFUSES = (
    (re.compile(r"\bPRIMARY\s+KEY\b", re.I), "PRIMARY KEY is not taken by Spark's plain tables"),
    (re.compile(r"\bNOT\s+MATERIALIZED\b", re.I), "WITH ... AS NOT MATERIALIZED does not parse on Spark"),
    (re.compile(r"\bDESCRIBE\b", re.I), "DESCRIBE is not a relation on Spark"),
    (re.compile(r"\bPERCENTILE_CONT\s*\(|\bPERCENTILE_APPROX\s*\(|\bAPPROX_PERCENTILE\s*\(", re.I),
     "an approximate or ordered-set percentile; quantile_cont must become the exact percentile()"),
    (re.compile(r"\bCREATE\s+OR\s+REPLACE\s+TABLE\b", re.I), "CREATE OR REPLACE TABLE on a plain table"),
    (re.compile(r"\bADD\s+COLUMN\s+IF\s+NOT\s+EXISTS\b", re.I), "ALTER TABLE ... ADD COLUMN IF NOT EXISTS"),
    (re.compile(r"^\s*DELETE\b", re.I), "DELETE on a plain table"),
    (re.compile(r"\bINT128\b", re.I), "INT128 is not a Spark type"),
)
# sqlglot writes DuckDB's CREATE TEMP TABLE ... AS for Spark as a temporary view, a stored query every read
# recomputes; the Spark engine materialises it once instead (spark_engine.spark_steps). A view written as a view
# is one on both engines, recomputed on every read on DuckDB too (sql/phenotypes/drug_records.sql).
TEMPORARY_VIEW = re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?TEMPORARY\s+VIEW\b", re.I)


def _is_date(node: exp.Expression) -> bool:
    """Whether an expression is date-valued (by the names of its columns; module docstring)."""
    if isinstance(node, exp.Paren):
        return _is_date(node.this)
    if isinstance(node, exp.Column):
        return bool(DATE_NAME.search(node.name.lower()))
    if isinstance(node, exp.Cast):
        return node.to.is_type(exp.DataType.Type.DATE) or _is_date(node.this)
    if isinstance(node, (exp.Min, exp.Max, exp.ArgMin, exp.ArgMax, exp.Coalesce, exp.Least, exp.Greatest)):
        return _is_date(node.this)
    if isinstance(node, (exp.Add, exp.Sub)):
        return _is_date(node.this) != _is_date(node.expression)
    if isinstance(node, (exp.CurrentDate, exp.LastDay)):
        return True
    return False


def _is_list(node: exp.Expression) -> bool:
    """A list parameter or literal (the project's list values are always bound as $name parameters)."""
    return isinstance(node, (exp.Placeholder, exp.Array, exp.List))


def source_problems(statement: exp.Expression) -> list[str]:
    """Constructs of a DuckDB statement that Spark refuses or reads otherwise."""
    problems = []
    if isinstance(statement, exp.Create) and statement.args.get("replace") and \
            str(statement.args.get("kind") or "").upper() == "TABLE":
        properties = statement.args.get("properties")
        if not (properties and any(isinstance(p, exp.TemporaryProperty) for p in properties.expressions)):
            problems.append("CREATE OR REPLACE TABLE on a plain table: Spark's plain tables cannot be replaced "
                            "in place; DROP TABLE IF EXISTS, then CREATE TABLE")
    for node in statement.find_all(exp.Sub):
        if _is_date(node.this) and _is_date(node.expression):
            problems.append(f"date minus date ({node.sql(dialect='duckdb')}) is an INTERVAL on Spark; use "
                            "date_diff('day', earlier, later)")
    for node in statement.find_all(exp.Length):
        if _is_list(node.this):
            problems.append(f"len() of a list ({node.sql(dialect='duckdb')}) is a string length on Spark; "
                            "use array_length()")
    for node in statement.find_all(exp.Func):
        name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
        if isinstance(node, exp.Anonymous) and name in UNPORTABLE_FUNCTIONS:
            problems.append(UNPORTABLE_FUNCTIONS[name])
        elif isinstance(node, exp.Anonymous) and name in ("date_sub", "date_diff", "datediff", "date_part") \
                and node.expressions and isinstance(node.expressions[0], exp.Literal) \
                and node.expressions[0].this.lower() in CALENDAR_UNITS:
            problems.append(f"{node.sql(dialect='duckdb')} counts calendar units in DuckDB's way; write it with "
                            "year/month/day arithmetic (sql/ages.sql, the 29 February rule)")
    for node in statement.find_all(exp.DateDiff, exp.DateSub, exp.TsOrDsAdd):
        unit = node.args.get("unit")
        if unit is not None and unit.name.lower() in CALENDAR_UNITS:
            problems.append(f"{node.sql(dialect='duckdb')} counts calendar units in DuckDB's way; write it with "
                            "year/month/day arithmetic (sql/ages.sql, the 29 February rule)")
    return problems


def _is_view(statement: exp.Expression) -> bool:
    return isinstance(statement, exp.Create) and str(statement.args.get("kind") or "").upper() == "VIEW"


def spark_problems(statement: exp.Expression) -> list[str]:
    """What is wrong with the Spark SQL the Spark engine would run for a DuckDB statement."""
    problems = []
    try:
        steps = spark_steps(statement)
    except Exception as error:  # noqa: BLE001 - any failure to map is the problem reported
        return [f"the Spark engine cannot map the statement: {error}"]
    for step in steps:
        if not step.sql:
            continue
        try:
            translated = parse_one(step.sql, read=ProjectSpark, error_level=ErrorLevel.RAISE)
        except Exception as error:  # noqa: BLE001
            problems.append(f"the Spark SQL does not parse: {str(error).splitlines()[0]}")
            continue
        if isinstance(translated, exp.Command):
            problems.append(f"Spark SQL unknown to the Spark dialect: {step.sql[:80]}")
        checked = step.sql if step.kind == SQL else f"SELECT {step.sql}" if step.kind != "insert" else step.sql
        for pattern, reason in SPARK_REFUSES:
            if pattern.search(checked):
                problems.append(reason)
        if TEMPORARY_VIEW.search(checked) and not _is_view(statement):
            problems.append("a temporary table as a plain view (recomputed on every read)")
        for node in translated.find_all(exp.Anonymous):
            if node.name.lower() in SPARK_FUNCTIONS_SQLGLOT_LACKS:
                continue
            problems.append(f"{node.name}() is not a function sqlglot knows for Spark (a DuckDB-only function "
                            "or an unexpanded macro)")
    return problems


def portability_problems(sql: str, macros: Macros | None = None,
                         allowed: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(statement, problem) for every problem of every statement of DuckDB SQL text. Macros the text defines (or
    `macros`, defined earlier in the same session) are expanded as the Spark engine does. `allowed`: names of
    UNPORTABLE_FUNCTIONS a caller may use where the value cannot reach a result (ROW_HASH in a pre-filter that an
    exact comparison decides)."""
    macros = {} if macros is None else macros
    allowed_problems = {UNPORTABLE_FUNCTIONS[name] for name in allowed}
    found = []
    for statement in parse_statements(sql):
        if is_macro_definition(statement):
            define_macro(statement, macros)
            continue
        shown = " ".join(statement.sql(dialect="duckdb", comments=False).split())[:120]
        expanded = expand_macros(statement, macros)
        for problem in dict.fromkeys(source_problems(statement) + spark_problems(expanded)):
            if problem not in allowed_problems:
                found.append((shown, problem))
    return found

