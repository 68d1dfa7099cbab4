"""Small extracts the tests write or copy by hand, in one place.

- `synthea27nj_copy(folder, tables)`: a copy of the shared Synthea27Nj OMOP CDM v5.4 extract (28 persons,
  ../shared/data/omop) with the files a test names, which the test may then change; the test is skipped where the
  shared data is absent. `append_csv_rows` and `set_csv_field` change a copied file the way a site's file would
  differ (an extra concept, a drug record that names another concept).
- `first_dates_warehouse(...)`: an in-memory DuckDB holding only what the sequence-symmetry first-date queries read
  (staging.person, staging.observation_period, phenotype.person_summary, phenotype.events), filled from rows.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Iterable, Sequence

import duckdb
import pytest

from tests.support.paths import SHARED_DATA

SYNTHEA27NJ = SHARED_DATA / "omop" / "eunomia_synthea27nj_v5.4"
# The clinical tables and the vocabulary a run reads; the extract's 39 files are more than the tests need.
OMOP_CLINICAL_TABLES = ("PERSON", "OBSERVATION_PERIOD", "VISIT_OCCURRENCE", "CONDITION_OCCURRENCE", "DRUG_EXPOSURE",
                        "MEASUREMENT", "PROCEDURE_OCCURRENCE", "DEATH")
OMOP_VOCABULARY_TABLES = ("CONCEPT", "CONCEPT_RELATIONSHIP", "CONCEPT_ANCESTOR")


def synthea27nj_copy(folder: Path, tables: Iterable[str] = OMOP_CLINICAL_TABLES + OMOP_VOCABULARY_TABLES) -> Path:
    """Copy the named tables (file stems, e.g. "PERSON") of the shared Synthea27Nj extract into `folder` (created)
    and return it; skips the test when the shared data is absent."""
    if not SYNTHEA27NJ.is_dir():
        pytest.skip(f"shared sample extract {SYNTHEA27NJ} is absent (see ../shared/data/README.md)")
    folder.mkdir(parents=True)
    for table in tables:
        shutil.copy(SYNTHEA27NJ / f"{table}.csv", folder / f"{table}.csv")
    return folder


def append_csv_rows(path: Path, rows: Iterable[Sequence[str]]) -> None:
    """Append rows to a comma-separated file, one line each."""
    with path.open("a", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def set_csv_field(path: Path, line_number: int, column: str, value: str) -> None:
    """Set one field of the data line `line_number` (1 = the first line after the header) of a file whose fields hold
    no commas or quotes (as the shared extract's clinical tables)."""
    lines = path.read_text().splitlines(keepends=True)
    index = lines[0].rstrip("\n").split(",").index(column)
    fields = lines[line_number].rstrip("\n").split(",")
    fields[index] = value
    lines[line_number] = ",".join(fields) + "\n"
    path.write_text("".join(lines))


def first_dates_warehouse(*, persons: Iterable[tuple] = (), observation_periods: Iterable[tuple] = (),
                          first_dates: Iterable[tuple] = (), events: Iterable[tuple] = (),
                          person_id_type: str = "VARCHAR") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the tables the sequence-symmetry first-date queries read, holding the given rows:
    persons (person_id, year_of_birth, birth_date), observation_periods (person_id, start, end), first_dates
    (person_id, phenotype_id, first_date) in phenotype.person_summary and events (person_id, phenotype_id,
    event_date) in phenotype.events."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA phenotype; CREATE SCHEMA staging")
    con.execute(f"CREATE TABLE staging.person (person_id {person_id_type}, year_of_birth INTEGER, birth_date DATE)")
    con.execute(f"CREATE TABLE staging.observation_period (person_id {person_id_type}, "
                "observation_period_start_date DATE, observation_period_end_date DATE)")
    con.execute(f"CREATE TABLE phenotype.person_summary (person_id {person_id_type}, phenotype_id VARCHAR, "
                "first_date DATE)")
    con.execute(f"CREATE TABLE phenotype.events (person_id {person_id_type}, phenotype_id VARCHAR, event_date DATE)")
    for table, rows in (("staging.person", persons), ("staging.observation_period", observation_periods),
                        ("phenotype.person_summary", first_dates), ("phenotype.events", events)):
        rows = list(rows)
        if rows:
            con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in rows[0])})", rows)
    return con
