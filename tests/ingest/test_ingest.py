"""Ingest: every input row is loaded or rejected with its reason, file and line; codes and values normalised."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines import extract_spec as spec
from pipelines.ingest.loader import ExtractError, load_extract
from tests.support.planted_rejects import EXPECTED_REJECTS, FIXTURE, write_fixture

@pytest.fixture
def extract(tmp_path) -> Path:
    return write_fixture(tmp_path / "extract")


def load(folder: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    load_extract(con, folder)
    return con


def test_every_planted_reject_is_found_with_its_reason_line_and_column(extract):
    con = load(extract)
    rejects = set(con.execute("SELECT table_name, line, reason, column_name FROM ingest.rejects").fetchall())
    assert rejects == EXPECTED_REJECTS


def test_counts_add_up_for_every_table(extract):
    con = load(extract)
    for table in spec.TABLES:
        data_lines = FIXTURE[f"{table.name}.csv"].strip("\n").count("\n")
        row = con.execute(
            "SELECT input_records, loaded, rejected FROM ingest.load_counts WHERE table_name = ?", [table.name]
        ).fetchone()
        input_records, loaded, rejected = row
        assert input_records == data_lines, table.name
        assert loaded + rejected == input_records, table.name
        assert con.execute(f"SELECT count(*) FROM staging.{table.name}").fetchone()[0] == loaded
        assert con.execute(
            "SELECT count(*) FROM ingest.rejects WHERE table_name = ?", [table.name]
        ).fetchone()[0] == rejected


def test_reject_rows_keep_the_raw_record_and_a_readable_detail(extract):
    con = load(extract)
    record, detail = con.execute(
        "SELECT record, detail FROM ingest.rejects WHERE table_name = 'condition_occurrence' AND line = 8"
    ).fetchone()
    assert '"condition_start_date":"31/12/2019"' in record
    assert detail == "condition_start_date cannot be read as a YYYY-MM-DD date"
    malformed = con.execute(
        "SELECT record, detail FROM ingest.rejects WHERE table_name = 'person' AND reason = 'malformed_line'"
    ).fetchone()
    assert malformed[0] == "P4,1980,U"
    assert "Expected Number of Columns: 4 Found: 3" in malformed[1]


def test_codes_vocabularies_and_coded_values_are_normalised(extract):
    con = load(extract)
    conditions = dict(con.execute(
        "SELECT condition_occurrence_id, condition_vocabulary || '|' || condition_code FROM staging.condition_occurrence"
    ).fetchall())
    assert conditions == {"C1": "ICD10CM|R25.2", "C3": "ICD10CM|E11.9", "C7": "ICD10CM|G20"}
    assert dict(con.execute("SELECT person_id, sex FROM staging.person").fetchall()) == {
        "P1": "F", "P3": "M", "P5": "M"}
    assert dict(con.execute("SELECT visit_occurrence_id, visit_type FROM staging.visit_occurrence").fetchall()) == {
        "V1": "outpatient", "V2": "inpatient", "V3": "emergency"}
    assert dict(con.execute("SELECT drug_exposure_id, drug_vocabulary || '|' || drug_code "
                            "FROM staging.drug_exposure").fetchall()) == {
        "D1": "RxNorm|5487", "D3": "ATC|C10AA05", "D4": "ATC|C10AA05"}
    assert dict(con.execute("SELECT measurement_id, laterality FROM staging.measurement").fetchall()) == {
        "M1": None, "M2": "L", "M3": "R"}


def test_drug_end_date_is_recorded_end_else_start_plus_days_supply(extract):
    con = load(extract)
    ends = dict(con.execute(
        "SELECT drug_exposure_id, CAST(drug_exposure_end_date AS VARCHAR) FROM staging.drug_exposure").fetchall())
    assert ends == {"D1": "2016-01-30", "D3": "2016-03-01", "D4": "2016-06-01"}


def test_gzip_and_parquet_load_the_same_rows_as_csv(extract, tmp_path):
    reference = load(extract)
    gz_folder = tmp_path / "gz"
    gz_folder.mkdir()
    for name, text in FIXTURE.items():
        with gzip.open(gz_folder / f"{name}.gz", "wt") as handle:
            handle.write(text)
    gz = load(gz_folder)

    # Parquet: the clean rows of each table, typed, as another system would export them.
    parquet_folder = tmp_path / "parquet"
    parquet_folder.mkdir()
    for table in spec.TABLES:
        reference.execute(
            f"COPY staging.{table.name} TO '{parquet_folder / (table.name + '.parquet')}' (FORMAT parquet)")
    parquet = load(parquet_folder)

    for table in spec.TABLES:
        query = f"SELECT * FROM staging.{table.name} ORDER BY ALL"
        expected = reference.execute(query).fetchall()
        assert gz.execute(query).fetchall() == expected, table.name
        assert parquet.execute(query).fetchall() == expected, table.name
    assert gz.execute("SELECT count(*) FROM ingest.rejects").fetchone()[0] == len(EXPECTED_REJECTS)
    assert parquet.execute("SELECT count(*) FROM ingest.rejects").fetchone()[0] == 0


def test_reloading_the_same_extract_gives_the_same_database(extract, tmp_path):
    first, second = load(extract), load(extract)
    for table in [*(f"staging.{t.name}" for t in spec.TABLES), "ingest.rejects", "ingest.load_counts",
                  "ingest.manifest"]:
        query = f"SELECT * FROM {table} ORDER BY ALL"
        assert first.execute(query).fetchall() == second.execute(query).fetchall(), table


def test_manifest_records_size_hash_and_rows(extract):
    con = load(extract)
    size, sha, records = con.execute(
        "SELECT size_bytes, sha256, input_records FROM ingest.manifest WHERE table_name = 'person'").fetchone()
    assert size == (extract / "person.csv").stat().st_size
    assert len(sha) == 64
    assert records == 7


def test_missing_required_file_is_a_clear_error(extract):
    (extract / "drug_exposure.csv").unlink()
    with pytest.raises(ExtractError, match=r"required table file\(s\) missing: drug_exposure.csv"):
        load(extract)


def test_missing_required_column_names_the_file_and_column(extract):
    text = FIXTURE["measurement.csv"].replace("measurement_date,", "measured_on,", 1)
    (extract / "measurement.csv").write_text(text)
    with pytest.raises(ExtractError, match=r"measurement.csv: required column\(s\) measurement_date missing"):
        load(extract)


def test_optional_death_table_may_be_absent(extract):
    (extract / "death.csv").unlink()
    con = load(extract)
    assert con.execute("SELECT count(*) FROM staging.death").fetchone()[0] == 0


def test_a_table_in_two_formats_is_ambiguous(extract):
    shutil.copy(extract / "person.csv", extract / "person.csv.gz")
    with pytest.raises(ExtractError, match="present in several files"):
        load(extract)


def test_header_column_names_are_case_insensitive_and_extra_columns_ignored(extract):
    text = FIXTURE["procedure_occurrence.csv"].replace("procedure_date", "PROCEDURE_DATE").replace(
        "visit_occurrence_id\n", "visit_occurrence_id,note\n").replace("V1\n", "V1,free text\n")
    (extract / "procedure_occurrence.csv").write_text(text)
    con = load(extract)
    assert con.execute("SELECT procedure_date FROM staging.procedure_occurrence").fetchone()[0].isoformat() == \
        "2016-01-01"
    assert con.execute("SELECT ignored_columns FROM ingest.load_counts WHERE table_name = 'procedure_occurrence'"
                       ).fetchone()[0] == '["note"]'


def test_staging_tables_and_columns_carry_the_data_dictionary_as_comments(extract):
    con = load(extract)
    comment = con.execute(
        "SELECT comment FROM duckdb_columns() WHERE schema_name = 'staging' AND table_name = 'measurement' "
        "AND column_name = 'laterality'").fetchone()[0]
    assert comment == spec.MEASUREMENT.column("laterality").description
    uncommented = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE schema_name IN ('staging') AND comment IS NULL").fetchone()[0]
    assert uncommented == 0
