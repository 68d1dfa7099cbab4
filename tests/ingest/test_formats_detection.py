"""Extract formats: detection, clear errors for unknown and mixed layouts, site mappings, and the report
of phenotypes an extract cannot resolve."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.formats import detect_format, load_extract_any_format
from pipelines.ingest.loader import ExtractError
from pipelines.phenotypes.loader import phenotype_library
from tests.support.paths import SHARED_DATA

GIBLEED = SHARED_DATA / "omop" / "eunomia_gibleed_v5.3"
SYNTHEA27NJ = SHARED_DATA / "omop" / "eunomia_synthea27nj_v5.4"
SYNTHEA_MA27 = SHARED_DATA / "synthea" / "dbt_synthea_ma27"


def _require(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"shared sample extract {folder} is absent (see ../shared/data/README.md)")


def test_detects_the_shared_extracts():
    for folder, label in ((GIBLEED, "omop_cdm_v5.3"), (SYNTHEA27NJ, "omop_cdm_v5.4"), (SYNTHEA_MA27, "synthea_csv")):
        _require(folder)
        assert detect_format(folder).label == label


def test_unknown_layout_names_what_is_expected(tmp_path):
    (tmp_path / "stuff.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ExtractError) as error:
        detect_format(tmp_path)
    message = str(error.value)
    assert "unrecognised extract layout" in message and "stuff.csv" in message
    assert "gender_concept_id" in message and "patients.csv" in message and "extract_mapping.yaml" in message


def test_mixed_layout_is_refused(tmp_path):
    (tmp_path / "person.csv").write_text("person_id,year_of_birth,sex\n1,1950,F\n")
    (tmp_path / "patients.csv").write_text("Id,BIRTHDATE,GENDER\nx,1950-01-01,F\n")
    with pytest.raises(ExtractError, match="mixed layouts: patients.csv, person.csv"):
        detect_format(tmp_path)


def test_omop_missing_file_and_column_are_named(tmp_path):
    _require(GIBLEED)
    # Only person and observation_period are required; the clinical tables are optional (created empty).
    for name in ("person.csv", "visit_occurrence.csv", "condition_occurrence.csv"):
        shutil.copy(GIBLEED / name, tmp_path / name.upper())
    with pytest.raises(ExtractError, match=r"required file\(s\) are missing: observation_period.csv\."):
        detect_format(tmp_path)
    (tmp_path / "OBSERVATION_PERIOD.csv").write_text("observation_period_id,person_id,observation_period_start_date\n")
    with pytest.raises(ExtractError, match="OBSERVATION_PERIOD.csv lacks observation_period_end_date"):
        detect_format(tmp_path)


def test_omop_without_vocabulary_reports_unresolvable_phenotypes(tmp_path):
    _require(SYNTHEA27NJ)
    for path in SYNTHEA27NJ.iterdir():
        if path.name.upper() not in ("CONCEPT.CSV", "CONCEPT_RELATIONSHIP.CSV", "CONCEPT_ANCESTOR.CSV"):
            shutil.copy(path, tmp_path / path.name)
    con = duckdb.connect()
    result = load_extract_any_format(con, tmp_path, phenotype_vocabularies=phenotype_library().code_vocabularies())
    assert result.extract_format == "omop_cdm_v5.4"
    assert "hypothyroidism" in result.unresolvable_phenotypes["condition_occurrence"]
    assert "statins" in result.unresolvable_phenotypes["drug_exposure"]
    assert "hyponatremia_lab" in result.unresolvable_phenotypes["measurement"]
    assert any("no vocabulary tables" in w for w in result.warnings)


def test_synthea27nj_drug_phenotypes_resolve_through_rxnorm_relationships():
    _require(SYNTHEA27NJ)
    result = load_extract_any_format(duckdb.connect(), SYNTHEA27NJ,
                                     phenotype_vocabularies=phenotype_library().code_vocabularies())
    # Its CONCEPT_ANCESTOR is empty; 121 drug records reach an ingredient through concept_relationship (ACE
    # inhibitors among them), the others' ingredients are not in its CONCEPT table.
    assert "ace_inhibitors" not in result.unresolvable_phenotypes["drug_exposure"]
    assert "other_lipid_lowering" in result.unresolvable_phenotypes["drug_exposure"]  # ATC codes only
    assert any(w.startswith("drug ingredients: 121 of 883 drug records") for w in result.warnings)
    assert "hypothyroidism" not in result.unresolvable_phenotypes.get("condition_occurrence", [])


def test_synthea_drug_phenotypes_are_reported_unresolvable():
    _require(SYNTHEA_MA27)
    result = load_extract_any_format(duckdb.connect(), SYNTHEA_MA27,
                                     phenotype_vocabularies=phenotype_library().code_vocabularies())
    assert "statins" in result.unresolvable_phenotypes["drug_exposure"]


def test_site_mapping_loads_with_reject_accounting(tmp_path):
    (tmp_path / "extract_mapping.yaml").write_text(
        'date_format: "%d/%m/%Y"\n'
        "tables:\n"
        "  person: {file: pats.csv, columns: {person_id: PatID, year_of_birth: YOB, sex: Gender}}\n"
        "  observation_period: {file: periods.csv, columns: {observation_period_id: ID, person_id: PatID,"
        " observation_period_start_date: Start, observation_period_end_date: End}}\n"
        "  visit_occurrence: {file: visits.csv, columns: {visit_occurrence_id: ID, person_id: PatID,"
        " visit_type: Kind, visit_start_date: Date}}\n"
        "  condition_occurrence:\n"
        "    file: dx.csv\n"
        "    columns: {condition_occurrence_id: ID, person_id: PatID, condition_code: Dx, condition_start_date: Date}\n"
        "    code_systems: {condition_code: ICD10CM}\n"
        "  drug_exposure: {file: rx.csv, columns: {drug_exposure_id: ID, person_id: PatID, drug_code: ATC,"
        " drug_exposure_start_date: Date}, code_systems: {drug_code: ATC}}\n"
        "  measurement: {file: labs.csv, columns: {measurement_id: ID, person_id: PatID, measurement_code: LOINC,"
        " measurement_date: Date, value_as_number: Value, unit: Unit}, code_systems: {measurement_code: LOINC}}\n"
        "  procedure_occurrence: {file: px.csv, columns: {procedure_occurrence_id: ID, person_id: PatID,"
        " procedure_code: Code, procedure_date: Date}, code_systems: {procedure_code: CPT4}}\n"
    )
    (tmp_path / "pats.csv").write_text("PatID,YOB,Gender\np1,1950,female\np2,1960,M\n")
    (tmp_path / "periods.csv").write_text("ID,PatID,Start,End\no1,p1,01/01/2015,31/12/2020\no2,p2,01/01/2015,31/12/2020\n")
    (tmp_path / "visits.csv").write_text("ID,PatID,Kind,Date\nv1,p1,OP,03/02/2016\n")
    (tmp_path / "dx.csv").write_text("ID,PatID,Dx,Date\nd1,p1,R252,03/02/2016\nd2,p2,R25.2,2016-13-45\nd3,p9,R25.2,03/02/2016\n")
    (tmp_path / "rx.csv").write_text("ID,PatID,ATC,Date\nr1,p1,C10AA01,03/02/2016\n")
    (tmp_path / "labs.csv").write_text("ID,PatID,LOINC,Date,Value,Unit\nl1,p1,2823-3,03/02/2016,3.1,mmol/L\n")
    (tmp_path / "px.csv").write_text("ID,PatID,Code,Date\n")
    con = duckdb.connect()
    result = load_extract_any_format(con, tmp_path)
    assert result.extract_format == "site_mapping"
    assert con.execute("SELECT condition_vocabulary, condition_code, condition_start_date::VARCHAR "
                       "FROM staging.condition_occurrence").fetchall() == [("ICD10CM", "R25.2", "2016-02-03")]
    assert con.execute("SELECT reason, line FROM ingest.rejects WHERE table_name = 'condition_occurrence' "
                       "ORDER BY line").fetchall() == [("unparseable_date", 3), ("unknown_person", 4)]
    assert con.execute("SELECT sex FROM staging.person ORDER BY person_id").fetchall() == [("F",), ("M",)]
    load = result.loads["condition_occurrence"]
    assert (load.input_records, load.loaded, load.rejected) == (3, 1, 2)


def test_site_mapping_names_a_missing_column(tmp_path):
    (tmp_path / "extract_mapping.yaml").write_text(
        "tables:\n  person: {file: pats.csv, columns: {person_id: PatientNumber, year_of_birth: YOB, sex: Gender}}\n"
        + "".join(f"  {t}: {{file: pats.csv, columns: {{}}}}\n" for t in (
            "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure", "measurement",
            "procedure_occurrence")))
    (tmp_path / "pats.csv").write_text("PatID,YOB,Gender\np1,1950,F\n")
    with pytest.raises(ExtractError, match="column.*PatientNumber not in pats.csv"):
        load_extract_any_format(duckdb.connect(), tmp_path)
