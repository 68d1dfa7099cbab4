"""A tiny staging database that passes every data-quality check: the tests plant one defect at a time in it.

Five persons observed 2015-2023 (one dies in 2021), each with visits, conditions, drugs, measurements and a
procedure, written by hand so that a reader can check every row against the suites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import duckdb

from pipelines import extract_spec as spec

PERSONS = [
    # person_id, year_of_birth, birth_date, sex, race, ethnicity, site_id
    ("p1", 1950, "1950-03-01", "F", None, None, "s1"),
    ("p2", 1962, None, "M", None, None, "s1"),
    ("p3", 1975, "1975-11-20", "F", None, None, "s2"),
    ("p4", 1980, None, "M", None, None, "s2"),
    ("p5", 1990, "1990-07-04", "U", None, None, "s2"),
]
OBSERVATION_PERIODS = [
    ("op1", "p1", "2015-01-01", "2023-12-31"),
    ("op2", "p2", "2015-01-01", "2023-12-31"),
    ("op3", "p3", "2015-01-01", "2018-12-31"),
    ("op3b", "p3", "2019-06-01", "2023-12-31"),
    ("op4", "p4", "2015-01-01", "2021-06-30"),
    ("op5", "p5", "2016-05-01", "2023-12-31"),
]
DEATHS = [("p4", "2021-06-30")]
VISITS = [
    ("v1", "p1", "outpatient", "2018-02-01", "2018-02-01"),
    ("v2", "p1", "inpatient", "2019-03-04", "2019-03-09"),
    ("v3", "p2", "outpatient", "2018-05-10", None),
    ("v4", "p3", "emergency", "2020-01-15", "2020-01-15"),
    ("v5", "p4", "outpatient", "2019-08-20", "2019-08-20"),
    ("v6", "p5", "outpatient", "2021-10-01", "2021-10-01"),
]
CONDITIONS = [
    ("c1", "p1", "ICD10CM", "R25.2", "2018-02-01", None, "v1"),
    ("c2", "p1", "ICD10CM", "E87.1", "2019-03-04", "2019-03-09", "v2"),
    ("c3", "p2", "SNOMED", "89627008", "2018-05-10", None, "v3"),
    ("c4", "p3", "ICD10CM", "E83.42", "2020-01-15", None, "v4"),
    ("c5", "p4", "ICD10CM", "I73.9", "2019-08-20", None, "v5"),
    ("c6", "p5", "ICD10CM", "R25", "2021-10-01", None, "v6"),
]
DRUGS = [
    ("d1", "p1", "RxNorm", "5487", "2018-02-01", "2018-03-02", 30, 30.0, "v1"),
    ("d2", "p2", "ATC", "C03AA03", "2018-05-10", "2018-06-08", 30, 30.0, "v3"),
    ("d3", "p3", "ATC", "C03DA01", "2020-01-15", "2020-04-13", 90, 90.0, "v4"),
    ("d4", "p4", "RxNorm", "9997", "2019-08-20", "2019-09-18", 30, None, "v5"),
    ("d5", "p5", "ATC", "C03", "2021-10-01", "2021-10-01", None, None, None),
]
MEASUREMENTS = [
    ("m1", "p1", "LOINC", "2951-2", "2018-02-01", 141.0, "mmol/L", None, "v1"),
    ("m2", "p1", "LOINC", "2823-3", "2018-02-01", 3.2, "mmol/L", None, "v1"),
    ("m3", "p2", "LOINC", "19123-9", "2018-05-10", 1.9, "mg/dL", None, "v3"),
    ("m4", "p3", "LOINC", "2601-3", "2020-01-15", 0.8, "mmol/L", None, "v4"),
    ("m5", "p4", "SNOMED", "446841001", "2019-08-20", 0.85, "ratio", "L", "v5"),
    ("m6", "p4", "SNOMED", "446841001", "2019-08-20", 0.92, "ratio", "R", "v5"),
    ("m7", "p5", "LOCAL", "NA-SERUM", "2021-10-01", 138.0, "mEq/L", None, "v6"),
    ("m8", "p5", "LOINC", "2951-2", "2021-10-01", 128.0, "mEq/L", None, "v6"),
]
PROCEDURES = [
    ("pr1", "p1", "CPT4", "93922", "2019-03-05", "v2"),
    ("pr2", "p2", "SNOMED", "80146002", "2018-05-10", "v3"),
    ("pr3", "p3", "ICD10PCS", "0DTJ4ZZ", "2020-01-15", "v4"),
    ("pr4", "p4", "CPT4", "93923", "2019-08-20", "v5"),
    ("pr5", "p5", "CPT4", "99213", "2021-10-01", "v6"),
]
ROWS: dict[str, list[tuple]] = {
    "person": PERSONS,
    "observation_period": OBSERVATION_PERIODS,
    "visit_occurrence": VISITS,
    "condition_occurrence": CONDITIONS,
    "drug_exposure": DRUGS,
    "measurement": MEASUREMENTS,
    "procedure_occurrence": PROCEDURES,
    "death": DEATHS,
}


def create_staging_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Empty staging tables with the spec's columns and types, as the ingest creates them."""
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    for table in spec.TABLES:
        columns = ", ".join(f"{c.name} {c.type}" for c in table.columns)
        con.execute(f"CREATE OR REPLACE TABLE staging.{table.name} ({columns})")


def insert_rows(con: duckdb.DuckDBPyConnection, table_name: str, rows: Iterable[tuple]) -> None:
    rows = list(rows)
    if rows:
        placeholders = ", ".join("?" for _ in rows[0])
        con.executemany(f"INSERT INTO staging.{table_name} VALUES ({placeholders})", rows)


def build_example_staging(path: str | Path) -> Path:
    """Write the clean example staging database to path (replacing it) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        create_staging_tables(con)
        for table_name, rows in ROWS.items():
            insert_rows(con, table_name, rows)
    finally:
        con.close()
    return path
