"""Phenotypes on a generated extract find exactly the persons (and first dates) the generator planted."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.ingest.loader import load_extract
from pipelines.phenotypes import phenotype_library, run_phenotypes
from pipelines.synthetic.catalog import PHENOTYPE_IDS


@pytest.fixture(scope="module")
def phenotyped(generated_extract):
    folder, truth = generated_extract(6_000, 11, defect_rate=0.005)
    con = duckdb.connect()
    load_extract(con, folder)
    run_phenotypes(con)
    con.execute(f"CREATE TABLE truth AS SELECT * FROM read_parquet('{folder / '_truth' / 'persons.parquet'}')")
    yield truth, con
    con.close()


def test_every_phenotype_the_generator_plants_is_defined():
    defined = {p.id for p in phenotype_library()}
    assert set(PHENOTYPE_IDS) <= defined


def test_every_planted_phenotype_has_persons(phenotyped):
    truth, _ = phenotyped
    empty = [pid for pid, n in truth["phenotype_persons"].items() if n == 0]
    assert not empty, f"the test extract is too small to plant {empty}"


@pytest.mark.parametrize("phenotype_id", PHENOTYPE_IDS)
def test_persons_and_first_dates_equal_the_truth(phenotyped, phenotype_id):
    truth, con = phenotyped
    found = set(con.execute(
        "SELECT person_id, first_date FROM phenotype.person_summary WHERE phenotype_id = ?", [phenotype_id]
    ).fetchall())
    planted = set(con.execute(
        f'SELECT person_id, "{phenotype_id}_date" FROM truth WHERE "{phenotype_id}_date" IS NOT NULL'
    ).fetchall())
    assert len(found) == truth["phenotype_persons"][phenotype_id] == len(planted)
    missing, extra = planted - found, found - planted
    assert not missing and not extra, (
        f"{phenotype_id}: {len(missing)} planted not found (e.g. {sorted(missing)[:3]}), "
        f"{len(extra)} found not planted (e.g. {sorted(extra)[:3]})"
    )


# The planted records that end before they start (the generator's end_before_start kind): copies of condition, drug
# and visit records, each a new event (no other record has its person, code and start date).
REVERSED_RECORDS = {
    "condition_occurrence": ("condition_vocabulary", "condition_code", "condition_start_date", "condition_end_date"),
    "drug_exposure": ("drug_vocabulary", "drug_code", "drug_exposure_start_date", "drug_exposure_end_date"),
}


@pytest.mark.parametrize("table", sorted(REVERSED_RECORDS))
def test_planted_records_that_end_before_they_start_are_loaded_and_never_phenotype_events(phenotyped, table):
    truth, con = phenotyped
    vocabulary, code, start, end = REVERSED_RECORDS[table]
    planted = truth["implausible_planted"][table]["end_before_start"]
    loaded, with_phenotype_code, as_events = con.execute(f"""
        WITH reversed AS (SELECT * FROM staging.{table} WHERE {end} < {start})
        SELECT (SELECT count(*) FROM reversed),
               (SELECT count(*) FROM reversed JOIN (SELECT DISTINCT vocabulary, code FROM phenotype.events
                                                    WHERE source_table = '{table}') AS phenotype_codes
                  ON phenotype_codes.vocabulary = reversed.{vocabulary} AND phenotype_codes.code = reversed.{code}),
               (SELECT count(*) FROM reversed SEMI JOIN phenotype.events
                  ON events.source_table = '{table}' AND events.person_id = reversed.person_id
                 AND events.vocabulary = reversed.{vocabulary} AND events.code = reversed.{code}
                 AND events.event_date = reversed.{start})
    """).fetchone()
    assert loaded == planted > 0  # loaded, for the data-quality check to count (not rejected)
    assert with_phenotype_code > 0  # carrying a code some phenotype counts, so the next line tests something
    assert as_events == 0  # yet no phenotype counts them
