"""The phenotype suite (expectations/phenotype/phenotypes.json): one GX validation over phenotype.person_summary,
judged per phenotype. A generated extract passes every check of every phenotype; each corruption of the phenotype
table fails exactly the check meant for it, on the phenotype it was planted in, with the exact count."""

import os

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import shutil  # noqa: E402

import duckdb  # noqa: E402
import pytest  # noqa: E402

from pipelines.ingest.loader import load_extract  # noqa: E402
from pipelines.phenotypes import run_phenotypes  # noqa: E402
from pipelines.phenotypes.loader import phenotype_library  # noqa: E402
from pipelines.quality import suites  # noqa: E402
from pipelines.quality.runner import load_suite, run_suite  # noqa: E402

CHECKS = [e["meta"]["name"] for e in suites.read_suite_json(suites.PHENOTYPE_SUITE)["expectations"]]


@pytest.fixture(scope="module")
def phenotype_database(tmp_path_factory, generated_extract):
    """A generated extract (with the generator's usual planted staging defects) through the real ingest and
    phenotypes."""
    folder = tmp_path_factory.mktemp("phenotype_quality")
    database = folder / "clean" / "warehouse.duckdb"
    database.parent.mkdir()
    con = duckdb.connect(str(database))
    load_extract(con, generated_extract(2_000, 7).path)
    run_phenotypes(con)
    con.close()
    return database


def test_phenotype_suite_is_up_to_date_and_loads():
    committed = suites.suite_path(suites.PHENOTYPE_SUITE).read_text()
    assert committed == suites.suite_json_text(suites.build_phenotype_suite()), \
        "run `python -m pipelines.quality.suites`"
    suite_json = suites.read_suite_json(suites.PHENOTYPE_SUITE)
    assert len(load_suite(suite_json).expectations) == len(CHECKS) == len(set(CHECKS))
    for expectation in suite_json["expectations"]:
        meta = expectation["meta"]
        assert suites.CHECK_NAME_PATTERN.match(meta["name"])
        assert meta["category"] in suites.CATEGORIES and meta["severity"] in suites.SEVERITIES
        assert meta["severity"] == suites.WARNING or meta["threshold"] == 0
        assert "{batch}" in expectation["kwargs"]["unexpected_rows_query"]


def test_generated_extract_passes_every_check_of_every_phenotype(phenotype_database):
    result = run_suite(phenotype_database, suites.PHENOTYPE_SUITE, run_id="clean")
    phenotypes = sorted(p.id for p in phenotype_library())
    assert sorted({r.phenotype_id for r in result.results}) == phenotypes
    assert len(result.results) == len(phenotypes) * len(CHECKS)
    assert [(r.name, r.phenotype_id, r.unexpected_count, r.error) for r in result.results if not r.passed] == []
    # The fatal checks count nothing at all; every phenotype is judged on its own rows.
    assert all(r.unexpected_count == 0 for r in result.results if r.fatal)
    con = duckdb.connect(str(phenotype_database), read_only=True)
    persons = dict(con.execute("SELECT phenotype_id, count(*) FROM phenotype.person_summary GROUP BY 1").fetchall())
    con.close()
    for r in result.results:
        if r.name != "persons_found_when_records_exist":
            assert r.element_count == persons.get(r.phenotype_id, 0), (r.name, r.phenotype_id)


