"""A new extract format is one module, its SQL files and one registry line: a tiny format written here, outside the
project, is detected and loaded end to end through the loader with the canonical accounting."""

from __future__ import annotations

import importlib.util
import json
import textwrap

import duckdb
import pytest

from pipelines.ingest.formats import detect_format, load_extract_any_format, registry
from pipelines.ingest.loader import ExtractError
from pipelines.phenotypes.loader import phenotype_library

# The format's module: what it declares (signature, required columns, sources, vocabulary) and nothing else.
ROSTER_MODULE = '''
from pathlib import Path

from pipelines.ingest.formats.base import ExtractFormat, Signature


class RosterFormat(ExtractFormat):
    name = "roster_csv"
    signature = Signature("roster", ("pid", "born", "gender"))
    required_columns = {"roster": ("pid", "born", "gender", "first_seen", "last_seen"),
                        "diagnoses": ("dx_id", "pid", "icd", "onset")}
    source_tables = {"person": "roster", "observation_period": "roster", "condition_occurrence": "diagnoses"}
    sql_prefix = "roster"
    sql_folder = Path(__file__).parent
    reachable_vocabularies = {"condition": {"ICD10CM"}, "drug": set(), "measurement": set()}
    unreachable_reason = {"drug": "the roster has no medication file", "measurement": "the roster has no labs"}


FORMAT = RosterFormat()
'''

ROSTER_SQL = {
    "roster_person.sql": """
        SELECT raw._record, field_text(raw.pid) AS person_id, field_text(raw.born) AS year_of_birth,
               field_text(raw.gender) AS sex
        FROM _raw_source AS raw""",
    "roster_observation_period.sql": """
        SELECT raw._record, 'op-' || field_text(raw.pid) AS observation_period_id, field_text(raw.pid) AS person_id,
               field_text(raw.first_seen) AS observation_period_start_date,
               field_text(raw.last_seen) AS observation_period_end_date
        FROM _raw_source AS raw""",
    "roster_condition_occurrence.sql": """
        SELECT raw._record, field_text(raw.dx_id) AS condition_occurrence_id, field_text(raw.pid) AS person_id,
               'ICD10CM' AS condition_vocabulary, field_text(raw.icd) AS condition_code,
               field_text(raw.onset) AS condition_start_date
        FROM _raw_source AS raw""",
}


@pytest.fixture
def roster_format(tmp_path, monkeypatch):
    """The format's module and SQL files in a folder of their own, and its one registry line."""
    folder = tmp_path / "roster_format"
    folder.mkdir()
    (folder / "roster_format.py").write_text(ROSTER_MODULE)
    for name, sql in ROSTER_SQL.items():
        (folder / name).write_text(textwrap.dedent(sql).strip() + "\n")
    module_spec = importlib.util.spec_from_file_location("roster_format", folder / "roster_format.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    monkeypatch.setattr(registry, "FORMATS", [*registry.FORMATS, module.FORMAT])
    return module.FORMAT


def _roster_extract(folder):
    folder.mkdir()
    (folder / "roster.csv").write_text(
        "pid,born,gender,first_seen,last_seen,clinic\n"
        "p1,1950,F,2015-01-01,2020-12-31,north\n"
        "p2,1962,M,2016-03-01,2021-06-30,south\n"
        "p3,19x0,F,2016-03-01,2021-06-30,south\n"  # unparseable year: the person and its period are rejected
    )
    (folder / "diagnoses.csv").write_text(
        "dx_id,pid,icd,onset\n"
        "d1,p1,R252,2018-05-02\n"
        "d2,p2,r25.2,2019-07-01\n"
        "d3,p9,R252,2019-07-01\n"  # unknown person
        "d1,p2,I739,2019-08-01\n"  # repeats d1
    )
    return folder


def test_a_format_in_one_module_and_one_registry_line_loads_end_to_end(tmp_path, roster_format):
    extract = _roster_extract(tmp_path / "extract")
    assert detect_format(extract).label == "roster_csv"

    con = duckdb.connect()
    result = load_extract_any_format(con, extract, phenotype_vocabularies=phenotype_library().code_vocabularies())
    assert result.extract_format == "roster_csv"
    counts = {load.table: (load.input_records, load.loaded, load.rejected) for load in result.loads.values()}
    assert counts["person"] == (3, 2, 1)
    assert counts["observation_period"] == (3, 2, 1)  # p3's period names a person that was rejected
    assert counts["condition_occurrence"] == (4, 2, 2)
    assert counts["drug_exposure"] == (0, 0, 0)  # no source file: created empty

    # Staged through the canonical typing: ICD-10-CM codes get their dot, ids are text, dates are dates.
    assert con.execute("SELECT person_id, condition_code, condition_start_date::VARCHAR FROM "
                       "staging.condition_occurrence ORDER BY 1").fetchall() == [
        ("p1", "R25.2", "2018-05-02"), ("p2", "R25.2", "2019-07-01")]
    # Rejects carry the source file's physical line and the canonical reason.
    assert con.execute("SELECT table_name, file_name, line, reason FROM ingest.rejects ORDER BY 1, 3").fetchall() == [
        ("condition_occurrence", "diagnoses.csv", 4, "unknown_person"),
        ("condition_occurrence", "diagnoses.csv", 5, "duplicate_primary_key"),
        ("observation_period", "roster.csv", 4, "unknown_person"),
        ("person", "roster.csv", 4, "unparseable_number"),
    ]
    ignored = dict(con.execute("SELECT table_name, ignored_columns FROM ingest.load_counts").fetchall())
    assert json.loads(ignored["person"]) == ["clinic"]  # the roster columns the format does not declare
    assert con.execute("SELECT count(*) FROM vocabulary.concept_code_map").fetchone()[0] == 0
    # What the format declares about its vocabulary reaches the report of unresolvable phenotypes.
    assert "statins" in result.unresolvable_phenotypes["drug_exposure"]
    assert "condition_occurrence" not in result.unresolvable_phenotypes
    assert any("the roster has no medication file" in warning for warning in result.warnings)


def test_without_its_registry_line_the_layout_is_unrecognised(tmp_path, roster_format, monkeypatch):
    extract = _roster_extract(tmp_path / "extract")
    monkeypatch.setattr(registry, "FORMATS", [f for f in registry.FORMATS if f is not roster_format])
    with pytest.raises(ExtractError, match="unrecognised extract layout"):
        detect_format(extract)


def test_a_registered_format_names_its_missing_file(tmp_path, roster_format):
    extract = _roster_extract(tmp_path / "extract")
    (extract / "diagnoses.csv").unlink()
    with pytest.raises(ExtractError, match=r"looks like roster_csv but required file\(s\) are missing: diagnoses.csv"):
        detect_format(extract)
