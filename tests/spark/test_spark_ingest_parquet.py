"""Parquet extracts on Spark keep the DuckDB loader's promise (pipelines/ingest/spark_loader.py
load_parquet_table_on_spark): the same files loaded by DuckDB (pipelines/ingest/loader.py) and by Spark give the same
rejects (file, row number in the `line` column, column, reason, detail and the record of every rejected row), the
same counts and staging tables with the same fingerprints.

The extract: the generator's Parquet extract (its planted missing fields, repeated ids and unknown persons) with
columns rewritten in other types and hostile rows added, files written in several row groups and read by Spark in
several splits: ids as integers (signed and unsigned), days_supply as FLOAT (fractions, NaN, infinities, beyond
INTEGER), year_of_birth as BIGINT (beyond INTEGER, outside the plausible range), value_as_number as DOUBLE values
whose text DuckDB and Java write differently (1e21, 1e-7, 1e7, -0.0, the smallest and largest doubles, a value
Java 17 writes with too many digits), dates as timestamps (before the Gregorian reform, fractions of a second, the
last second of 9999) and dates around the reform. Each hostile value is also in a rejected row, so its record is
compared.

Types whose DuckDB results Spark does not reproduce stay on the DuckDB ingest, by name (`parquet_refusal`): no Spark
needed for those tests.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import shutil

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines import extract_spec as spec
from pipelines.ingest.formats import detect_format, registry
from pipelines.ingest.loader import load_extract
from pipelines.ingest.spark_loader import load_extract_on_spark, parquet_refusal, spark_ingest_refusal
from tests.spark.spark_catalog import empty_catalog
from tests.spark.test_spark_ingest import assert_same_ingest, rejects_on_duckdb

PATIENTS, SEED = 50, 1
ROW_GROUP = 16  # rows per row group: every file has several

DOUBLES = [1e20, 1e21, 1.5e22, 1e-7, 0.000001, 2.5e-5, 1e7, 2.82879384806159e17, -0.0, 0.0, 0.1, 123456.7,
           5e-324, 1.7976931348623157e308, -1.25, 100.0]
DAYS_SUPPLY = [1.5, 3.0, 1e10, math.nan, math.inf, -math.inf, 0.1, 16777217.0, -0.0, 2147483647.0]
YEARS = [99999999999, -5, 1849, 2101, 1950]
TIMESTAMPS = [dt.datetime(1500, 1, 1), dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
              dt.datetime(2020, 2, 29, 12, 0, 0, 500000), dt.datetime(9999, 12, 31, 23, 59, 59),
              dt.datetime(1582, 10, 4, 6)]
DATES = [dt.date(1, 1, 1), dt.date(1582, 10, 10), dt.date(1582, 10, 15), dt.date(9999, 12, 31)]


def _rewrite(folder, table: str, types: dict[str, pa.DataType], rows) -> None:
    """table.parquet with `types` for some columns and `rows(template)` appended (dicts of the file's columns;
    `template`: the file's first row), written in row groups of ROW_GROUP rows."""
    path = folder / f"{table}.parquet"
    data = pq.read_table(path)
    schema = pa.schema([pa.field(f.name, types.get(f.name, f.type)) for f in data.schema])
    data = pa.table({name: pc.cast(data[name], schema.field(name).type) for name in data.column_names},
                    schema=schema)
    extra = pa.Table.from_pylist(rows(data.slice(0, 1).to_pylist()[0]), schema=schema)
    pq.write_table(pa.concat_tables([data, extra]), path, row_group_size=ROW_GROUP)


@pytest.fixture(scope="module")
def hostile_parquet(generated_extract, tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark_parquet") / "extract"
    shutil.copytree(generated_extract(PATIENTS, SEED, fmt="parquet").path, folder)

    def person(first):
        return [{**first, "person_id": f"y{year}", "year_of_birth": year} for year in YEARS]

    _rewrite(folder, "person", {"year_of_birth": pa.int64()}, person)

    def measurements(first):
        rows = []
        for i, value in enumerate(DOUBLES):
            rows.append({**first, "measurement_id": f"hostile{i}", "value_as_number": value})  # loads
            rows.append({**first, "measurement_id": f"nocode{i}", "measurement_code": None,
                         "value_as_number": value})  # missing_required_field: the raw double in its record
            rows.append({**first, "value_as_number": value})  # duplicate_primary_key: the staged double
        return rows

    _rewrite(folder, "measurement", {}, measurements)

    def drugs(first):
        return [{**first, "drug_exposure_id": 900000 + i, "days_supply": value}
                for i, value in enumerate(DAYS_SUPPLY)]

    _rewrite(folder, "drug_exposure", {"days_supply": pa.float32(), "drug_exposure_id": pa.uint32()}, drugs)

    def visits(first):
        return [{**first, "visit_occurrence_id": f"{kind}{i}", "visit_start_date": start,
                 **({"visit_type": None} if kind == "notype" else {})}
                for i, start in enumerate(TIMESTAMPS) for kind in ("ts", "notype")]

    _rewrite(folder, "visit_occurrence", {"visit_start_date": pa.timestamp("us")}, visits)

    def conditions(first):
        return [{**first, "condition_occurrence_id": 800000 + i, "condition_end_date": end,
                 **({"condition_code": None} if i % 2 else {})} for i, end in enumerate(DATES)]

    _rewrite(folder, "condition_occurrence", {"condition_occurrence_id": pa.int64(), "person_id": pa.int32()},
             conditions)
    return folder


@pytest.mark.spark
def test_a_hostile_parquet_extract_loads_identically_on_both_engines(spark, hostile_parquet):
    detected = detect_format(hostile_parquet)
    assert spark_ingest_refusal(detected.label, registry.format_named(detected.name).sources(detected)) is None
    con = duckdb.connect()
    load_extract(con, hostile_parquet)
    # Small splits: a file's row groups are read by several tasks, and its rows still numbered in file order.
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    try:
        with empty_catalog(spark):
            load_extract_on_spark(spark, hostile_parquet)
            assert spark.read.parquet(str(hostile_parquet / "measurement.parquet")).rdd.getNumPartitions() > 1
            assert_same_ingest(con, spark)
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    # The comparison covers what it claims.
    reasons = {(table, reason) for (table, _, _, _, reason) in rejects_on_duckdb(con)}
    assert {("person", "number_out_of_range"), ("drug_exposure", "non_integer_number"),
            ("drug_exposure", "unparseable_number"), ("drug_exposure", "infinite_number"),
            ("drug_exposure", "number_out_of_range"), ("measurement", "missing_required_field"),
            ("measurement", "duplicate_primary_key"), ("visit_occurrence", "missing_required_field"),
            ("condition_occurrence", "missing_required_field")} <= reasons
    [(rows,)] = con.execute("SELECT count(*) FROM ingest.rejects WHERE table_name = 'measurement' "
                            "AND (record LIKE '%1e21%' OR record LIKE '%1e-7%')").fetchall()
    assert rows >= 2
    # A Parquet reject's line is its row in the file (1 = the first row), as DuckDB numbers it.
    [(last_row, line)] = con.execute(
        "SELECT (SELECT count(*) FROM read_parquet($path)), max(line) FROM ingest.rejects "
        "WHERE table_name = 'measurement'", {"path": str(hostile_parquet / "measurement.parquet")}).fetchall()
    assert line == last_row


def _write(tmp_path, columns: dict[str, pa.Array]):
    path = tmp_path / "measurement.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def _base(n: int = 1) -> dict[str, pa.Array]:
    return {"measurement_id": pa.array(["1"] * n), "person_id": pa.array(["1"] * n),
            "measurement_vocabulary": pa.array(["LOINC"] * n), "measurement_code": pa.array(["2345-7"] * n),
            "measurement_date": pa.array([dt.date(2020, 1, 1)] * n, pa.date32())}


MEASUREMENT = spec.TABLES_BY_NAME["measurement"]


@pytest.mark.parametrize(("column", "values", "named"), [
    ("value_as_number", pa.array([decimal.Decimal("1.50")], pa.decimal128(10, 2)), "decimal128(10, 2)"),
    ("measurement_date", pa.array([dt.datetime(2020, 1, 1)], pa.timestamp("us", tz="UTC")),
     "timestamp[us, tz=UTC]"),
    ("measurement_date", pa.array([dt.datetime(2020, 1, 1)], pa.timestamp("ns")), "timestamp[ns]"),
    ("measurement_id", pa.array([1.0]), "double"),
    ("extra", pa.array([{"a": 1}]), "struct<a: int64>"),
])
def test_parquet_types_spark_does_not_read_as_duckdb_stay_on_duckdb(tmp_path, column, values, named):
    path = _write(tmp_path, {**_base(), column: values})
    refusal = parquet_refusal(path, MEASUREMENT)
    assert refusal is not None and f"column {column} is {named}" in refusal


def test_the_types_spark_reads_as_duckdb_are_not_refused(tmp_path):
    path = _write(tmp_path, {**_base(), "value_as_number": pa.array([1.5], pa.float32()),
                             "measurement_id": pa.array([7], pa.uint16()), "extra": pa.array([b"x"])})
    assert parquet_refusal(path, MEASUREMENT) is None