@pytest.fixture(scope="module")
def corrupted(phenotype_database, tmp_path_factory):
    """One corruption per check, each in another phenotype; returns the database and {(check, phenotype): n}."""
    database = tmp_path_factory.mktemp("corrupted") / "warehouse.duckdb"
    shutil.copy(phenotype_database, database)
    con = duckdb.connect(str(database))
    # Without its primary key, so that a repeated row can be inserted (as a phenotype bug would).
    con.execute("CREATE TABLE phenotype.summary_copy AS SELECT * FROM phenotype.person_summary")
    con.execute("DROP TABLE phenotype.person_summary")
    con.execute("ALTER TABLE phenotype.summary_copy RENAME TO person_summary")

    def phenotype_with_persons(low, high, taken):
        return con.execute(
            "SELECT phenotype_id FROM phenotype.person_summary GROUP BY phenotype_id "
            "HAVING count(*) BETWEEN ? AND ? AND phenotype_id NOT IN (SELECT unnest(?)) ORDER BY phenotype_id LIMIT 1",
            [low, high, list(taken)]).fetchone()[0]

    taken: list[str] = []
    duplicated = phenotype_with_persons(1, 10**9, taken)
    taken.append(duplicated)
    con.execute("INSERT INTO phenotype.person_summary SELECT * FROM phenotype.person_summary "
                "WHERE phenotype_id = ? ORDER BY person_id LIMIT 1", [duplicated])
    orphaned = phenotype_with_persons(1, 10**9, taken)
    taken.append(orphaned)
    con.execute("INSERT INTO phenotype.person_summary VALUES ('nobody', ?, DATE '2019-01-01', NULL, DATE '2019-01-01', 1, 1)",
                [orphaned])
    # Under 100 persons, so one row is above the 1% threshold of this warning.
    before_birth = phenotype_with_persons(1, 99, taken)
    taken.append(before_birth)
    con.execute("""
        UPDATE phenotype.person_summary AS s SET first_date = make_date(p.year_of_birth - 1, 6, 1)
        FROM staging.person AS p
        WHERE p.person_id = s.person_id AND s.phenotype_id = ?
          AND s.person_id = (SELECT min(person_id) FROM phenotype.person_summary WHERE phenotype_id = ?)""",
                [before_birth, before_birth])
    reversed_dates = phenotype_with_persons(1, 10**9, taken)
    taken.append(reversed_dates)
    con.execute("""
        UPDATE phenotype.person_summary SET last_date = first_date - INTERVAL 1 DAY
        WHERE phenotype_id = ? AND person_id = (SELECT min(person_id) FROM phenotype.person_summary
                                                WHERE phenotype_id = ?)""", [reversed_dates, reversed_dates])
    # A phenotype whose records many persons have, but which nobody meets any more.
    emptied = con.execute(
        "SELECT phenotype_id FROM phenotype.events WHERE phenotype_id NOT IN (SELECT unnest(?)) GROUP BY 1 "
        "HAVING count(DISTINCT person_id) >= ? ORDER BY 1 LIMIT 1",
        [taken, suites.MIN_PERSONS_WITH_RECORDS]).fetchone()[0]
    con.execute("DELETE FROM phenotype.person_summary WHERE phenotype_id = ?", [emptied])
    con.close()
    return database, {
        ("one_summary_row_per_person", duplicated): 1,
        ("person_id_in_person_table", orphaned): 1,
        ("first_date_not_before_birth", before_birth): 1,
        ("first_date_not_after_last_date", reversed_dates): 1,
        ("persons_found_when_records_exist", emptied): 1,
    }


def test_each_corruption_fails_exactly_its_check_on_its_phenotype(corrupted):
    database, planted = corrupted
    assert len({phenotype for _, phenotype in planted}) == len(planted)
    result = run_suite(database, suites.PHENOTYPE_SUITE, run_id="corrupted", build_data_docs=False)
    assert [r.error for r in result.results if r.error] == []
    failing = {(r.name, r.phenotype_id): r.unexpected_count for r in result.results if not r.passed}
    assert failing == planted
    counted = {(r.name, r.phenotype_id): r.unexpected_count for r in result.results if r.unexpected_count}
    assert counted == planted, "no other check (or phenotype) counts a corrupted row"

    orphan = next(r for r in result.results if (r.name, r.phenotype_id) in planted and r.name.startswith("person"))
    assert orphan.fatal and orphan.example_rows[0]["person_id"] == "nobody"
    assert orphan.example_rows[0]["phenotype_id"] == orphan.phenotype_id

    con = duckdb.connect(str(database), read_only=True)
    recorded = con.execute("SELECT expectation, phenotype_id, unexpected_count, suppressed FROM dq.check_results "
                           "WHERE run_id = 'corrupted' AND NOT passed").fetchall()
    rows = con.execute("SELECT count(*) FROM dq.check_results WHERE run_id = 'corrupted' AND suite = ? "
                       "AND phenotype_id IS NOT NULL", [suites.PHENOTYPE_SUITE]).fetchone()[0]
    con.close()
    # Each corruption is a row or two: a small count, hidden in the published table (docs/disclosure.md).
    assert {(e, p) for e, p, _, _ in recorded} == set(planted) and max(planted.values()) < 11
    assert all(n is None and hidden for _, _, n, hidden in recorded)
    assert rows == len(result.results)
