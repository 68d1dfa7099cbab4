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
from pipelines.sql import AGES_SQL, read_sql

# Compiled, as a run evaluates: the group's other queries run interpreted (tests/spark/conftest.py).
pytestmark = [pytest.mark.spark, pytest.mark.usefixtures("compiled_evaluation")]

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


def _age_at_index_expression() -> str:
    """The age at index as sql/cohorts/eligibility.sql writes it (DuckDB SQL over p.birth_date, p.year_of_birth and
    i.index_date: a call of the age_in_years macro of sql/ages.sql, which each engine is given first)."""
    [statement] = parse_statements(read_sql("cohorts/eligibility.sql"))
    [age] = [alias for alias in statement.find_all(exp.Alias) if alias.alias == "age_at_index"]
    return age.this.sql(dialect="duckdb")


# (birth date, index date, age): a 29 February birthday counts on 28 February in a year without one.
AGE_CASES = [
    ("2000-02-29", "2001-02-27", 0),
    ("2000-02-29", "2001-02-28", 1),
    ("2000-02-29", "2001-03-01", 1),
    ("2000-02-29", "2004-02-28", 3),
    ("2000-02-29", "2004-02-29", 4),
    ("2000-03-01", "2001-02-28", 0),
    ("1999-12-31", "2000-12-30", 0),
    ("1999-12-31", "2000-12-31", 1),
    ("1960-06-15", "2020-06-14", 59),
]


def test_age_on_a_29_february_birthday_is_the_same_on_both_engines(engines):
    values = ", ".join(f"({n}, DATE '{birth}', {int(birth[:4])}, DATE '{index}')"
                       for n, (birth, index, _) in enumerate(AGE_CASES))
    cases = f"SELECT * FROM (VALUES {values}) AS c(case_number, birth_date, year_of_birth, index_date)"
    for engine in engines.values():
        engine.execute_file(AGES_SQL)  # as the cohort stage runs it before eligibility.sql
        engine.create_temp_table("age_cases", cases)
    try:
        sql = (f"SELECT p.case_number, {_age_at_index_expression()} AS age, date_sub('year', p.birth_date, "
               "i.index_date) AS duckdb_years FROM age_cases AS p, age_cases AS i "
               "WHERE p.case_number = i.case_number ORDER BY p.case_number")
        expected = [age for _, _, age in AGE_CASES]
        duck = engines["duckdb"].records(sql)
        # The rule keeps DuckDB's calendar-year count, which sql/ used before it was made portable.
        assert [row["age"] for row in duck] == [row["duckdb_years"] for row in duck] == expected
        spark_sql = sql.replace(", date_sub('year', p.birth_date, i.index_date) AS duckdb_years", "")
        assert [row["age"] for row in engines["spark"].records(spark_sql)] == expected
    finally:
        for engine in engines.values():
            engine.drop_temp_table("age_cases")


SORT_CASES = ("SELECT i, label, day, CAST(a AS DOUBLE) / b AS value FROM (VALUES "
              "(1, 'b', DATE '2020-01-02', 3.0, 2), (2, 'B', NULL, NULL, 1), (3, 'é', DATE '2020-01-01', 0.0, 0), "
              "(4, NULL, DATE '2020-01-02', -1.0, 1), (5, 'a', DATE '2020-01-01', 2.0, 1), "
              "(6, 'b', DATE '2019-12-31', 3.0, 2)) AS c(i, label, day, a, b)")
# (query, the order of i DuckDB gives): text compared by its UTF-8 bytes ('B' < 'a' < 'b' < 'é'), NULLs last unless
# written first, NaN above every number; the last sorts by a floating-point key, which Spark itself sorts.
SORTED_QUERIES = [
    ("SELECT i, label, day FROM sort_cases ORDER BY label, day DESC", [2, 5, 1, 6, 3, 4]),
    ("SELECT t.i, t.label AS name FROM sort_cases AS t ORDER BY name DESC NULLS FIRST, t.i", [4, 3, 1, 6, 5, 2]),
    ("SELECT i, day FROM sort_cases ORDER BY day NULLS FIRST, i DESC", [2, 6, 5, 3, 4, 1]),
    ("SELECT i, value FROM sort_cases ORDER BY value, i", [4, 1, 6, 5, 3, 2]),
]


def _spark_jobs(spark, run) -> int:
    """The Spark jobs `run()` starts (the DAG scheduler's job counter)."""
    def next_job_id() -> int:
        counter = spark.sparkContext._jsc.sc().dagScheduler().nextJobId()
        return counter if isinstance(counter, int) else counter.get()
    start = next_job_id()
    run()
    return next_job_id() - start


def test_a_result_sorted_on_the_driver_has_duckdbs_order(engines):
    """The Spark engine sorts a query's collected rows itself when every ORDER BY key is returned
    (spark_engine.driver_sort_keys): the rows come back in DuckDB's order, without Spark's sampling and shuffle
    jobs; a floating-point key is left to Spark (Arrow places NaN with the NULLs)."""
    import pandas as pd

    for engine in engines.values():
        engine.create_temp_table("sort_cases", SORT_CASES)
    try:
        for sql, order in SORTED_QUERIES:
            frames = {name: engine.query(sql) for name, engine in engines.items()}
            assert frames["duckdb"]["i"].tolist() == order, sql
            pd.testing.assert_frame_equal(frames["spark"], frames["duckdb"], obj=sql)
        spark = engines["spark"]
        unsorted = _spark_jobs(spark.spark, lambda: spark.query("SELECT i, label, day FROM sort_cases"))
        assert _spark_jobs(spark.spark, lambda: spark.query(SORTED_QUERIES[0][0])) == unsorted
        # The sort it saves: Spark's own (kept for the floating-point key) costs jobs of its own.
        assert _spark_jobs(spark.spark, lambda: spark.query(SORTED_QUERIES[-1][0])) > unsorted
    finally:
        for engine in engines.values():
            engine.drop_temp_table("sort_cases")
