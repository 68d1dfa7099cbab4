"""The data-quality run's speed-ups change no verdict and no count (docs/data_quality.md, *Where the time goes*).

- gx_configuration_cache: GX rebuilds an expectation's configuration on every read; inside a validation the runner
  builds it once. A run with the cache and a run of plain GX give the same dq.check_results, row for row
  (verdicts, counts, percentages, suppression), and the same stored validation results (the Data Docs' source).
- PublishableValidationResultsStore: GX writes each validation result once, already publishable (no example rows,
  no small counts), instead of writing it raw and rewriting it.
- The GX context and datasource are kept from one run_suites call to the next on the same file (each Dagster
  check step validates its own suites): the same results as a context built per call.
- The asset checks' descriptions say where each suite runs (not "DuckDB" for the layers a Spark run checks on
  Spark).
"""

import os

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import contextlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402

import dagster as dg  # noqa: E402
import duckdb  # noqa: E402
import great_expectations as gx  # noqa: E402
import pytest  # noqa: E402

from pipelines.ingest.loader import load_extract  # noqa: E402
from pipelines.phenotypes import run_phenotypes  # noqa: E402
from pipelines.quality import checks, runner, suites  # noqa: E402
from pipelines.quality.gx_configuration_cache import expectation_configurations_cached  # noqa: E402
from pipelines.quality.runner import ROW_LEVEL_RESULT_KEYS, run_suites  # noqa: E402
from tests.support.planted_rejects import write_fixture  # noqa: E402

# Every column of dq.check_results but the run's id and time.
COMPARED = ("suite, expectation, phenotype_id, expectation_type, table_name, column_name, category, subcategory, "
            "severity, threshold_pct, unexpected_count, unexpected_pct, element_count, observed_value, passed, "
            "error, suppressed")
# What differs between two runs of the same suites: GX's random expectation ids and the runs' times.
RUN_SPECIFIC_KEYS = {"id", "ge_load_time", "validation_id", "run_time", "validation_time"}


def test_configuration_is_rebuilt_outside_the_block_and_built_once_inside():
    expectation = gx.expectations.ExpectColumnValuesToNotBeNull(column="person_id")
    # GX 1.24.1 builds a new configuration on every read: when this fails, GX caches it itself and
    # gx_configuration_cache can go (its docstring).
    assert expectation.configuration is not expectation.configuration
    with expectation_configurations_cached():
        first = expectation.configuration
        assert expectation.configuration is first
        assert first == gx.expectations.ExpectColumnValuesToNotBeNull(column="person_id").configuration
        other = gx.expectations.ExpectColumnValuesToNotBeNull(column="sex")
        assert other.configuration.kwargs["column"] == "sex"  # each expectation keeps its own
    assert expectation.configuration is not expectation.configuration  # GX restored after the block


@pytest.fixture(scope="module")
def checked_database(tmp_path_factory, generated_extract):
    """A generated extract with planted defects (its checks fail with counts large and small, so some are hidden),
    then the planted-rejects extract's persons appended (counts of 1 and 2), through the real ingest and the
    phenotypes."""
    folder = tmp_path_factory.mktemp("gx_speed")
    database = folder / "warehouse.duckdb"
    con = duckdb.connect(str(database))
    load_extract(con, generated_extract(300, 11, defect_rate=0.02).path)
    run_phenotypes(con)
    rejects = duckdb.connect(str(folder / "rejects.duckdb"))
    load_extract(rejects, write_fixture(folder / "planted_rejects"))
    rejects.close()
    con.execute(f"ATTACH '{folder / 'rejects.duckdb'}' AS rejects (READ_ONLY)")
    for table in ("person", "observation_period", "visit_occurrence", "condition_occurrence"):
        con.execute(f"INSERT INTO staging.{table} BY NAME SELECT * FROM rejects.staging.{table}")
    con.execute("DETACH rejects")
    con.close()
    return database


def _run(database, folder, monkeypatch=None):
    """Every staging suite and the phenotype suite, one run_suites call each as the Dagster check steps do;
    returns dq.check_results and the stored validation results."""
    folder.mkdir()
    copy = folder / "warehouse.duckdb"
    shutil.copy(database, copy)
    for name in [*suites.layer_suite_names(suites.STAGING_LAYER), suites.PHENOTYPE_SUITE]:
        run_suites(copy, [name], run_id="same-run", build_data_docs=False, docs_dir=folder / "docs")
    con = duckdb.connect(str(copy), read_only=True)
    rows = con.execute(f"SELECT {COMPARED} FROM dq.check_results ORDER BY ALL").fetchall()
    con.close()
    stored = {}
    for path in sorted((folder / "docs" / "_validation_results").rglob("*.json")):
        stored[path.relative_to(folder / "docs").parts[1:3]] = _without(json.loads(path.read_text()),
                                                                        RUN_SPECIFIC_KEYS)
    return rows, stored


