"""The one place where SQL text is built from values: quoting of string literals and identifiers.

Every value that ends up inside SQL text (a file path given to a reader, a table or column name read from an extract,
a site name, a database path in ATTACH) goes through these functions; nothing else in the code base quotes by hand.
Values that can be bound as prepared-statement parameters ($name, ?) are bound instead: quoting is only for the
places where SQL accepts no parameter (reader paths, ATTACH, identifiers, generated check SQL).

The rules are standard SQL, which DuckDB follows: a string literal is enclosed in single quotes with each single
quote doubled; an identifier is enclosed in double quotes with each double quote doubled. Spark SQL reads string
literals differently (a backslash escapes the next character, and two adjacent literals 'it''s' are concatenated to
'its'), so a value bound into Spark SQL text is written by `quote_spark_literal`; identifiers the engine layer
translates to Spark's backquotes. A NUL character cannot be represented in either and is refused rather than
silently cut.
"""

from __future__ import annotations

from os import PathLike


class UnquotableValue(ValueError):
    """A value that cannot be written into SQL text safely (it holds a NUL character)."""


def _checked(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise UnquotableValue(f"{what} {value!r} contains a NUL character, which SQL text cannot hold")
    return value


def quote_literal(value: str | PathLike[str]) -> str:
    """`value` as a SQL string literal: 'it''s' for it's. Paths are written as their string form."""
    text = _checked(str(value) if isinstance(value, PathLike) else value, "SQL literal")
    return "'" + text.replace("'", "''") + "'"


def quote_spark_literal(value: str) -> str:
    """`value` as a Spark SQL string literal: 'it\\'s' for it's, backslashes escaped."""
    text = _checked(value, "Spark SQL literal")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier: "my ""odd"" column" for my "odd" column."""
    return '"' + _checked(name, "SQL identifier").replace('"', '""') + '"'


def quote_spark_identifier(name: str) -> str:
    """`name` as a Spark SQL identifier: `my ``odd`` column` for my `odd` column."""
    return "`" + _checked(name, "Spark SQL identifier").replace("`", "``") + "`"


def qualified_spark_name(dotted: str) -> str:
    """A dotted Spark table name with each part quoted: qualified_spark_name("staging.person") ->
    `staging`.`person`."""
    return ".".join(quote_spark_identifier(part) for part in dotted.split("."))


def qualified_name(*parts: str) -> str:
    """A dotted, quoted name: qualified_name("staging", "person") -> "staging"."person"."""
    if not parts:
        raise ValueError("qualified_name needs at least one part")
    return ".".join(quote_identifier(part) for part in parts)
