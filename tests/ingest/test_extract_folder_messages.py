"""A wrong --extract (a file, an empty folder, the folder above the extract) is refused with one sentence saying what
is wrong, where, and what to do, not with every layout's files and columns (pipelines/ingest/formats/detection.py)."""

from __future__ import annotations

import pytest

from pipelines.ingest.formats import detect_format
from pipelines.ingest.loader import ExtractError
from pipelines.run import main


def refusal(folder) -> str:
    with pytest.raises(ExtractError) as error:
        detect_format(folder)
    return str(error.value)


def test_a_file_given_as_the_extract_folder_names_the_folder_holding_it(tmp_path):
    person = tmp_path / "person.csv"
    person.write_text("person_id,year_of_birth,sex\n1,1950,F\n")
    assert refusal(person) == (f"{person} is a file, not an extract folder: give the folder that holds the "
                               f"extract's files ({tmp_path}).")


def test_an_empty_folder_says_so_in_one_sentence(tmp_path):
    (tmp_path / "notes.md").write_text("not data")
    assert refusal(tmp_path) == (
        f"{tmp_path} holds no data files (.csv, .csv.gz, .parquet, .tsv, .tsv.gz, .txt, .txt.gz): put the extract's "
        "files there, or give the folder that holds them; docs/extract_formats.md describes the layouts the ingest "
        "reads.")


def test_the_folder_above_the_extracts_names_the_ones_below(tmp_path):
    for site in ("site_b", "site_a"):
        (tmp_path / site).mkdir()
        (tmp_path / site / "person.csv").write_text("person_id,year_of_birth,sex\n1,1950,F\n")
    (tmp_path / "empty").mkdir()
    assert refusal(tmp_path) == (f"{tmp_path} holds no data files, but its folder(s) site_a, site_b do: give the "
                                 "one to load as the extract folder.")


def test_the_command_line_prints_it_and_starts_no_run(tmp_path, capsys):
    empty = tmp_path / "extract"
    empty.mkdir()
    assert main(["--extract", str(empty), "--db", str(tmp_path / "site.duckdb")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"extract check failed: {empty} holds no data files (.csv, .csv.gz, .parquet, .tsv, .tsv.gz, .txt, .txt.gz): "
        "put the extract's files there, or give the folder that holds them; docs/extract_formats.md describes the "
        "layouts the ingest reads.",
        "no run was started; the published database was not changed."]
    assert not (tmp_path / "site.duckdb").exists()
