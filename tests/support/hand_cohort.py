"""A tiny extract written by hand straight into staging.* and phenotype.*, and a small study to build on it.

Used by the cohort tests (tests/cohorts/), and by phenotype tests that run the phenotype stage on its staging
records (`condition`, `visit`, `fill`; run_phenotypes then replaces the phenotype tables written here).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb

from pipelines import extract_spec as spec
from pipelines.cohorts.study import StudyDefinition
from pipelines.ingest.loader import create_empty_staging_table
from pipelines.sql import read_sql

D = date.fromisoformat


class HandExtract:
    """A tiny extract written straight into staging.* and phenotype.* of an in-memory DuckDB.

    phenotype.person_summary is derived from phenotype.events (first_date = first event) unless a person's
    first_date is given explicitly with `summary_first_date`.
    """

    def __init__(self) -> None:
        self.persons: list[tuple] = []
        self.observation_periods: list[tuple] = []
        self.visits: list[tuple] = []  # (id, person, type, start[, end]): tests may append rows without an end
        self.drugs: list[tuple] = []
        self.conditions: list[tuple] = []
        self.deaths: list[tuple] = []
        self.events: list[tuple] = []
        self.summary_first_dates: dict[tuple[str, str], date] = {}

    def person(self, person_id: str, year_of_birth: int = 1960, sex: str = "F", birth_date: str | None = None,
               observation: list[tuple[str, str]] | None = None, visits: list[str] | None = None,
               visit_type: str = "outpatient", death: str | None = None) -> HandExtract:
        """A person observed 2010-2022 by default, with outpatient visits on the given days."""
        self.persons.append((person_id, year_of_birth, D(birth_date) if birth_date else None, sex))
        for start, end in observation if observation is not None else [("2010-01-01", "2022-12-31")]:
            self.observation_periods.append((f"OP{len(self.observation_periods) + 1}", person_id, D(start), D(end)))
        for day in visits or []:
            self.visit(person_id, day, visit_type=visit_type)
        if death:
            self.deaths.append((person_id, D(death)))
        return self

    def visit(self, person_id: str, start: str, end: str | None = None, visit_type: str = "outpatient",
              visit_id: str | None = None) -> HandExtract:
        """A staging.visit_occurrence record (id V<n> unless given)."""
        visit_id = visit_id or f"V{len(self.visits) + 1}"
        self.visits.append((visit_id, person_id, visit_type, D(start), D(end) if end else None))
        return self

    def condition(self, person_id: str, code: str, start: str, end: str | None = None,
                  visit_id: str | None = None, vocabulary: str = "ICD10CM") -> HandExtract:
        """A staging.condition_occurrence record, for the phenotype stage to match (no phenotype event is written)."""
        self.conditions.append((f"C{len(self.conditions) + 1}", person_id, vocabulary, code, D(start),
                                D(end) if end else None, visit_id))
        return self

    def event(self, person_id: str, phenotype_id: str, day: str,
              source_table: str = "condition_occurrence") -> HandExtract:
        self.events.append((person_id, phenotype_id, D(day), source_table, "ICD10CM", "X00", None))
        return self

    def fill(self, person_id: str, phenotype_id: str, start: str, end: str, code: str | None = None) -> HandExtract:
        """A drug fill: a staging.drug_exposure record and its phenotype event (matched by vocabulary and code)."""
        code = code or phenotype_id.upper()[:8]
        self.drugs.append((f"D{len(self.drugs) + 1}", person_id, "ATC", code, D(start), D(end)))
        self.events.append((person_id, phenotype_id, D(start), "drug_exposure", "ATC", code, D(end)))
        return self

    def summary_first_date(self, person_id: str, phenotype_id: str, day: str) -> HandExtract:
        self.summary_first_dates[(person_id, phenotype_id)] = D(day)
        return self

    def write(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        con.execute("CREATE SCHEMA IF NOT EXISTS staging")
        con.execute(read_sql("phenotypes/create_tables.sql"))  # the phenotype stage's (empty) definition tables
        for table in spec.TABLES:
            create_empty_staging_table(con, table)
        con.executemany("INSERT INTO staging.person (person_id, year_of_birth, birth_date, sex) VALUES (?, ?, ?, ?)",
                        self.persons)
        if self.observation_periods:
            con.executemany("INSERT INTO staging.observation_period VALUES (?, ?, ?, ?)", self.observation_periods)
        if self.visits:
            con.executemany("INSERT INTO staging.visit_occurrence (visit_occurrence_id, person_id, visit_type, "
                            "visit_start_date, visit_end_date) VALUES (?, ?, ?, ?, ?)",
                            [visit if len(visit) == 5 else (*visit, None) for visit in self.visits])
        if self.conditions:
            con.executemany("INSERT INTO staging.condition_occurrence VALUES (?, ?, ?, ?, ?, ?, ?)", self.conditions)
        if self.drugs:
            con.executemany("INSERT INTO staging.drug_exposure (drug_exposure_id, person_id, drug_vocabulary, "
                            "drug_code, drug_exposure_start_date, drug_exposure_end_date) VALUES (?, ?, ?, ?, ?, ?)",
                            self.drugs)
        if self.deaths:
            con.executemany("INSERT INTO staging.death VALUES (?, ?)", self.deaths)
        con.execute("CREATE OR REPLACE TABLE phenotype.events (person_id VARCHAR, phenotype_id VARCHAR, "
                    "event_date DATE, value DOUBLE, unit VARCHAR, laterality VARCHAR, source_table VARCHAR, "
                    "vocabulary VARCHAR, code VARCHAR, event_end_date DATE)")
        if self.events:
            con.executemany("INSERT INTO phenotype.events (person_id, phenotype_id, event_date, source_table, "
                            "vocabulary, code, event_end_date) VALUES (?, ?, ?, ?, ?, ?, ?)", self.events)
        con.execute("CREATE OR REPLACE TABLE phenotype.person_summary AS SELECT person_id, phenotype_id, "
                    "min(event_date) AS first_date, CAST(NULL AS DATE) AS end_date, max(event_date) AS last_date, "
                    "count(*) AS event_count, "
                    "'test' AS version FROM phenotype.events GROUP BY person_id, phenotype_id")
        for (person_id, phenotype_id), day in self.summary_first_dates.items():
            con.execute("UPDATE phenotype.person_summary SET first_date = ? WHERE person_id = ? AND phenotype_id = ?",
                        [day, person_id, phenotype_id])
        return con

    def connect(self) -> duckdb.DuckDBPyConnection:
        return self.write(duckdb.connect())


BASE_STUDY: dict[str, Any] = {
    "id": "test_study",
    "title": "test",
    "study_period": {"start": "2015-01-01", "end": "2022-12-31"},
    "prior_observation_days": 365,
    "age_at_index": {"min": 18},
    "index": {"rule": "first_visit", "visit_types": ["outpatient"]},
    "outcome": {"phenotype": "leg_cramps"},
    "small_cell_threshold": 1,  # no suppression unless a test asks for it
}


def make_study(**changes: Any) -> StudyDefinition:
    return StudyDefinition.model_validate({**BASE_STUDY, **changes})


NEW_USER = {"rule": "new_user", "target": "thiazide_diuretics", "comparator": "calcium_channel_blockers"}


def population(con: duckdb.DuckDBPyConnection, study_id: str = "test_study") -> dict[str, dict[str, Any]]:
    cursor = con.execute("SELECT * FROM cohort.study_population WHERE study_id = ?", [study_id])
    columns = [d[0] for d in cursor.description]
    return {row[1]: dict(zip(columns, row)) for row in cursor.fetchall()}
