"""Table fingerprints (pipelines/engine/fingerprint.py): the same SQL gives the same canonical text of every kind
of value, and the same fingerprint, on DuckDB and on Spark; a changed value changes it, row order does not."""

from __future__ import annotations

import pytest

from pipelines.engine.fingerprint import (Column, Fingerprint, UnfingerprintableColumn, column_kind, row_text_sql,
                                          table_columns, table_fingerprint)

# Every kind of value with its edge cases: NULL in every column, a text holding the separator and one reading
# NULL, -0.0, a half at the ninth decimal, 29 February, a timestamp with microseconds, a decimal, NaN and the
# infinities, and magnitudes beyond each limit of the number text.
EDGE_VALUES_SQL = """
SELECT * FROM (VALUES
    (1, 0.1 + 0.2, 'a|b', TRUE, DATE '2020-02-29', TIMESTAMP '2020-01-01 12:34:56.123456',
     CAST(1.50 AS DECIMAL(10, 2))),
    (NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (-7, -0.0, '', FALSE, DATE '1900-01-01', TIMESTAMP '1999-12-31 23:59:59', CAST(-0.01 AS DECIMAL(10, 2))),
    (123456789012, CAST(1 AS DOUBLE) / 3, 'NULL', TRUE, DATE '2024-12-31', NULL, NULL),
    (2, -1.0000000005, 'é ü', NULL, NULL, NULL, NULL),
    (3, CAST('NaN' AS DOUBLE), 'x', NULL, NULL, NULL, NULL),
    (4, CAST('-Infinity' AS DOUBLE), 'x', NULL, NULL, NULL, NULL),
    (5, 12345678901.5, 'x', NULL, NULL, NULL, NULL),
    (6, 1e300, 'x', NULL, NULL, NULL, NULL)
) AS edge_values(i, d, s, b, dt, ts, dec)
"""

EXPECTED_TEXTS = sorted([
    "1|300000000e-9|3:a|b|true|2020-02-29|2020-01-01 12:34:56.123456|1500000000e-9",
    "NULL|NULL|NULL|NULL|NULL|NULL|NULL",
    "-7|0e-9|0:|false|1900-01-01|1999-12-31 23:59:59.000000|-10000000e-9",
    "123456789012|333333333e-9|4:NULL|true|2024-12-31|NULL|NULL",
    "2|-1000000001e-9|3:é ü|NULL|NULL|NULL|NULL",  # the length counts characters on both engines
    "3|NaN|1:x|NULL|NULL|NULL|NULL",
    "4|-Infinity|1:x|NULL|NULL|NULL|NULL",
    "5|12345678902|1:x|NULL|NULL|NULL|NULL",
    "6|beyond 9.2e18|1:x|NULL|NULL|NULL|NULL",
])


@pytest.fixture
def edge_values(compiled_evaluation, engines):
    """The edge values as the temporary table edge_values on DuckDB and on Spark, made by the same SQL; Spark
    evaluating compiled, as a run does (the group's other queries run interpreted: tests/spark/conftest.py)."""
    for engine in engines.values():
        engine.create_temp_table("edge_values", EDGE_VALUES_SQL)
    yield engines
    for engine in engines.values():
        engine.drop_temp_table("edge_values")


def test_column_kinds_of_both_engines_type_names():
    assert [column_kind(name) for name in ("BIGINT", "INTEGER", "int", "bigint", "HUGEINT")] == ["integer"] * 5
    assert [column_kind(name) for name in ("DOUBLE", "double", "DECIMAL(10,2)", "decimal(10, 2)", "FLOAT")] == \
        ["number"] * 5
    assert [column_kind(name) for name in ("VARCHAR", "string", "BOOLEAN", "boolean", "DATE", "date",
                                           "TIMESTAMP", "timestamp_ntz")] == \
        ["text", "text", "boolean", "boolean", "date", "date", "timestamp", "timestamp"]
    for refused in ("VARCHAR[]", "array<string>", "STRUCT(a INTEGER)", "BLOB", "map<string,int>"):
        with pytest.raises(UnfingerprintableColumn):
            column_kind(refused)


def test_fingerprint_differences_in_words():
    columns = (Column("person_id", "text"), Column("first_date", "date"))
    same = Fingerprint(3, columns, (1, 2, 3, 4))
    assert same.differences(Fingerprint(3, columns, (1, 2, 3, 4))) == []
    assert same.differences(Fingerprint(4, columns, (1, 2, 3, 4))) == ["rows 3 != 4"]
    assert same.differences(Fingerprint(3, columns, (1, 2, 3, 5))) == ["same number of rows, different row contents"]
    assert same.differences(Fingerprint(3, columns[:1], (1, 2, 3, 4))) == [
        "columns (person_id text, first_date date) != (person_id text)"]


@pytest.mark.spark
def test_canonical_text_of_every_kind_is_identical_on_both_engines(edge_values):
    texts = {}
    for name, engine in edge_values.items():
        columns = table_columns(engine, "edge_values")
        assert [(c.name, c.kind) for c in columns] == [
            ("i", "integer"), ("d", "number"), ("s", "text"), ("b", "boolean"), ("dt", "date"),
            ("ts", "timestamp"), ("dec", "number")], name
        texts[name] = sorted(row["t"] for row in engine.records(f"SELECT {row_text_sql(columns)} AS t "
                                                                 "FROM edge_values"))
    assert texts["duckdb"] == EXPECTED_TEXTS
    assert texts["spark"] == EXPECTED_TEXTS


@pytest.mark.spark
def test_fingerprint_is_identical_on_both_engines_and_sees_one_changed_value(edge_values):
    duck, spark = edge_values["duckdb"], edge_values["spark"]
    reference = table_fingerprint(duck, "edge_values")
    assert reference.rows == 9
    assert table_fingerprint(spark, "edge_values") == reference
    # Row order is not part of a fingerprint; one value one unit off at the ninth decimal is.
    spark.create_temp_table("edge_values_reordered", "SELECT * FROM edge_values ORDER BY i DESC NULLS FIRST")
    spark.create_temp_table("edge_values_changed",
                            "SELECT i, CASE WHEN i = 1 THEN d + 1e-9 ELSE d END AS d, s, b, dt, ts, dec "
                            "FROM edge_values")
    try:
        assert table_fingerprint(spark, "edge_values_reordered") == reference
        changed = table_fingerprint(spark, "edge_values_changed")
        assert changed.rows == reference.rows
        assert changed.differences(reference) == ["same number of rows, different row contents"]
        # A subset of columns is a fingerprint of its own: the changed column left out, the tables agree again.
        kept = ["i", "s", "b", "dt", "ts", "dec"]
        assert table_fingerprint(spark, "edge_values_changed", kept) == table_fingerprint(duck, "edge_values", kept)
    finally:
        spark.drop_temp_table("edge_values_reordered")
        spark.drop_temp_table("edge_values_changed")
