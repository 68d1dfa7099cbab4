"""The one quoting helper: hostile values round-trip through DuckDB as data, never as SQL."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.sql_quoting import UnquotableValue, qualified_name, quote_identifier, quote_literal

HOSTILE = [
    "it's",
    "'; COPY (SELECT 1) TO 'pwned.csv'; --",
    'a "quoted" name',
    "back\\slash",
    "new\nline",
    "tab\tand unicode é ✓",
    "''",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_quoted_literal_is_read_back_as_the_same_string(value):
    assert duckdb.connect().execute(f"SELECT {quote_literal(value)}").fetchone()[0] == value


@pytest.mark.parametrize("name", [v for v in HOSTILE if v])
def test_a_quoted_identifier_names_a_column_exactly(name):
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({quote_identifier(name)} INTEGER)")
    assert [row[0] for row in con.execute("DESCRIBE t").fetchall()] == [name]
    con.execute(f"CREATE SCHEMA {quote_identifier(name)}")
    con.execute(f"CREATE TABLE {qualified_name(name, name)} AS SELECT 7 AS x")
    assert con.execute(f"SELECT x FROM {qualified_name(name, name)}").fetchone()[0] == 7


def test_paths_are_quoted_as_their_text(tmp_path):
    assert quote_literal(tmp_path / "o'brien.csv") == "'" + str(tmp_path / "o''brien.csv") + "'"


def test_nul_is_refused_not_cut():
    with pytest.raises(UnquotableValue):
        quote_literal("a\x00b")
    with pytest.raises(UnquotableValue):
        quote_identifier("a\x00b")
