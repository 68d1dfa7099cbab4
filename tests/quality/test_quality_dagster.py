"""The Dagster asset checks in a real Dagster execution: one check per staging table reports the table's
expectations as sub-results; a failing fatal sub-check keeps the assets downstream of the checked asset from
running, a failing warning does not; the check names what failed and how many rows."""

import os

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import csv  # noqa: E402

import dagster as dg  # noqa: E402
import duckdb  # noqa: E402

from pipelines import extract_spec as spec  # noqa: E402
from pipelines.ingest import assets as ingest_assets  # noqa: E402
from pipelines.ingest.resources import ExtractSource  # noqa: E402
from pipelines.publish.assets import PUBLISHED_KEY, build_publish_asset  # noqa: E402
from pipelines.quality import suites  # noqa: E402
from pipelines.quality.checks import (  # noqa: E402
    STAGING_CHECK_NAME,
    build_suite_asset_checks,
    markdown_table,
    staging_asset_checks,
)
from tests.support.quality_staging import ROWS, create_staging_tables, insert_rows  # noqa: E402
from pipelines.warehouse import Warehouse  # noqa: E402

PERSON = dg.AssetKey(["staging", "person"])
CONDITION = dg.AssetKey(["staging", "condition_occurrence"])


def stub_staging(plant_defects: bool) -> dg.AssetsDefinition:
    """Stands in for the ingest: writes the example staging tables into the run's build file."""

    @dg.multi_asset(specs=[dg.AssetSpec(PERSON), dg.AssetSpec(CONDITION)], name="stub_staging")
    def staging_tables(context: dg.AssetExecutionContext, warehouse: Warehouse):
        with warehouse.connect(context.run_id) as con:
            create_staging_tables(con)
            for table_name, rows in ROWS.items():
                insert_rows(con, table_name, rows)
            if plant_defects:
                # fatal: a person id used twice; warning: a SNOMED code that is not a SNOMED id
                insert_rows(con, "person", [ROWS["person"][0]])
                insert_rows(con, "condition_occurrence", [("c93", "p3", "SNOMED", "12AB", "2020-02-01", None, None)])
        yield dg.MaterializeResult(asset_key=PERSON)
        yield dg.MaterializeResult(asset_key=CONDITION)

    return staging_tables


@dg.asset(deps=[PERSON])
def person_summary(context: dg.AssetExecutionContext, warehouse: Warehouse) -> None:
    """Downstream of staging/person: must not run when a fatal check of staging/person fails."""


@dg.asset(deps=[CONDITION])
def condition_summary(context: dg.AssetExecutionContext, warehouse: Warehouse) -> None:
    """Downstream of staging/condition_occurrence, whose failing check is only a warning."""


def materialize(tmp_path, plant_defects: bool) -> tuple[dg.ExecuteInProcessResult, Warehouse]:
    warehouse = Warehouse(database_path=str(tmp_path / "published.duckdb"))
    result = dg.materialize(
        [
            stub_staging(plant_defects),
            build_suite_asset_checks(PERSON, "staging.person"),
            build_suite_asset_checks(CONDITION, "staging.condition_occurrence"),
            person_summary,
            condition_summary,
        ],
        resources={"warehouse": warehouse},
        raise_on_error=False,
    )
    return result, warehouse


