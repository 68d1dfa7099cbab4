"""Real OMOP extracts as sites ship them: a repeated concept row, drugs that reach their ingredient only through
RxNorm relationships, absent clinical tables, prefixed file names, tab-separated files, extra columns and
date-shifted data. Each test works on its own copy of the shared Synthea27Nj extract (OMOP CDM v5.4, 28 persons)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.formats import load_extract_any_format
from pipelines.phenotypes.loader import phenotype_library
from tests.support.hand_omop import OMOP_CLINICAL_TABLES, OMOP_VOCABULARY_TABLES, synthea27nj_copy

TABLES = OMOP_CLINICAL_TABLES + OMOP_VOCABULARY_TABLES


def _copy_of_the_extract(parent: Path) -> Path:
    return synthea27nj_copy(parent / "extract", TABLES)


@pytest.fixture
def extract(tmp_path) -> Path:
    return _copy_of_the_extract(tmp_path)


def _data_rows(path: Path) -> int:
    return len(path.read_bytes().splitlines()) - 1


def _source(path: Path) -> str:
    return f"read_csv('{path}', header = true, all_varchar = true)"


def _counts(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int, int]:
    return con.execute("SELECT input_records, loaded, rejected FROM ingest.load_counts WHERE table_name = ?",
                       [table]).fetchone()


def test_a_repeated_concept_id_never_multiplies_events(extract):
    concept = extract / "CONCEPT.csv"
    # The concept of the most frequent condition, repeated with another concept_class_id (as in the MIMIC demo).
    [(concept_id, rows)] = duckdb.connect().execute(
        f"SELECT condition_concept_id, count(*) FROM {_source(extract / 'CONDITION_OCCURRENCE.csv')} "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1").fetchall()
    assert rows > 1
    [line] = [line for line in concept.read_text().splitlines() if line.split(",")[0] == concept_id]
    fields = line.split(",")
    fields[4] = "Clinical Finding Copy"  # concept_class_id
    with concept.open("a") as handle:
        handle.write(",".join(fields) + "\n")

    con = duckdb.connect()
    result = load_extract_any_format(con, extract)
    file_rows = _data_rows(extract / "CONDITION_OCCURRENCE.csv")
    assert _counts(con, "condition_occurrence") == (file_rows, file_rows, 0)
    assert con.execute("SELECT count(*) FROM staging.condition_occurrence").fetchone()[0] == file_rows
    [defect] = [w for w in result.warnings if w.startswith("vocabulary defect")]
    assert "CONCEPT.csv has 1 concept_id(s) on more than one row (1 with differing" in defect
    assert concept_id in defect


def test_drugs_reach_their_ingredient_through_rxnorm_relationships(extract):
    """No concept_ancestor: clinical drugs reach their ingredients through 'Consists of' -> 'RxNorm has ing'."""
    (extract / "CONCEPT_ANCESTOR.csv").unlink()
    con = duckdb.connect()
    result = load_extract_any_format(con, extract)
    # Lisinopril 10 / 20 MG Oral Tablet (OMOP 19080128, 19080129) stand for the ingredient lisinopril (RxCUI 29046).
    mapped = {row[0] for row in con.execute(
        "SELECT code FROM vocabulary.concept_code_map WHERE mapped_vocabulary = 'RxNorm' AND mapped_code = '29046' "
        "AND mapping = 'ingredient'").fetchall()}
    assert mapped == {"314076", "314077"}
    [report] = [w for w in result.warnings if w.startswith("drug ingredients:")]
    # 121 records (the count, from the extract's own relationships) resolve, none through concept_ancestor.
    assert report.startswith("drug ingredients: 121 of 883 drug records resolve to an RxNorm ingredient "
                             "(0 through concept_ancestor, 121 through the RxNorm relationship chain")
    assert "762 records of 26 of 26 persons resolve to none (RxNorm 762)" in report
    assert "ace_inhibitors" not in " ".join(w for w in result.warnings if "drug phenotype(s)" in w)


def _parquet_copy(folder: Path, target: Path, tables: tuple[str, ...]) -> Path:
    target.mkdir()
    con = duckdb.connect()
    for table in tables:
        con.execute(f"COPY (SELECT * FROM {_source(folder / f'{table}.csv')}) TO '{target / table}.parquet' "
                    "(FORMAT parquet)")
    return target


@pytest.mark.slow
def test_parquet_extract_without_concept_ancestor_finds_the_lisinopril_users(extract, tmp_path, dagster_instance):
    from pipelines.run import failure_messages, run_study

    folder = _parquet_copy(extract, tmp_path / "parquet", tuple(t for t in TABLES if t != "CONCEPT_ANCESTOR"))
    database = tmp_path / "study.duckdb"
    result = run_study(folder, database, instance=dagster_instance)
    assert result.success, "\n".join(failure_messages(result))
    lisinopril_users = {row[0] for row in duckdb.connect().execute(
        f"SELECT DISTINCT person_id FROM {_source(extract / 'DRUG_EXPOSURE.csv')} "
        "WHERE drug_concept_id IN ('19080128', '19080129')").fetchall()}
    assert len(lisinopril_users) == 4
    with duckdb.connect(str(database), read_only=True) as con:
        ace_users = {str(row[0]) for row in con.execute(
            "SELECT person_id FROM phenotype.person_summary WHERE phenotype_id = 'ace_inhibitors'").fetchall()}
    assert lisinopril_users <= ace_users


def test_absent_clinical_tables_are_created_empty_with_a_warning(extract):
    for table in ("MEASUREMENT", "PROCEDURE_OCCURRENCE", "DEATH", "VISIT_OCCURRENCE"):
        (extract / f"{table}.csv").unlink()
    con = duckdb.connect()
    result = load_extract_any_format(con, extract, phenotype_vocabularies=phenotype_library().code_vocabularies())
    for table in ("measurement", "procedure_occurrence", "death", "visit_occurrence"):
        assert con.execute(f"SELECT count(*) FROM staging.{table}").fetchone()[0] == 0
        assert _counts(con, table) == (0, 0, 0)
    [measurement] = [w for w in result.warnings if w.startswith("the extract ships no measurement table")]
    assert "hyponatremia_lab" in measurement and "hypokalemia_lab" in measurement
    assert "hyponatremia_lab" in result.unresolvable_phenotypes["measurement"]
    [death] = [w for w in result.warnings if w.startswith("the extract ships no death table")]
    assert "nobody is censored at death" in death
    assert any(w.startswith("the extract ships no procedure_occurrence table") for w in result.warnings)
    # The tables it has load as before.
    rows = _data_rows(extract / "CONDITION_OCCURRENCE.csv")
    assert _counts(con, "condition_occurrence") == (rows, rows, 0)


def test_a_prefixed_vocabulary_file_is_named_with_the_expected_names(extract):
    (extract / "CONCEPT.csv").rename(extract / "2b_concept.csv")
    result = load_extract_any_format(duckdb.connect(), extract)
    [warning] = [w for w in result.warnings if w.startswith("file(s) not recognised")]
    assert "2b_concept.csv" in warning and "concept.csv, concept_relationship.csv, concept_ancestor.csv" in warning


@pytest.fixture(scope="module")
def comma_separated_load(tmp_path_factory) -> tuple[list, list]:
    """The load counts and persons of the unchanged comma-separated extract, loaded once for every delimiter."""
    reference = duckdb.connect()
    load_extract_any_format(reference, _copy_of_the_extract(tmp_path_factory.mktemp("comma_separated")))
    expected = reference.execute("SELECT * FROM ingest.load_counts ORDER BY table_name").fetchall()
    persons = reference.execute("SELECT * FROM staging.person ORDER BY person_id").fetchall()
    return expected, persons


@pytest.mark.parametrize("delimiter, suffix", [("\t", ".csv"), ("\t", ".tsv"), ("|", ".txt"), (";", ".csv")])
def test_delimited_files_are_sniffed(extract, tmp_path, delimiter, suffix, comma_separated_load):
    expected, persons = comma_separated_load

    converted = tmp_path / "converted"
    converted.mkdir()
    con = duckdb.connect()
    for table in TABLES:
        con.execute(f"COPY (SELECT * FROM {_source(extract / f'{table}.csv')}) TO '{converted / table}{suffix}' "
                    f"(FORMAT csv, HEADER, DELIMITER '{delimiter}')")
    con = duckdb.connect()
    load_extract_any_format(con, converted)
    counts = con.execute("SELECT * FROM ingest.load_counts ORDER BY table_name").fetchall()
    assert [row[2:] for row in counts] == [row[2:] for row in expected]  # the same records, loads and rejects
    assert con.execute("SELECT * FROM staging.person ORDER BY person_id").fetchall() == persons


def test_omop_ignored_columns_are_the_file_columns_the_ingest_does_not_read(extract):
    con = duckdb.connect()
    load_extract_any_format(con, extract)
    ignored = json.loads(con.execute("SELECT ignored_columns FROM ingest.load_counts WHERE table_name = 'person'"
                                     ).fetchone()[0])
    assert "gender_source_value" in ignored and "race_concept_id" in ignored
    assert not {"person_id", "gender_concept_id", "year_of_birth"} & set(ignored)
    visit = json.loads(con.execute("SELECT ignored_columns FROM ingest.load_counts "
                                   "WHERE table_name = 'visit_occurrence'").fetchone()[0])
    assert "admitted_from_concept_id" in visit and "visit_start_date" not in visit


def test_absent_tables_are_warned_in_the_dagster_log_and_metadata(extract, tmp_path, dagster_instance):
    import logging

    import dagster as dg

    from pipelines.ingest.assets import build_staging_asset, staging_key
    from pipelines.ingest.resources import ExtractSource
    from pipelines.warehouse import Warehouse

    for table in ("MEASUREMENT", "DEATH"):
        (extract / f"{table}.csv").unlink()
    result = dg.materialize(
        [build_staging_asset(phenotype_library().code_vocabularies())],
        resources={"extract": ExtractSource(folder=str(extract)),
                   "warehouse": Warehouse(database_path=str(tmp_path / "published.duckdb"))},
        instance=dagster_instance,
    )
    assert result.success
    metadata = {event.asset_key: event.materialization.metadata
                for event in result.get_asset_materialization_events()}
    assert "hyponatremia_lab" in metadata[staging_key("measurement")]["warning"].value
    assert "censored at death" in metadata[staging_key("death")]["warning"].value
    assert "warning" not in metadata[staging_key("condition_occurrence")]
    warnings = [entry.user_message for entry in dagster_instance.all_logs(result.run_id)
                if entry.level == logging.WARNING]
    assert any(m.startswith("the extract ships no measurement table") for m in warnings)
    assert any(m.startswith("the extract ships no death table") for m in warnings)


def test_a_study_period_outside_the_extract_names_both_ranges():
    from pipelines.cohorts.attrition import study_period_warning
    from pipelines.cohorts.study import load_studies

    study = load_studies()["leg_cramps"]
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.observation_period AS SELECT * FROM (VALUES "
                "(DATE '2110-03-01', DATE '2150-06-30'), (DATE '2140-01-01', DATE '2202-01-31')) "
                "AS t(observation_period_start_date, observation_period_end_date)")
    everybody_leaves = [("in_extract", 100, 100, 0), ("no_observation_in_study_period", 100, 0, 100)]
    warning = study_period_warning(con, study, everybody_leaves)
    assert (f"study period ({study.study_period.start} to {study.study_period.end}): the extract observes "
            "2110-03-01 to 2202-01-31, so all 100 persons leave") in warning
    assert '{"leg_cramps": {"study_period": {"start": "2110-03-01", "end": "2202-01-31"}}}' in warning
    assert study_period_warning(con, study, [("in_extract", 100, 100, 0),
                                             ("no_observation_in_study_period", 100, 3, 97)]) is None


def test_check_reports_layout_and_vocabulary_problems_without_a_run(extract, capsys):
    from pipelines.run import main

    concept = extract / "CONCEPT.csv"
    first_row = concept.read_text().splitlines()[1]
    with concept.open("a") as handle:
        handle.write(first_row + "\n")
    concept.rename(extract / "CONCEPT_v2.csv")
    (extract / "MEASUREMENT.csv").unlink()
    assert main(["--check", "--extract", str(extract)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("extract format: omop_cdm_v5.4")
    assert "WARNING: file(s) not recognised as OMOP CDM tables, not read: CONCEPT_v2.csv" in out
    assert "WARNING: the extract ships no measurement table" in out and "hyponatremia_lab" in out

    concept = extract / "CONCEPT_v2.csv"
    concept.rename(extract / "CONCEPT.csv")
    assert main(["--check", "--extract", str(extract)]) == 0
    assert "vocabulary defect: CONCEPT.csv has 1 concept_id(s) on more than one row (0 with differing" \
           in capsys.readouterr().out

    (extract / "OBSERVATION_PERIOD.csv").unlink()
    assert main(["--check", "--extract", str(extract)]) == 1
    assert "required file(s) are missing: observation_period.csv" in capsys.readouterr().err
