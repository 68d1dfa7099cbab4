"""Ingest against the generator's truth: every planted unloadable row is rejected for its planted reason."""

from __future__ import annotations

import json

import duckdb
import pytest

from pipelines import extract_spec as spec
from pipelines.ingest.loader import load_extract
from pipelines.synthetic.defects import PLANTED_REJECT_REASONS


@pytest.fixture(scope="module", params=["csv", "csv.gz", "parquet"])
def loaded_extract(request, generated_extract):
    folder, truth = generated_extract(2_000, 7, fmt=request.param, defect_rate=0.01)
    con = duckdb.connect()
    loads = load_extract(con, folder)
    yield truth, loads, con
    con.close()


def test_reject_counts_per_reason_equal_the_planted_defects(loaded_extract):
    truth, loads, _ = loaded_extract
    for table in spec.TABLES:
        planted = truth["rejects_planted"].get(table.name, {})
        found = {reason: n for reason, n in loads[table.name].rejected_by_reason.items() if n}
        assert found == {reason: n for reason, n in planted.items() if n}, table.name


def test_nothing_is_lost(loaded_extract):
    truth, loads, con = loaded_extract
    for table in spec.TABLES:
        load = loads[table.name]
        assert load.input_records == truth["rows_written"][table.name], table.name
        assert load.loaded == truth["clean_rows"][table.name], table.name
        assert load.loaded + load.rejected == load.input_records
    rejects = con.execute("SELECT count(*) FROM ingest.rejects").fetchone()[0]
    assert rejects == sum(sum(reasons.values()) for reasons in truth["rejects_planted"].values())


def test_defects_were_actually_planted(loaded_extract):
    truth, _, _ = loaded_extract
    planted_reasons = {reason for reasons in truth["rejects_planted"].values() for reason, n in reasons.items() if n}
    if truth["generator"]["format"] == "parquet":
        # Typed Parquet columns cannot hold malformed lines or unparseable dates/numbers.
        assert planted_reasons == {"missing_required_field", "duplicate_primary_key", "unknown_person"}
    else:
        assert planted_reasons == set(PLANTED_REJECT_REASONS)


def test_manifest_matches_the_generators_manifest(loaded_extract, tmp_path):
    truth, _, con = loaded_extract
    rows = dict(con.execute("SELECT table_name, input_records FROM ingest.manifest").fetchall())
    assert rows == {t: n for t, n in truth["rows_written"].items() if t in rows}
