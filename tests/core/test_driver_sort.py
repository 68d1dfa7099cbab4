"""Which final ORDER BY the Spark engine leaves to the driver (pipelines/engine/spark_engine.py driver_sort_keys):
only one whose keys are all output columns, with DuckDB's null placement; everything else keeps Spark's sort. The
rows themselves are compared on both engines in tests/spark/test_engine_traps.py."""

from __future__ import annotations

import pytest

from pipelines.engine.dialect import parse_statements
from pipelines.engine.spark_engine import driver_sort_keys


def keys(sql: str):
    [statement] = parse_statements(sql)
    return driver_sort_keys(statement)


def test_output_columns_give_arrow_sort_keys_with_duckdbs_null_placement():
    assert keys("SELECT p.person, t.start_day, t.stop_day FROM t JOIN p ON p.id = t.id "
                "ORDER BY p.person, t.start_day DESC") == [
        ("person", "ascending", "at_end"), ("start_day", "descending", "at_end")]
    assert keys("SELECT a AS b, c FROM t ORDER BY b NULLS FIRST, c DESC NULLS FIRST") == [
        ("b", "ascending", "at_start"), ("c", "descending", "at_start")]


@pytest.mark.parametrize("sql", [
    "SELECT a FROM t",  # nothing to sort
    "SELECT a FROM t ORDER BY b",  # the key is not returned
    "SELECT a FROM t ORDER BY a + 1",  # a computed key
    "SELECT a FROM t ORDER BY t.a, x.b",  # one key of two not returned
    "SELECT x.a AS b FROM x JOIN t ON true ORDER BY t.b",  # a qualified key that is another column than the alias
    "SELECT a FROM t ORDER BY a LIMIT 10",  # the sort decides which rows come back
    "SELECT a FROM t ORDER BY a OFFSET 10",
    "SELECT * FROM t ORDER BY a",  # what `*` returns is not known before the query is planned
    "SELECT a, b AS a FROM t ORDER BY a",  # two output columns of one name
    "SELECT a FROM t UNION ALL SELECT a FROM u ORDER BY a",  # a set operation
])
def test_other_orderings_keep_sparks_sort(sql):
    assert keys(sql) is None
