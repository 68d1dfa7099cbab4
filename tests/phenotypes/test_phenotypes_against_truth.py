"""Phenotypes on a generated extract find exactly the persons (and first dates) the generator planted."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.ingest.loader import load_extract
from pipelines.phenotypes import load_phenotype_library, run_phenotypes
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
    defined = {p.id for p in load_phenotype_library()}
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
