"""A table's fingerprint: the same SQL on DuckDB and on Spark, so two engines' results compare without either table
leaving its engine.

The fingerprint of a table (or of some of its columns) is its row count plus an order-independent digest: every
row is written as one canonical text, hashed with MD5, and the 128 bits of each row's hash are summed over the
rows in four 32-bit parts. A sum is a multiset hash: it ignores row order (Spark returns rows in any order; DuckDB
in insertion order), counts duplicate rows, and needs no sort, so it costs one scan on a cluster. Only one row of
four sums comes back to Python.

The canonical text of a value is what both engines print identically, by column kind:

    NULL       NULL (no other kind's text can read NULL: text values carry a length prefix)
    integer    its decimal digits (TINYINT to HUGEINT, INT to BIGINT on Spark)
    number     DOUBLE, FLOAT and DECIMAL alike, as a DOUBLE: round(x * 10^9) as a whole number of 10^-9 units
               (1 / 3 prints 333333333e-9, -0.0 prints 0e-9) while |x| < 9.2e9, round(x) while |x| < 9.2e18,
               and beyond that only the sign; NaN, Infinity and -Infinity by those names. Both steps are IEEE
               operations both engines do alike (one multiplication, rounding half away from zero to a whole
               number, an exact cast to BIGINT); printing a double as a decimal is not (DuckDB prints the
               binary value's exact digits, Spark the shortest text that reads back as the same double).
               Engines sum floating-point values in different orders, so doubles agree to the last bits only
               after rounding; estimates are compared separately within a relative tolerance.
    text       <length>:<text>, so no text can forge a separator or the NULL marker
    boolean    true / false
    date       YYYY-MM-DD
    timestamp  YYYY-MM-DD HH:MM:SS.ffffff in the session time zone (UTC on both engines in this project)

The query is written in DuckDB's SQL, the source dialect of every SQL text in the project; Spark runs it after the
engine layer's translation, like every other statement. Types that have no canonical text here (lists, structs,
maps, blobs) are refused rather than fingerprinted approximately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from pipelines.sql_quoting import qualified_name, quote_identifier

if TYPE_CHECKING:
    from pipelines.engine.base import Engine

NUMBER_DECIMALS = 9
ROW_SEPARATOR = "|"
NULL_TEXT = "NULL"
# The 128-bit MD5 of a row, as four 32-bit parts of eight hexadecimal digits each, summed over rows as BIGINT:
# 2^31 rows of 2^32 at most fit.
HASH_PARTS = 4
_HEX_DIGITS = "0123456789abcdef"
# A number is printed as a whole count of 10^-NUMBER_DECIMALS units while that count fits a BIGINT, then as a
# whole number while that fits; beyond, only its sign is kept.
_NUMBER_UNITS_LIMIT = "9.2e9"
_INTEGER_LIMIT = "9.2e18"
_BEYOND_LIMIT = "beyond 9.2e18"

KINDS = ("integer", "number", "text", "boolean", "date", "timestamp")

_KIND_OF_TYPE = (
    (r"(TINYINT|SMALLINT|INTEGER|INT|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|LONG|SHORT|BYTE"
     r"|INT\d+)", "integer"),
    (r"(DOUBLE|FLOAT|REAL|FLOAT\d|DECIMAL(\(\d+, ?\d+\))?|NUMERIC(\(\d+, ?\d+\))?)", "number"),
    (r"(VARCHAR|STRING|TEXT|CHAR(\(\d+\))?|VARCHAR\(\d+\))", "text"),
    (r"(BOOLEAN|BOOL)", "boolean"),
    (r"DATE", "date"),
    (r"(TIMESTAMP|TIMESTAMP_NTZ|TIMESTAMP_LTZ|TIMESTAMP WITH TIME ZONE|TIMESTAMPTZ|DATETIME)", "timestamp"),
)


class UnfingerprintableColumn(ValueError):
    """A column whose type has no canonical text on both engines (a list, struct, map or blob)."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: unknown kind {self.kind!r} (one of {', '.join(KINDS)})")


@dataclass(frozen=True)
class Fingerprint:
    """Row count, the columns fingerprinted (name and kind, in order) and the four sums of the rows' hashes."""

    rows: int
    columns: tuple[Column, ...]
    hash_sums: tuple[int, ...]

    def differences(self, other: Fingerprint) -> list[str]:
        """What differs between two fingerprints, in words; empty when they are equal."""
        found = []
        if self.columns != other.columns:
            found.append(f"columns {_columns_text(self.columns)} != {_columns_text(other.columns)}")
        if self.rows != other.rows:
            found.append(f"rows {self.rows} != {other.rows}")
        elif self.hash_sums != other.hash_sums:
            found.append("same number of rows, different row contents")
        return found


def _columns_text(columns: Sequence[Column]) -> str:
    return "(" + ", ".join(f"{column.name} {column.kind}" for column in columns) + ")"


def column_kind(type_name: str) -> str:
    """The fingerprint kind of an engine's type name (DuckDB's DESCRIBE or Spark's simpleString)."""
    normalised = " ".join(type_name.strip().upper().split())
    for pattern, kind in _KIND_OF_TYPE:
        if re.fullmatch(pattern, normalised):
            return kind
    raise UnfingerprintableColumn(f"no canonical text for type {type_name!r}")


