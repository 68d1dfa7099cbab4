"""A timestamp with a time zone in a Parquet extract is an instant, staged as its UTC date whatever the time zone of
the machine (DuckDB's session time zone defaults to TZ): pipelines/ingest/formats/__init__.py utc_session."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from pipelines.ingest.formats import load_extract_any_format
from pipelines.sql_quoting import quote_literal


@pytest.fixture(scope="module")
def extract_with_instants(generated_extract, tmp_path_factory):
    """The 50-patient Parquet extract with condition_start_date as TIMESTAMPTZ at 02:00 UTC of each recorded date
    (21:00 of the day before in New York, 11:00 of the same day in Tokyo), and the dates as generated."""
    folder = tmp_path_factory.mktemp("instants") / "extract"
    shutil.copytree(generated_extract(50, 1, fmt="parquet").path, folder)
    conditions = folder / "condition_occurrence.parquet"
    original = folder.parent / "generated_conditions.parquet"
    conditions.rename(original)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"""COPY (SELECT * REPLACE (CAST(CAST(condition_start_date AS TIMESTAMP) + INTERVAL 2 HOUR
                                                     AS TIMESTAMPTZ) AS condition_start_date)
                              FROM read_parquet({quote_literal(original)}))
                        TO {quote_literal(conditions)} (FORMAT parquet)""")
        assert con.execute(f"SELECT typeof(condition_start_date) FROM read_parquet({quote_literal(conditions)}) "
                           "LIMIT 1").fetchone()[0] == "TIMESTAMP WITH TIME ZONE"
        dates = dict(con.execute(f"SELECT condition_occurrence_id, CAST(condition_start_date AS DATE) "
                                 f"FROM read_parquet({quote_literal(original)})").fetchall())
    original.unlink()
    return folder, dates


@pytest.mark.parametrize("machine_time_zone", ["America/New_York", "Asia/Tokyo", "UTC"])
def test_an_instant_is_staged_as_its_utc_date_in_any_time_zone(extract_with_instants, machine_time_zone):
    folder, dates = extract_with_instants
    con = duckdb.connect()
    con.execute(f"SET TimeZone = {quote_literal(machine_time_zone)}")  # as a machine with TZ set to it
    load_extract_any_format(con, folder)
    staged = dict(con.execute("SELECT condition_occurrence_id, condition_start_date "
                              "FROM staging.condition_occurrence").fetchall())
    assert staged and staged == {key: dates[key] for key in staged}
    # The connection's own time zone is back after the load.
    assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == machine_time_zone
