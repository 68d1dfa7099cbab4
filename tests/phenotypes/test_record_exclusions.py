"""Exclusions with a window when the excluding phenotype has one of its own (sql/phenotypes/record_exclusions.sql):
the bundled library has one windowed exclusion (quinine_start leaves out fills within 30 days of malaria or
babesiosis); here a copy of the library also gives malaria_or_babesiosis one (its records within 10 days of a leg
cramp record do not count), so the records of a phenotype whose own records are left out serve as excluding
records. They all do, the left-out ones included: records are matched to their phenotype before any is left out."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines import paths
from pipelines.phenotypes import load_phenotype_library, run_phenotypes
from tests.support.phenotype_staging import create_staging_tables, insert_rows

MALARIA_FILE = Path("conditions") / "malaria_or_babesiosis.yaml"


def condition(record_id: str, person: str, code: str, day: str) -> dict:
    return {"condition_occurrence_id": record_id, "person_id": person, "condition_vocabulary": "ICD10CM",
            "condition_code": code, "condition_start_date": day}


def quinine(record_id: str, person: str, day: str) -> dict:
    return {"drug_exposure_id": record_id, "person_id": person, "drug_vocabulary": "RxNorm", "drug_code": "9071",
            "drug_exposure_start_date": day, "drug_exposure_end_date": day}


CONDITIONS = [
    # malaria (B54) 9 days after the fill and 5 days before a leg cramp (R25.2): not a malaria record, but it still
    # leaves the fill out of quinine_start
    condition("c1", "malaria_near_cramp", "B54", "2020-03-10"),
    condition("c2", "malaria_near_cramp", "R25.2", "2020-03-15"),
    # the same with the cramp 11 days after the malaria record: a malaria record
    condition("c3", "malaria_before_far_cramp", "B54", "2020-03-10"),
    condition("c4", "malaria_before_far_cramp", "R25.2", "2020-03-21"),
    # two fills, 9 days before and 52 days after a malaria record that a cramp 2 days later leaves out
    condition("c5", "later_fill", "B54", "2020-03-10"),
    condition("c6", "later_fill", "R25.2", "2020-03-12"),
]
DRUGS = [
    quinine("d1", "malaria_near_cramp", "2020-03-01"),
    quinine("d2", "malaria_before_far_cramp", "2020-03-01"),
    quinine("d3", "later_fill", "2020-03-01"),
    quinine("d4", "later_fill", "2020-05-01"),
    quinine("d5", "no_malaria", "2020-03-01"),
]


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    folder = tmp_path_factory.mktemp("library") / "phenotypes"
    shutil.copytree(paths.PHENOTYPES_DIR, folder)
    malaria = yaml.safe_load((folder / MALARIA_FILE).read_text())
    malaria["rule"].update(exclude_persons_with=["leg_cramps"], exclusion_window_days=10)
    (folder / MALARIA_FILE).write_text(yaml.safe_dump(malaria, sort_keys=False))
    library = load_phenotype_library(folder)
    connection = duckdb.connect()
    create_staging_tables(connection)
    persons = sorted({row["person_id"] for row in CONDITIONS + DRUGS})
    insert_rows(connection, "person", [{"person_id": p, "year_of_birth": 1950, "sex": "F"} for p in persons])
    insert_rows(connection, "condition_occurrence", CONDITIONS)
    insert_rows(connection, "drug_exposure", DRUGS)
    run_phenotypes(connection, library)
    yield connection
    connection.close()


def events(con, phenotype_id: str) -> list[tuple[str, date]]:
    return con.execute("SELECT person_id, event_date FROM phenotype.events WHERE phenotype_id = ? ORDER BY ALL",
                       [phenotype_id]).fetchall()


def summaries(con, phenotype_id: str) -> list[tuple[str, date, int]]:
    return con.execute("SELECT person_id, first_date, event_count FROM phenotype.person_summary "
                       "WHERE phenotype_id = ? ORDER BY ALL", [phenotype_id]).fetchall()


def test_malaria_records_near_a_leg_cramp_are_left_out(con):
    assert events(con, "malaria_or_babesiosis") == [("malaria_before_far_cramp", date(2020, 3, 10))]
    assert summaries(con, "malaria_or_babesiosis") == [("malaria_before_far_cramp", date(2020, 3, 10), 1)]


def test_left_out_malaria_records_still_leave_quinine_fills_out(con):
    assert events(con, "quinine_start") == [("later_fill", date(2020, 5, 1)), ("no_malaria", date(2020, 3, 1))]
    assert summaries(con, "quinine_start") == [("later_fill", date(2020, 5, 1), 1),
                                               ("no_malaria", date(2020, 3, 1), 1)]


def test_the_excluding_phenotype_of_both_keeps_all_its_records(con):
    assert [person for person, _ in events(con, "leg_cramps")] == [
        "later_fill", "malaria_before_far_cramp", "malaria_near_cramp"]