def canonical_text_sql(expression: str, kind: str) -> str:
    """The DuckDB SQL expression giving the canonical text of `expression` (a quoted column name) of `kind`,
    NULL included."""
    if kind == "integer":
        text = f"CAST({expression} AS VARCHAR)"
    elif kind == "number":
        value = f"CAST({expression} AS DOUBLE)"
        text = (f"CASE WHEN isnan({value}) THEN 'NaN'"
                f" WHEN {value} = CAST('Infinity' AS DOUBLE) THEN 'Infinity'"
                f" WHEN {value} = CAST('-Infinity' AS DOUBLE) THEN '-Infinity'"
                f" WHEN abs({value}) < {_NUMBER_UNITS_LIMIT}"
                f" THEN CAST(CAST(round({value} * CAST({10 ** NUMBER_DECIMALS} AS DOUBLE)) AS BIGINT) AS VARCHAR)"
                f" || 'e-{NUMBER_DECIMALS}'"
                f" WHEN abs({value}) < {_INTEGER_LIMIT} THEN CAST(CAST(round({value}) AS BIGINT) AS VARCHAR)"
                f" WHEN {value} > 0 THEN '{_BEYOND_LIMIT}' WHEN {value} < 0 THEN '-{_BEYOND_LIMIT}' END")
    elif kind == "text":
        text = f"CAST(length({expression}) AS VARCHAR) || ':' || {expression}"
    elif kind == "boolean":
        text = f"CASE WHEN {expression} THEN 'true' WHEN NOT {expression} THEN 'false' END"
    elif kind == "date":
        text = f"CAST({expression} AS VARCHAR)"
    elif kind == "timestamp":
        text = f"strftime({expression}, '%Y-%m-%d %H:%M:%S.%f')"
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return f"COALESCE({text}, '{NULL_TEXT}')"


def row_text_sql(columns: Sequence[Column]) -> str:
    """The DuckDB SQL expression giving one row's canonical text: the columns' texts joined by ROW_SEPARATOR."""
    if not columns:
        raise ValueError("a fingerprint needs at least one column")
    separator = f" || '{ROW_SEPARATOR}' || "
    return separator.join(canonical_text_sql(quote_identifier(column.name), column.kind) for column in columns)


def _hex_part_sql(hash_column: str, part: int) -> str:
    """Eight hexadecimal digits of an MD5 text as a BIGINT, digit by digit: neither engine's hexadecimal
    conversion function exists on the other."""
    digits = []
    for position in range(8):
        offset = part * 8 + position + 1
        digit = f"(instr('{_HEX_DIGITS}', substr({hash_column}, {offset}, 1)) - 1)"
        digits.append(f"CAST({digit} AS BIGINT) * {16 ** (7 - position)}")
    return " + ".join(digits)


def fingerprint_sql(relation: str, columns: Sequence[Column]) -> str:
    """The DuckDB SQL computing the fingerprint of `columns` of `relation` (a table name, qualified and quoted as
    the caller's SQL spells it): one row of the row count and the HASH_PARTS sums."""
    sums = ", ".join(f"SUM({_hex_part_sql('row_hash', part)}) AS hash_sum_{part}" for part in range(HASH_PARTS))
    return (f"SELECT COUNT(*) AS row_count, {sums}\n"
            f"FROM (SELECT md5({row_text_sql(columns)}) AS row_hash FROM {relation}) AS hashed_rows")


def fingerprint_from_row(columns: Sequence[Column], row: Sequence) -> Fingerprint:
    """The fingerprint from the one row fingerprint_sql returns (an empty table sums to NULL: 0 here)."""
    count, *sums = row
    return Fingerprint(int(count), tuple(columns), tuple(int(value or 0) for value in sums))


def table_columns(engine: Engine, table: str) -> tuple[Column, ...]:
    """The columns of `table` ("schema.table") with their fingerprint kinds, in the table's order, from the
    engine's DESCRIBE (name and type are its first two columns on DuckDB and on Spark)."""
    described = engine.records(f"DESCRIBE {qualified_name(*table.split('.'))}")
    columns = []
    for row in described:
        name, type_name = list(row.values())[:2]
        if not name or str(name).startswith("#"):  # Spark's partition and detail sections
            break
        columns.append(Column(str(name), column_kind(str(type_name))))
    return tuple(columns)


def table_fingerprint(engine: Engine, table: str, columns: Sequence[str] | None = None) -> Fingerprint:
    """The fingerprint of `table` ("schema.table") on `engine`, of the named columns (all by default) in the
    order given."""
    described = table_columns(engine, table)
    if columns is not None:
        by_name = {column.name: column for column in described}
        unknown = [name for name in columns if name not in by_name]
        if unknown:
            raise KeyError(f"{table} has no column {', '.join(unknown)}")
        described = tuple(by_name[name] for name in columns)
    rows = engine.records(fingerprint_sql(qualified_name(*table.split(".")), described))
    return fingerprint_from_row(described, list(rows[0].values()))