def materialized(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {event.asset_key for event in result.get_asset_materialization_events()}


def evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[dg.AssetKey, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}


def test_clean_staging_passes_and_everything_runs(tmp_path):
    result, _ = materialize(tmp_path, plant_defects=False)
    assert result.success
    assert materialized(result) == {PERSON, CONDITION, dg.AssetKey("person_summary"),
                                    dg.AssetKey("condition_summary")}
    checks = evaluations(result)
    assert set(checks) == {(PERSON, STAGING_CHECK_NAME), (CONDITION, STAGING_CHECK_NAME)}  # one per table
    assert all(e.passed for e in checks.values())
    person = checks[(PERSON, STAGING_CHECK_NAME)]
    expectations = [e["meta"]["name"] for e in suites.read_suite_json("staging.person")["expectations"]]
    assert [c["name"] for c in person.metadata["sub_checks"].value] == expectations
    assert person.metadata["checks_passed"].value == len(expectations)
    assert {e.metadata["engine"].value for e in checks.values()} == {"duckdb"}  # where the suites ran
    assert person.description.startswith(f"all {len(expectations)} passed: columns_match_spec (fatal)")


def test_failing_fatal_check_blocks_downstream_and_warning_does_not(tmp_path):
    result, warehouse = materialize(tmp_path, plant_defects=True)

    assert not result.success  # a blocking check failed
    assert dg.AssetKey("person_summary") not in materialized(result)
    assert dg.AssetKey("condition_summary") in materialized(result)

    checks = evaluations(result)
    assert {key for key, e in checks.items() if not e.passed} == {(PERSON, STAGING_CHECK_NAME),
                                                                 (CONDITION, STAGING_CHECK_NAME)}
    person = checks[(PERSON, STAGING_CHECK_NAME)]
    assert not person.passed and person.severity == dg.AssetCheckSeverity.ERROR
    # Which expectation failed, and how many rows, without opening Data Docs.
    assert person.description.startswith("failed: person_id_unique (fatal): 2 failing of 6 (33.33%, threshold 0%)")
    assert person.metadata["checks_failed"].value == ["person_id_unique"]
    assert person.metadata["fatal_checks_failed"].value == ["person_id_unique"]
    assert person.metadata["person_id_unique/unexpected_count"].value == 2
    assert "| person_id |" in person.metadata["person_id_unique/example_rows"].value
    assert "| person_id_unique | fatal | NO | 2 | 6 |" in person.metadata["checks"].value
    assert person.metadata["data_docs"].value.endswith("data_docs/index.html")
    verdicts = {c["name"]: c for c in person.metadata["sub_checks"].value}
    assert verdicts["person_id_unique"]["passed"] is False and verdicts["person_id_unique"]["unexpected_count"] == 2
    assert [name for name, c in verdicts.items() if not c["passed"]] == ["person_id_unique"]

    condition = checks[(CONDITION, STAGING_CHECK_NAME)]
    assert not condition.passed and condition.severity == dg.AssetCheckSeverity.WARN
    assert condition.description.startswith("failed: condition_code_format_snomed (warning): 1 failing")
    assert condition.metadata["checks_failed"].value == ["condition_code_format_snomed"]
    assert condition.metadata["fatal_checks_failed"].value == []
    assert condition.metadata["condition_code_format_snomed/unexpected_count"].value == 1
    assert condition.metadata["condition_code_format_snomed/unexpected_percent"].value == 100 / 7
    assert "12AB" in condition.metadata["condition_code_format_snomed/example_rows"].value
    # A failing check step renders the Data Docs at once: the run stops before publishing, which renders them.
    assert (warehouse.build_data_docs_dir(result.run_id) / "index.html").exists()

    # The checks recorded their results in the run's build file.
    con = duckdb.connect(str(warehouse.build_path(result.run_id)), read_only=True)
    recorded = con.execute(
        "SELECT suite, expectation, passed FROM dq.check_results WHERE run_id = ? AND NOT passed ORDER BY 1",
        [result.run_id],
    ).fetchall()
    con.close()
    assert recorded == [("staging.condition_occurrence", "condition_code_format_snomed", False),
                        ("staging.person", "person_id_unique", False)]


def write_example_extract(folder, sex_of_p5="U"):
    """The example staging rows as an extract folder of CSV files, for the real ingest."""
    folder.mkdir(parents=True, exist_ok=True)
    for table in spec.TABLES:
        with open(folder / f"{table.name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(table.column_names)
            for row in ROWS[table.name]:
                if table.name == "person" and row[0] == "p5":
                    row = (*row[:3], sex_of_p5, *row[4:])
                writer.writerow(["" if v is None else v for v in row])


def test_fatal_check_keeps_the_study_pipeline_from_publishing(tmp_path):
    """With the real ingest and publish assets: clean data is checked and published with its results; a sex the
    ingest does not know ("Q") fails a fatal check, and the published database stays as it was."""
    extract = tmp_path / "extract"
    warehouse = Warehouse(database_path=str(tmp_path / "published.duckdb"))
    staging_keys = list(ingest_assets.staging_tables.keys)
    definitions = [ingest_assets.staging_tables, build_publish_asset(staging_keys), *staging_asset_checks()]
    resources = {"warehouse": warehouse, "extract": ExtractSource(folder=str(extract))}
    checks_per_run = sum(len(suites.read_suite_json(n)["expectations"]) for n in suites.layer_suite_names("staging"))

    write_example_extract(extract)
    clean = dg.materialize(definitions, resources=resources, raise_on_error=False)
    assert clean.success and PUBLISHED_KEY in materialized(clean)
    assert all(e.passed for e in clean.get_asset_check_evaluations())
    assert sorted(e.asset_key.path[-1] for e in clean.get_asset_check_evaluations()
                  if e.check_name == STAGING_CHECK_NAME) == sorted(t.name for t in spec.TABLES)
    # The Data Docs were rendered once, by the publish step, with every staging suite's validation.
    index = (warehouse.published_outputs_dir / "data_docs" / "index.html").read_text()
    assert all(f"staging.{table.name}" in index for table in spec.TABLES)

    write_example_extract(extract, sex_of_p5="Q")
    broken = dg.materialize(definitions, resources=resources, raise_on_error=False)
    assert not broken.success and PUBLISHED_KEY not in materialized(broken)
    assert [(e.asset_key, e.check_name, e.severity, e.metadata["fatal_checks_failed"].value)
            for e in broken.get_asset_check_evaluations() if not e.passed] == [
        (PERSON, STAGING_CHECK_NAME, dg.AssetCheckSeverity.ERROR, ["sex_in_value_set"])]

    con = duckdb.connect(str(warehouse.published_path), read_only=True)
    published_runs = con.execute("SELECT run_id, count(*) FROM dq.check_results GROUP BY 1").fetchall()
    con.close()
    assert published_runs == [(clean.run_id, checks_per_run)]


def test_markdown_table():
    assert markdown_table([]) == "_no failing rows_"
    assert markdown_table([{"a": 1, "b": "x|y"}, {"a": None, "c": 3}]) == (
        "| a | b | c |\n|---|---|---|\n| 1 | x\\|y |  |\n|  |  | 3 |"
    )
