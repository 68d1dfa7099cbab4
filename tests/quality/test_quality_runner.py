"""run_suite / run_layer on small hand-built staging databases: clean data passes, each planted defect is caught
by the check meant for it with the exact count, and every result lands in dq.check_results."""

import os
import re
import shutil
import time

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import duckdb  # noqa: E402
import pytest  # noqa: E402

from pipelines.quality import suites  # noqa: E402
from tests.support.quality_staging import build_example_staging, insert_rows  # noqa: E402
from tests.support.planted_defect_checks import planted_defect_counts  # noqa: E402
from pipelines.quality.runner import render_data_docs, run_layer, run_suite  # noqa: E402


def total_expectations():
    return sum(len(suites.read_suite_json(n)["expectations"]) for n in suites.layer_suite_names("staging"))


def plant_defects(path):
    """One defect of each kind in the clean example database."""
    con = duckdb.connect(str(path))
    insert_rows(con, "person", [("p1", 1950, "1950-03-01", "F", None, None, "s1")])  # duplicate person id
    insert_rows(con, "condition_occurrence", [
        ("c90", "p999", "ICD10CM", "R25.2", "2018-02-01", None, None),  # unknown person
        ("c91", "p1", "ICD10CM", "R25.2", "2024-05-01", None, None),  # after p1's observation ends (2023-12-31)
        ("c92", "p2", "ICD10CM", "R25.7", "2018-06-01", None, None),  # well-formed, but no such ICD-10-CM code
        ("c93", "p3", "SNOMED", "12AB", "2020-02-01", None, None),  # not a SNOMED id
    ])
    insert_rows(con, "measurement", [
        ("m90", "p4", "LOINC", "2823-3", "2022-01-10", 4.0, "mmol/L", None, None),  # p4 died 2021-06-30
        ("m91", "p2", "LOINC", "2951-2", "2018-05-10", 1400.0, "mmol/L", None, "v3"),  # sodium 1400
    ])
    insert_rows(con, "drug_exposure", [  # ends before it starts
        ("d90", "p2", "RxNorm", "5487", "2019-01-10", "2019-01-01", 30, 30.0, None),
    ])
    insert_rows(con, "procedure_occurrence", [("pr90", "p1", "CPT4", "93922", "2019-03-05", "v2")])  # pr1 again
    con.close()


PLANTED_FAILURES = {
    ("staging.person", "person_id_unique"): 2,  # both rows that share the id
    ("staging.condition_occurrence", "person_id_in_person_table"): 1,
    ("staging.condition_occurrence", "condition_start_date_within_observation_period"): 1,
    ("staging.condition_occurrence", "condition_code_icd10cm_exists"): 1,
    ("staging.condition_occurrence", "condition_code_format_snomed"): 1,
    ("staging.measurement", "measurement_date_not_after_death"): 1,
    ("staging.measurement", "sodium_value_plausible"): 1,
    ("staging.drug_exposure", "drug_exposure_end_date_not_before_start"): 1,
    ("staging.procedure_occurrence", "no_duplicate_events"): 1,  # the extra copy, not the original
}


@pytest.fixture(scope="module")
def clean_results(tmp_path_factory):
    database = build_example_staging(tmp_path_factory.mktemp("clean") / "warehouse.duckdb")
    return database, run_layer(database, "staging", run_id="clean-run")


@pytest.fixture(scope="module")
def planted_results(tmp_path_factory):
    database = build_example_staging(tmp_path_factory.mktemp("planted") / "warehouse.duckdb")
    plant_defects(database)
    return database, run_layer(database, "staging", run_id="planted-run")


def test_clean_database_passes_every_check(clean_results):
    _, results = clean_results
    assert sorted(r.suite for r in results) == sorted(suites.layer_suite_names("staging"))
    problems = [(s.suite, r.name, r.unexpected_count, r.error) for s in results for r in s.results
                if not r.passed or r.error or r.unexpected_count]
    assert problems == []
    assert all(s.fatal_passed and s.passed for s in results)


