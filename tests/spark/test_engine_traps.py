"""The places where Spark, given a plain translation of DuckDB SQL, silently returns another value: each one run on
both engines through the engine layer (pipelines/engine), which must give DuckDB's value on Spark too.

Each test also shows the trap itself (sqlglot's plain Spark translation, or a plain Spark temporary view), so a
test that passes says the engine layer closes a gap that is really there.
"""

from __future__ import annotations

import hashlib
import math

import pytest
import sqlglot
from sqlglot import exp

from pipelines.engine.dialect import parse_statements
from pipelines.paths import SQL_DIR
from pipelines.sql import read_sql

pytestmark = pytest.mark.spark

ONE_TO_TEN_SQL = "SELECT x FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)) AS numbers(x)"


def plain_spark_sql(duckdb_sql: str) -> str:
    """sqlglot's own Spark translation, without the project dialect's overrides."""
    return sqlglot.transpile(duckdb_sql, read="duckdb", write="spark")[0]


def both(engines, sql: str) -> dict[str, list[dict]]:
    return {name: engine.records(sql) for name, engine in engines.items()}


def test_quantile_cont_is_the_exact_interpolated_percentile_on_both_engines(engines):
    for engine in engines.values():
        engine.create_temp_table("one_to_ten", ONE_TO_TEN_SQL)
    try:
        sql = "SELECT quantile_cont(x, 0.25) AS q1, quantile_cont(x, 0.5) AS median FROM one_to_ten"
        for name, rows in both(engines, sql).items():
            assert rows == [{"q1": 3.25, "median": 5.5}], name
        # The trap: Spark's percentile_approx (what a plain translation of a percentile often becomes) answers 3,
        # and sqlglot's own translation of quantile_cont is refused by Spark 4.3.
        spark = engines["spark"].spark
        assert spark.sql("SELECT percentile_approx(x, 0.25) FROM one_to_ten").collect()[0][0] == 3
        with pytest.raises(Exception, match="WRONG_NUM_ARGS"):
            spark.sql(plain_spark_sql(sql)).collect()
    finally:
        for engine in engines.values():
            engine.drop_temp_table("one_to_ten")


def test_division_by_zero_gives_duckdbs_infinities_on_both_engines(engines):
    cases = "SELECT * FROM (VALUES (1, 1.0, 0), (2, -1.0, 0), (3, 0.0, 0), (4, NULL, 0), (5, 7.0, 2)) AS c(i, a, b)"
    for engine in engines.values():
        engine.create_temp_table("division_cases", cases)
    try:
        sql = "SELECT i, CAST(a AS DOUBLE) / b AS ratio FROM division_cases ORDER BY i"
        for name, rows in both(engines, sql).items():
            ratios = [row["ratio"] for row in rows]
            assert ratios[0] == math.inf and ratios[1] == -math.inf, name
            assert math.isnan(ratios[2]), name
            assert ratios[3] is None and ratios[4] == 3.5, name
        # The trap: Spark's default (ANSI) division by zero is an error, not infinity.
        with pytest.raises(Exception, match="DIVIDE_BY_ZERO"):
            engines["spark"].spark.sql(plain_spark_sql(sql)).collect()
    finally:
        for engine in engines.values():
            engine.drop_temp_table("division_cases")


def test_hash_differs_between_engines_so_the_project_sql_never_uses_it(engines):
    sql = "SELECT hash('leg cramps') AS hashed, md5('leg cramps') AS digest"
    results = both(engines, sql)
    # The trap: the same call, two different numbers (DuckDB's 64-bit hash, Spark's 32-bit Murmur3).
    assert results["duckdb"][0]["hashed"] != results["spark"][0]["hashed"]
    # MD5 is a standard: the same text on both engines and in Python (what table fingerprints use).
    expected_digest = hashlib.md5(b"leg cramps").hexdigest()
    assert results["duckdb"][0]["digest"] == results["spark"][0]["digest"] == expected_digest
    users = sorted({str(path.relative_to(SQL_DIR)) for path in SQL_DIR.rglob("*.sql")
                    for statement in parse_statements(read_sql(str(path.relative_to(SQL_DIR))))
                    for call in statement.find_all(exp.Anonymous) if call.name.lower() == "hash"})
    assert users == [], f"hash() gives other values on Spark: {users}"


def test_temp_table_is_stored_once_not_recomputed_on_read(engines):
    """A temporary table keeps the rows it was made with when its source changes afterwards (DuckDB's temp
    table); a plain Spark temporary view would read the source again."""
    for name, engine in engines.items():
        engine.execute("CREATE SCHEMA IF NOT EXISTS engine_traps; "
                       "CREATE TABLE engine_traps.source_rows (i INTEGER); "
                       "INSERT INTO engine_traps.source_rows VALUES (1), (2), (3)")
        try:
            engine.create_temp_table("source_snapshot", "SELECT i FROM engine_traps.source_rows")
            engine.execute("INSERT INTO engine_traps.source_rows VALUES (4), (5)")
            count = "SELECT count(*) AS n, sum(i) AS total FROM source_snapshot"
            assert engine.records(count) == [{"n": 3, "total": 6}], f"{name}: the temporary table was recomputed"
            if name == "spark":
                # The trap: a plain temporary view over the same SELECT sees the two rows added since.
                engine.spark.sql("SELECT i FROM engine_traps.source_rows").createOrReplaceTempView("source_view")
                engine.spark.sql("INSERT INTO engine_traps.source_rows VALUES (6)")
                assert engine.spark.sql("SELECT count(*) FROM source_view").collect()[0][0] == 6
                engine.spark.catalog.dropTempView("source_view")
        finally:
            engine.drop_temp_table("source_snapshot")
            engine.execute("DROP TABLE IF EXISTS engine_traps.source_rows")
