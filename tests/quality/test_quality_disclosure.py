"""The published data-quality outputs (dq.check_results and the Data Docs' stored results) attacked as a reader would:
every count one can form from what they print (a total less a printed part, a count back from its percentage, a
per-phenotype total less the printed phenotypes) must not be a small count (docs/disclosure.md, "Data quality").

The attacker is written apart from the code it attacks (pipelines/quality/published_counts.py): it reads the two
outputs as files and forms the differences itself. Each planted case is first attacked on the true counts published
cell by cell (each small count hidden alone, with its percentage: the rule before session 13), where the attacker
must find the planted small count: so the attack is real, and only the publication's complements stop it. A
threshold of 3 on five hand-written persons stands for the site's 11 on a real extract.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import duckdb  # noqa: E402
import pytest  # noqa: E402

from pipelines.quality.runner import run_suite  # noqa: E402
from tests.support.quality_staging import build_example_staging  # noqa: E402

THRESHOLD = 3


# ---------------------------------------------------------------------------------------------------------------
# The attacker
# ---------------------------------------------------------------------------------------------------------------

def printed_results(database: Path) -> list[dict]:
    """What the two published outputs print, as (suite, check, phenotype) -> counts; a count printed in either."""
    printed: dict[tuple, dict] = {}
    con = duckdb.connect(str(database), read_only=True)
    try:
        for suite, check, phenotype, element, unexpected, percent in con.execute(
                "SELECT suite, expectation, phenotype_id, element_count, unexpected_count, unexpected_pct "
                "FROM dq.check_results").fetchall():
            printed[(suite, check, phenotype)] = {"element_count": element, "unexpected_count": unexpected,
                                                  "unexpected_percent": percent}
    finally:
        con.close()
    for path in (database.parent / "data_docs" / "_validation_results").rglob("*.json"):
        validation = json.loads(path.read_text())
        suite = validation["suite_name"]
        for expectation in validation["results"]:
            check = expectation["expectation_config"]["meta"].get("name")
            result = expectation["result"]
            for phenotype, found in (result.get("details") or {}).get("per_phenotype", {}).items():
                merge(printed.setdefault((suite, check, phenotype), {}), found)
            merge(printed.setdefault((suite, check, "all phenotypes" if "details" in result else None), {}), result)
    return [{"where": where, **counts} for where, counts in printed.items()]


def merge(into: dict, found: dict) -> None:
    for key in ("element_count", "unexpected_count", "missing_count", "unexpected_percent"):
        if found.get(key) is not None:
            into[key] = found[key]
        into.setdefault(key, None)


def cell_by_cell(suite_result, threshold: int) -> list[dict]:
    """The runner's results (the true counts) published cell by cell, as the earlier rule did: each count of 1 ..
    threshold-1 hidden with the percentage computed from it, nothing else; with the per-phenotype totals the Data
    Docs print."""
    def shown(count):
        return None if count is not None and 1 <= count < threshold else count

    rows = []
    for r in suite_result.results:
        hidden = shown(r.element_count) != r.element_count or shown(r.unexpected_count) != r.unexpected_count
        rows.append({"where": (suite_result.suite, r.name, r.phenotype_id), "element_count": shown(r.element_count),
                     "unexpected_count": shown(r.unexpected_count),
                     "missing_count": shown(getattr(r, "missing_count", None)),
                     "unexpected_percent": None if hidden else r.unexpected_percent})
    for check in {r.name for r in suite_result.results if r.phenotype_id is not None}:
        parts = [r for r in suite_result.results if r.name == check and r.phenotype_id is not None]
        rows.append({"where": (suite_result.suite, check, "all phenotypes"),
                     "element_count": shown(sum(r.element_count for r in parts)),
                     "unexpected_count": shown(sum(r.unexpected_count for r in parts)), "missing_count": None,
                     "unexpected_percent": None})
    return rows


def recovered_small_counts(rows: list[dict], threshold: int) -> dict[str, int]:
    """Every count of 1 .. threshold-1 a reader forms from the printed counts: the rows that pass (judged less
    failing), the empty values and the values judged (back from the failing percentage, which GX takes of the
    non-empty values), and a per-phenotype total less every printed phenotype but one."""
    found: dict[str, int] = {}

    def note(what: str, value: float | None) -> None:
        if value is not None and abs(value - round(value)) < 1e-6 and 1 <= round(value) < threshold:
            found[what] = int(round(value))

    for row in rows:
        where = "/".join(str(part) for part in row["where"])
        element, unexpected, missing, percent = (row["element_count"], row["unexpected_count"],
                                                 row.get("missing_count"), row["unexpected_percent"])
        if element is not None and unexpected is not None and unexpected <= element:
            note(f"{where}: passing = judged - failing", element - (missing or 0) - unexpected)
        if unexpected and percent:
            judged = 100.0 * unexpected / percent
            note(f"{where}: values judged = failing / percentage", judged)
            note(f"{where}: passing = failing / percentage - failing", judged - unexpected)
            if element is not None:
                note(f"{where}: empty = rows - failing / percentage", element - judged)
    for row in rows:
        suite, check, phenotype = row["where"]
        if phenotype != "all phenotypes" or row["element_count"] is None:
            continue
        parts = [part["element_count"] for part in rows
                 if part["where"][:2] == (suite, check) and part["where"][2] not in (None, "all phenotypes")]
        if parts.count(None) == 1:
            note(f"{suite}/{check}: a phenotype's persons = total - the others",
                 row["element_count"] - sum(part for part in parts if part is not None))
    return found


# ---------------------------------------------------------------------------------------------------------------
# Planted cases
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def staging(tmp_path):
    return build_example_staging(tmp_path / "run" / "warehouse.duckdb")


def attacked(database: Path, suite: str) -> tuple[dict[str, int], dict[str, int]]:
    """What the attacker recovers from the counts published cell by cell, and from the published outputs."""
    result = run_suite(database, suite, run_id="attacked", small_cell_threshold=THRESHOLD)
    return (recovered_small_counts(cell_by_cell(result, THRESHOLD), THRESHOLD),
            recovered_small_counts(printed_results(database), THRESHOLD))


def test_persons_with_a_record_are_not_printed_beside_those_without(staging):
    """person_has_condition_occurrence prints the persons without a condition; with the persons judged, the
    persons WITH one are a subtraction away: 2 of 5 here."""
    con = duckdb.connect(str(staging))
    con.execute("DELETE FROM staging.condition_occurrence WHERE person_id IN ('p3', 'p4', 'p5')")
    con.close()
    cell_by_cell_published, published = attacked(staging, "staging.person")
    where = "staging.person/person_has_condition_occurrence/None"
    assert cell_by_cell_published == {f"{where}: passing = judged - failing": 2,
                                      f"{where}: passing = failing / percentage - failing": 2}
    assert published == {}
    con = duckdb.connect(str(staging), read_only=True)
    printed = con.execute("SELECT element_count, unexpected_count, unexpected_pct, observed_value, suppressed "
                          "FROM dq.check_results WHERE expectation = 'person_has_condition_occurrence'").fetchall()
    con.close()
    # the persons without a condition (3, not small) are hidden as the complement; the persons judged stay
    assert printed == [(5, None, None, None, True)]


def test_empty_values_are_not_recomputed_from_the_percentage(staging):
    """A column check's percentage is of the non-empty values: with the rows and the failing rows printed, it
    gives the empty values back (1 here) and the values that pass (2)."""
    con = duckdb.connect(str(staging))
    con.execute("UPDATE staging.measurement SET laterality = 'X' "
                "WHERE measurement_id IN ('m1', 'm2', 'm3', 'm4', 'm7')")
    con.close()
    cell_by_cell_published, published = attacked(staging, "staging.measurement")
    where = "staging.measurement/laterality_in_value_set/None"
    # (the range checks judge one or two rows per code here: small counts, hidden as such)
    assert {what: count for what, count in cell_by_cell_published.items()
            if what.startswith(where)} == {
                    f"{where}: passing = failing / percentage - failing": 2,
                    f"{where}: empty = rows - failing / percentage": 1}
    assert published == {}


def test_a_phenotype_is_not_the_total_less_the_others(staging):
    """The Data Docs print a per-phenotype check's totals over every phenotype: with each phenotype's persons
    printed but one small one, the total gives that one back (2 persons here)."""
    con = duckdb.connect(str(staging))
    con.execute("CREATE SCHEMA phenotype")
    con.execute("CREATE TABLE phenotype.definitions AS SELECT * FROM (VALUES ('cramps'), ('rare'), ('unmet')) "
                "AS d(phenotype_id)")
    con.execute("CREATE TABLE phenotype.person_summary AS SELECT * FROM (VALUES "
                "('p1', 'cramps', DATE '2018-02-01', DATE '2018-02-01'), "
                "('p2', 'cramps', DATE '2018-05-10', DATE '2018-05-10'), "
                "('p3', 'cramps', DATE '2020-01-15', DATE '2020-01-15'), "
                "('p4', 'cramps', DATE '2019-08-20', DATE '2019-08-20'), "
                "('p5', 'cramps', DATE '2021-10-01', DATE '2021-10-01'), "
                "('p1', 'rare', DATE '2019-03-04', DATE '2019-03-04'), "
                "('p3', 'rare', DATE '2020-01-15', DATE '2020-01-15')) "
                "AS s(person_id, phenotype_id, first_date, last_date)")
    con.execute("CREATE TABLE phenotype.events AS SELECT person_id, phenotype_id, first_date AS event_date "
                "FROM phenotype.person_summary")
    con.close()
    cell_by_cell_published, published = attacked(staging, "phenotype.phenotypes")
    by_total = {what: count for what, count in cell_by_cell_published.items()
                if "a phenotype's persons = total - the others" in what}
    assert set(by_total.values()) == {2} and len(by_total) == 7  # 'rare', by each check of the suite
    assert published == {}
    con = duckdb.connect(str(staging), read_only=True)
    persons = dict(con.execute("SELECT DISTINCT phenotype_id, element_count FROM dq.check_results").fetchall())
    con.close()
    assert persons == {"cramps": 5, "rare": None, "unmet": 0}  # each phenotype's own count: as before


def test_a_cohort_suite_prints_no_count_of_every_study(study_database, tmp_path):
    """A cohort suite judges one study's rows of cohort.study_population, but its element_count was the rows of
    the table: every study's cohort. With the other studies' cohort sizes, which results.attrition prints, it gave
    back a study's cohort that attrition prints "<11"."""
    from pipelines.cohorts import build_study, load_studies
    from pipelines.cohorts.settings import StudySettings
    from pipelines.quality import suites

    database = tmp_path / "cohorts.duckdb"
    shutil.copy(study_database(1_500, 21), database)  # ingested, phenotyped, every study's cohort built
    con = duckdb.connect(str(database))
    # the new-user study's period started at its fifth-last index date: a cohort of a few persons
    start = con.execute("SELECT index_date FROM cohort.study_population WHERE study_id = 'thiazide_vs_ccb' "
                        "ORDER BY index_date DESC LIMIT 1 OFFSET 4").fetchone()[0]
    late = {"thiazide_vs_ccb": {"study_period": {"start": str(start)}}}
    study = StudySettings(overrides=late).resolve(load_studies()["thiazide_vs_ccb"])
    build_study(con, study)
    cohorts = dict(con.execute("SELECT study_id, persons_after FROM results.attrition AS a WHERE step_order = "
                               "(SELECT max(step_order) FROM results.attrition WHERE study_id = a.study_id)"
                               ).fetchall())
    small = con.execute("SELECT count(*) FROM cohort.study_population WHERE study_id = 'thiazide_vs_ccb'"
                        ).fetchone()[0]
    con.close()
    assert 1 <= small < study.threshold and cohorts["thiazide_vs_ccb"] is None  # printed "<11"
    result = run_suite(database, suites.build_cohort_suite(study), run_id="attacked")
    assert all(r.element_count == small + sum(n for s, n in cohorts.items() if s != "thiazide_vs_ccb")
               for r in result.results)  # what the check judged: every study's rows
    con = duckdb.connect(str(database), read_only=True)
    printed = con.execute("SELECT DISTINCT element_count, unexpected_pct FROM dq.check_results "
                          "WHERE suite = 'cohort.thiazide_vs_ccb'").fetchall()
    con.close()
    assert printed == [(None, None)]  # (the attack: element_count less the other studies' cohorts = `small`)
    stored = [json.loads(path.read_text()) for path in
              (database.parent / "data_docs" / "_validation_results" / "cohort" / "thiazide_vs_ccb").rglob("*.json")]
    assert stored and not any("element_count" in expectation["result"] or "unexpected_percent" in expectation["result"]
                              for validation in stored for expectation in validation["results"])