def test_each_planted_defect_fails_exactly_its_check(planted_results):
    _, results = planted_results
    errors = [(s.suite, r.name, r.error) for s in results for r in s.results if r.error]
    assert errors == []
    failing = {(s.suite, r.name): r.unexpected_count for s in results for r in s.results if not r.passed}
    assert failing == PLANTED_FAILURES
    counted = {(s.suite, r.name): r.unexpected_count for s in results for r in s.results if r.unexpected_count}
    assert counted == PLANTED_FAILURES, "no other check counts a planted row"


def test_planted_defect_counts_map_kinds_to_checks(planted_results):
    _, results = planted_results
    assert planted_defect_counts(results) == {
        "duplicate_event": 1,
        "event_after_death": 1,
        "event_outside_observation": 1,
        "end_before_start": 1,
        "impossible_lab_value": 1,
        "unknown_code": 1,
    }


def test_results_report_dqd_fields_and_examples(planted_results):
    _, results = planted_results
    by_suite = {s.suite: s for s in results}
    sodium = by_suite["staging.measurement"].result("sodium_value_plausible")
    assert (sodium.category, sodium.severity, sodium.threshold) == ("plausibility", "warning", 1.0)
    assert sodium.column == "value_as_number" and sodium.table == "staging.measurement"
    assert sodium.element_count == 3  # the sodium results: m1, m8, m91
    assert sodium.unexpected_count == 1 and sodium.unexpected_percent == pytest.approx(100 / 3)
    assert sodium.example_rows == ({"value_as_number": 1400.0},)

    after_death = by_suite["staging.measurement"].result("measurement_date_not_after_death")
    assert after_death.example_rows == ({"measurement_id": "m90", "person_id": "p4", "measurement_date": "2022-01-10",
                                         "death_date": "2021-06-30"},)
    assert after_death.element_count == 10 and after_death.observed_value == 1

    unknown_person = by_suite["staging.condition_occurrence"].result("person_id_in_person_table")
    assert unknown_person.fatal and not unknown_person.passed
    assert not by_suite["staging.condition_occurrence"].fatal_passed
    assert by_suite["staging.measurement"].fatal_passed and not by_suite["staging.measurement"].passed


def test_without_column_examples_only_the_column_expectations_examples_go(planted_results, tmp_path):
    """`column_examples=False`, for a caller that reads verdicts and counts only (the Spark group's data-quality
    comparison): GX's column expectations give the same verdicts and counts without their example values, and the
    SQL checks keep their examples."""
    database, results = planted_results
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(database, copy)
    without = run_suite(copy, "staging.measurement", run_id="no-examples", build_data_docs=False,
                        column_examples=False)
    with_examples = {s.suite: s for s in results}["staging.measurement"]

    def counts(suite):
        return {r.name: (r.passed, r.unexpected_count, r.unexpected_percent, r.element_count, r.error)
                for r in suite.results}

    assert counts(without) == counts(with_examples)
    assert with_examples.result("sodium_value_plausible").example_rows == ({"value_as_number": 1400.0},)
    assert without.result("sodium_value_plausible").example_rows == ()
    sql_check = "measurement_date_not_after_death"
    assert without.result(sql_check).example_rows == with_examples.result(sql_check).example_rows != ()


def test_check_results_table_gets_one_row_per_check(clean_results, planted_results):
    for database, results in (clean_results, planted_results):
        con = duckdb.connect(str(database), read_only=True)
        rows = con.execute(
            "SELECT suite, expectation, table_name, column_name, category, severity, threshold_pct, "
            "unexpected_count, unexpected_pct, element_count, passed, run_id, checked_at "
            "FROM dq.check_results"
        ).fetchall()
        con.close()
        assert len(rows) == total_expectations()
        assert {r[11] for r in rows} == {results[0].run_id}
        assert all(r[12] is not None for r in rows)
    con = duckdb.connect(str(planted_results[0]), read_only=True)
    failed = con.execute(
        "SELECT suite, expectation, unexpected_count, suppressed FROM dq.check_results WHERE NOT passed ORDER BY ALL"
    ).fetchall()
    sodium = con.execute(
        "SELECT table_name, column_name, category, subcategory, severity, threshold_pct, unexpected_count, "
        "round(unexpected_pct, 2), element_count, suppressed FROM dq.check_results "
        "WHERE expectation = 'sodium_value_plausible'"
    ).fetchone()
    con.close()
    # Every planted failure is 1 or 2 rows: a small count, hidden in the published table (docs/disclosure.md).
    assert {(s, e) for s, e, _, _ in failed} == set(PLANTED_FAILURES)
    assert all(count is None and suppressed for _, _, count, suppressed in failed)
    assert sodium == ("staging.measurement", "value_as_number", "plausibility", "value: plausible range", "warning",
                      1.0, None, None, None, True)


