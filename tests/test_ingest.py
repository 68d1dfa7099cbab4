"""Ingest: every input row is loaded or rejected with its reason, file and line; codes and values normalised."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines import extract_spec as spec
from pipelines.ingest.loader import ExtractError, load_extract

# A small extract with one planted problem per line that the comments name. Line numbers count the header as 1.
FIXTURE = {
    "person.csv": """person_id,year_of_birth,sex,site_id
P1,1950,female,A
P2,19x0,M,A
P3,1960,M,B
,1970,F,B
P3,1961,M,B
P4,1980,U
P5,1990,Male,B
""",
    # line 3 unparseable_number, line 5 missing_required_field, line 6 duplicate_primary_key, line 7 malformed_line
    "observation_period.csv": """observation_period_id,person_id,observation_period_start_date,observation_period_end_date
1,P1,2015-01-01,2020-12-31
2,P3,2015-01-01,2019-12-31
3,P9,2015-01-01,2019-12-31
4,P2,2015-01-01,2019-12-31
""",
    # line 4 unknown_person (P9 never existed), line 5 unknown_person (P2 was rejected)
    "visit_occurrence.csv": """visit_occurrence_id,person_id,visit_type,visit_start_date,visit_end_date
V1,P1,OP,2016-01-01,
V2,P1,Inpatient,2016-02-01,2016-02-03
V3,P3,ER,2017-01-01,2017-01-01
""",
    "condition_occurrence.csv": """condition_occurrence_id,person_id,condition_vocabulary,condition_code,condition_start_date,condition_end_date,visit_occurrence_id
C1,P1,ICD-10-CM,R252,2016-01-01,,V1
C2,P1,snomed ct,55300003,2016-13-01,,V1
C3,P3,icd10cm,e11.9,2017-01-01,,
C1,P3,ICD10CM,E11.9,2017-01-01,,
C4,P3,ICD10CM,E11.9
C5,P3,ICD10CM,,2017-01-01,,
C6,P5,SNOMED,449918009,31/12/2019,,
C7,P5,ICD10CM,G20,2018-05-05,,
""",
    # line 3 unparseable_date, 5 duplicate_primary_key, 6 malformed_line, 7 missing_required_field, 8 unparseable_date
    "drug_exposure.csv": """drug_exposure_id,person_id,drug_vocabulary,drug_code,drug_exposure_start_date,drug_exposure_end_date,days_supply,quantity,visit_occurrence_id
D1,P1,RxNorm,5487,2016-01-01,,30,30,
D2,P1,ATC,c03aa03,2016-02-01,,abc,30,
D3,P3,atc,C10AA05,2016-02-01,2016-03-01,90,90,
D4,P3,ATC,C10AA05,2016-06-01,,,,
""",
    # line 3 unparseable_number
    "measurement.csv": """measurement_id,person_id,measurement_vocabulary,measurement_code,measurement_date,value_as_number,unit,laterality,visit_occurrence_id
M1,P1,LOINC,2951-2,2016-01-01,133,mmol/L,,
M2,P1,SNOMED,446841001,2016-01-01,0.85,ratio,left,
M3,P1,SNOMED,446841001,2016-01-01,1.05,ratio,Right,
M4,P3,LOINC,19123-9,2016-01-01,1.2.3,mg/dL,,
""",
    # line 5 unparseable_number
    "procedure_occurrence.csv": """procedure_occurrence_id,person_id,procedure_vocabulary,procedure_code,procedure_date,visit_occurrence_id
PR1,P1,CPT4,93922,2016-01-01,V1
""",
    "death.csv": """person_id,death_date
P3,2019-06-30
P3,2019-07-01
""",
    # line 3 duplicate_primary_key
}

EXPECTED_REJECTS = {
    ("person", 3, "unparseable_number", "year_of_birth"),
    ("person", 5, "missing_required_field", "person_id"),
    ("person", 6, "duplicate_primary_key", "person_id"),
    ("person", 7, "malformed_line", None),
    ("observation_period", 4, "unknown_person", "person_id"),
    ("observation_period", 5, "unknown_person", "person_id"),
    ("condition_occurrence", 3, "unparseable_date", "condition_start_date"),
    ("condition_occurrence", 5, "duplicate_primary_key", "condition_occurrence_id"),
    ("condition_occurrence", 6, "malformed_line", None),
    ("condition_occurrence", 7, "missing_required_field", "condition_code"),
    ("condition_occurrence", 8, "unparseable_date", "condition_start_date"),
    ("drug_exposure", 3, "unparseable_number", "days_supply"),
    ("measurement", 5, "unparseable_number", "value_as_number"),
    ("death", 3, "duplicate_primary_key", "person_id"),
}


# The fixture plants a reject on most of its lines (4 of person's 7 records, 5 of condition_occurrence's 8): a run of
# the whole job on it stops at the ingest's reject-share checks (default 1%) unless it accepts that share.
FIXTURE_MAX_REJECT_SHARE = 0.75


def accepting_fixture_rejects(run_config: dict) -> dict:
    """`run_config` (resources.extract.config) with the reject share a run on the fixture needs."""
    run_config["resources"]["extract"]["config"]["max_reject_share"] = FIXTURE_MAX_REJECT_SHARE
    return run_config


def write_fixture(folder: Path, files: dict[str, str] = FIXTURE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


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