def _without(value, keys):
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def test_cached_run_publishes_what_plain_gx_publishes(checked_database, tmp_path, monkeypatch):
    fast_rows, fast_stored = _run(checked_database, tmp_path / "fast")
    monkeypatch.setattr(runner, "expectation_configurations_cached", contextlib.nullcontext)
    plain_rows, plain_stored = _run(checked_database, tmp_path / "plain")

    assert fast_rows == plain_rows
    assert fast_stored == plain_stored
    # Not a comparison of two empty or all-passing runs: checks count violating rows, some fail (the planted
    # rejects' repeated observation period id), and small counts are hidden.
    columns = [c.strip() for c in COMPARED.split(",")]
    as_dicts = [dict(zip(columns, row)) for row in fast_rows]
    assert len(as_dicts) > 300
    assert any(r["unexpected_count"] for r in as_dicts)
    assert any(not r["passed"] and r["severity"] == suites.FATAL for r in as_dicts)
    assert any(r["suppressed"] and r["unexpected_count"] is None for r in as_dicts)
    assert {r["suite"] for r in as_dicts} == {*suites.layer_suite_names(suites.STAGING_LAYER), suites.PHENOTYPE_SUITE}
    assert [r for r in as_dicts if r["error"]] == []


def test_a_kept_context_publishes_what_a_context_per_call_publishes(checked_database, tmp_path, monkeypatch):
    built = []
    gx_context = runner._gx_context
    monkeypatch.setattr(runner, "_gx_context", lambda docs_dir: built.append(docs_dir) or gx_context(docs_dir))
    kept_rows, kept_stored = _run(checked_database, tmp_path / "kept")
    suite_count = len(suites.layer_suite_names(suites.STAGING_LAYER)) + 1
    assert len(built) == 1 and suite_count > 5  # one context for every call on the file

    built.clear()
    monkeypatch.setattr(runner, "_duckdb_validation", lambda docs_dir, database_path, config:
                        runner._KeptDuckDBValidation(("per call",), docs_dir, database_path, config))
    per_call_rows, per_call_stored = _run(checked_database, tmp_path / "per_call")
    assert len(built) == suite_count

    assert kept_rows == per_call_rows and len(kept_rows) > 300
    assert kept_stored == per_call_stored and len(kept_stored) == suite_count


def test_a_kept_context_validates_a_suite_again_and_sees_a_changed_file(checked_database, tmp_path):
    """The same suite twice on the same file (its validation definition replaced), then on the file changed in
    between by another connection: the second result counts the change."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(checked_database, copy)
    options = dict(run_id="again", build_data_docs=False, docs_dir=tmp_path / "docs")
    first = run_suites(copy, ["staging.person"], **options)[0]
    again = run_suites(copy, ["staging.person"], **options)[0]
    assert [(r.name, r.unexpected_count, r.passed) for r in again.results] == \
        [(r.name, r.unexpected_count, r.passed) for r in first.results]
    with duckdb.connect(str(copy)) as con:
        con.execute("INSERT INTO staging.person SELECT * FROM staging.person WHERE person_id IN (SELECT person_id "
                    "FROM staging.person GROUP BY 1 HAVING count(*) = 1 ORDER BY 1 LIMIT 20)")  # 20 ids repeated
    changed = run_suites(copy, ["staging.person"], **options)[0]
    unique_before, unique_after = (result.result("person_id_unique") for result in (first, changed))
    assert unique_after.unexpected_count == unique_before.unexpected_count + 40  # a pair of rows per repeated id
    assert not unique_after.passed


def test_stored_validation_results_are_publishable(checked_database, tmp_path):
    """The Data Docs' source never holds a row of the data: GX's store writes each result publishable."""
    _, stored = _run(checked_database, tmp_path / "run")
    assert len(stored) == len(suites.layer_suite_names(suites.STAGING_LAYER)) + 1
    text = json.dumps(list(stored.values()))
    assert not any(f'"{key}"' in text for key in ROW_LEVEL_RESULT_KEYS)
    failing = [r["result"] for s in stored.values() for r in s["results"] if not r["success"]]
    assert failing and all(r.get("unexpected_count") is None or r["unexpected_count"] == 0
                           or r["unexpected_count"] >= runner.site_floor() for r in failing)


def test_check_descriptions_name_where_each_suite_runs():
    staging = checks.build_suite_asset_checks(["staging", "person"], "staging.person")
    phenotype = checks.phenotype_asset_checks([dg.AssetKey(["phenotype", "leg_cramps"])])
    assert "DuckDB build file" in staging.node_def.description
    assert "Spark" in phenotype.node_def.description
    assert checks.where_checked(suites.COHORT_LAYER + ".study") == checks.where_checked(suites.PHENOTYPE_SUITE)
    assert "Spark" in checks.where_checked(suites.COHORT_LAYER + ".study")