def test_check_results_are_appended_across_runs(tmp_path):
    earlier = build_example_staging(tmp_path / "earlier" / "warehouse.duckdb")
    run_suite(earlier, "staging.death", run_id="run-1", build_data_docs=False)
    run_suite(earlier, "staging.death", run_id="run-2", build_data_docs=False)

    # The next run builds a new file; its first check copies the published history in.
    fresh = build_example_staging(tmp_path / "fresh" / "warehouse.duckdb")
    run_suite(fresh, "staging.death", run_id="run-3", history_database=earlier, build_data_docs=False)

    checks = len(suites.read_suite_json("staging.death")["expectations"])
    con = duckdb.connect(str(fresh), read_only=True)
    per_run = dict(con.execute("SELECT run_id, count(*) FROM dq.check_results GROUP BY 1").fetchall())
    con.close()
    assert per_run == {"run-1": checks, "run-2": checks, "run-3": checks}


def test_dqd_threshold_lets_a_small_share_pass(tmp_path):
    """One event outside observation among 21 conditions (4.8%) is counted, but within the 5% threshold."""
    database = build_example_staging(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(str(database))
    insert_rows(con, "condition_occurrence", [
        (f"c{i}", "p2", "ICD10CM", "R25.2", f"2016-01-{i:02d}", None, None) for i in range(10, 24)
    ] + [("c99", "p2", "ICD10CM", "R25.2", "2014-06-01", None, None)])
    con.close()

    result = run_suite(database, "staging.condition_occurrence", build_data_docs=False)
    outside = result.result("condition_start_date_within_observation_period")
    assert (outside.unexpected_count, outside.element_count, outside.threshold) == (1, 21, 5.0)
    assert outside.passed and result.passed


def test_schema_conformance_is_fatal(tmp_path):
    database = build_example_staging(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(str(database))
    con.execute("ALTER TABLE staging.death ALTER death_date TYPE VARCHAR")
    con.execute("ALTER TABLE staging.visit_occurrence DROP COLUMN visit_end_date")
    con.close()

    death = run_suite(database, "staging.death", build_data_docs=False)
    types = death.result("column_types_match_spec")
    assert not types.passed and types.fatal
    assert types.example_rows == ({"column_name": "death_date", "expected_type": "DATE", "actual_type": "VARCHAR"},)

    visits = run_suite(database, "staging.visit_occurrence", build_data_docs=False)
    columns = visits.result("columns_match_spec")
    assert not columns.passed and columns.unexpected_count == 1
    assert columns.example_rows == ({"missing_column": "visit_end_date"},)
    # The check on the dropped column cannot run: it reports an error and fails instead of passing silently.
    span = visits.result("visit_end_date_not_before_start")
    assert span.error and not span.passed


def test_data_docs_site_is_built_next_to_the_database(clean_results):
    database, results = clean_results
    index = results[0].data_docs_index
    assert index == database.parent / "data_docs" / "index.html"
    assert index.exists()
    html = index.read_text()
    assert all(name in html for name in suites.layer_suite_names("staging"))


# ------------------------------------------------------------------------------------------ synthetic extract
@pytest.fixture(scope="module")
def synthetic_results(tmp_path_factory, generated_extract):
    """A generated extract (with planted implausible rows), loaded by the real ingest, checked by every suite."""
    from pipelines.ingest.loader import load_extract

    extract, truth = generated_extract(2_000, 7, defect_rate=0.01)
    database = tmp_path_factory.mktemp("synthetic") / "warehouse.duckdb"
    con = duckdb.connect(str(database))
    load_extract(con, extract)
    con.close()
    planted: dict[str, int] = {}
    for kinds in truth["implausible_planted"].values():
        for kind, n in kinds.items():
            planted[kind] = planted.get(kind, 0) + n
    return planted, run_layer(database, "staging", build_data_docs=False)


def test_synthetic_planted_rows_are_counted_by_the_checks_meant_for_them(synthetic_results):
    planted, results = synthetic_results
    assert [(s.suite, r.name, r.error) for s in results for r in s.results if r.error] == []
    assert all(s.fatal_passed for s in results)
    assert planted_defect_counts(results) == planted


def test_data_docs_keep_every_suite_and_earlier_runs(tmp_path):
    """The Dagster checks run one suite at a time; the site must still show every suite and earlier runs."""
    database = build_example_staging(tmp_path / "warehouse.duckdb")
    run_layer(database, run_id="first")
    run_suite(database, "staging.death", run_id="second")
    docs = tmp_path / "data_docs"
    assert len(list((docs / "expectations" / "staging").glob("*.html"))) == len(suites.layer_suite_names("staging"))
    index = (docs / "index.html").read_text()
    assert "validations/staging/death/second/" in index and "validations/staging/person/first/" in index


def test_a_check_step_renders_only_its_own_suites_pages(tmp_path):
    """Each Dagster check step validates its own suites in the run's Data Docs folder: it renders their pages and
    the index, and leaves the pages of the run's earlier steps as they were (rendering them again made the
    steps cost quadratically in their number)."""
    database = build_example_staging(tmp_path / "warehouse.duckdb")
    docs = tmp_path / "data_docs"
    run_suite(database, "staging.person", run_id="one-run")
    person_pages = sorted((docs / "validations" / "staging" / "person").rglob("*.html"))
    assert len(person_pages) == 1
    written = {page: page.stat().st_mtime_ns for page in person_pages}

    run_suite(database, "staging.death", run_id="one-run")

    assert {page: page.stat().st_mtime_ns for page in person_pages} == written
    assert len(list((docs / "validations" / "staging" / "death").rglob("*.html"))) == 1
    index = (docs / "index.html").read_text()
    assert "validations/staging/death/one-run/" in index and "validations/staging/person/one-run/" in index


# Times as Data Docs write them: in paths (20261206T050805.000000Z) and on the pages (2026-12-06T05:08:05Z).
DATA_DOCS_TIME = re.compile(r"\d{8}T\d{6}(\.\d+)?Z|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


def test_two_runs_on_the_same_data_render_the_same_data_docs(tmp_path):
    """A pipeline run stores each check step's validation and renders the site once. Two runs on the same data
    render the same pages but for what names the run (its id and times), even when their check steps ran in
    another order and in other seconds (GX lists the index by run time, in whole seconds, and leaves the rest to
    the order of the files on disk), and GX's random element and store ids stay out of the published folder."""
    pages = {}
    for run_id, order in (("run-one", ["staging.death", "staging.person"]),
                          ("run-two", ["staging.person", "staging.death"])):
        database = build_example_staging(tmp_path / run_id / "warehouse.duckdb")
        docs = tmp_path / run_id / "data_docs"
        run_suite(database, order[0], run_id=run_id, docs_dir=docs, build_data_docs=False)
        time.sleep(1.1)  # the second check step of the run in a later second
        run_suite(database, order[1], run_id=run_id, docs_dir=docs, build_data_docs=False)
        render_data_docs(docs)
        assert not list(docs.rglob(".ge_store_backend_id"))
        pages[run_id] = {DATA_DOCS_TIME.sub("<time>", str(page.relative_to(docs)).replace(run_id, "<run>")):
                         DATA_DOCS_TIME.sub("<time>", page.read_text().replace(run_id, "<run>"))
                         for page in docs.rglob("*.html") if "static" not in page.relative_to(docs).parts}
    assert len(pages["run-one"]) == 5  # the index, two suites' pages, two validations' pages
    assert pages["run-one"] == pages["run-two"]
    index = pages["run-one"]["index.html"]
    assert index.index("validations/staging/death/") < index.index("validations/staging/person/")
