"""The one Dagster check of a phenotype carries every check of the phenotype suite as a sub-result: it fails with
severity ERROR when a fatal sub-check fails (a blocking check then stops what is downstream), with WARN when only
warnings fail, and reports a sub-check the suite has no result for as failed."""

import datetime
import os

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import dagster as dg  # noqa: E402

from pipelines.quality import suites  # noqa: E402
from pipelines.quality.checks import PHENOTYPE_CHECK_NAME, phenotype_check_result  # noqa: E402
from pipelines.quality.runner import ExpectationResult, SuiteResult  # noqa: E402

EXPECTATIONS = suites.read_suite_json(suites.PHENOTYPE_SUITE)["expectations"]
KEY = dg.AssetKey(["phenotype", "leg_cramps"])


def sub_result(expectation: dict, phenotype_id: str, failing: int = 0) -> ExpectationResult:
    meta = expectation["meta"]
    return ExpectationResult(
        name=meta["name"], expectation_type=expectation["type"], table="phenotype.person_summary", column=None,
        category=meta["category"], subcategory=meta["subcategory"], severity=meta["severity"],
        threshold=float(meta["threshold"]), description=meta["description"], observed_value=failing,
        unexpected_count=failing, unexpected_percent=100.0 * failing / 20, element_count=20,
        example_rows=tuple({"person_id": f"p{i}"} for i in range(failing)), passed=failing == 0,
        phenotype_id=phenotype_id)


def suite_result(*results: ExpectationResult) -> SuiteResult:
    return SuiteResult(suite=suites.PHENOTYPE_SUITE, table="phenotype.person_summary", run_id="r",
                       checked_at=datetime.datetime(2026, 1, 1), results=results, data_docs_index=None)


def first(severity: str) -> dict:
    return next(e for e in EXPECTATIONS if e["meta"]["severity"] == severity)


def test_every_sub_check_is_reported_and_a_warning_fails_without_blocking():
    warning = first(suites.WARNING)
    results = [sub_result(e, "leg_cramps", failing=3 if e is warning else 0) for e in EXPECTATIONS]
    # Another phenotype's failure of a fatal check is not this phenotype's.
    results.append(sub_result(first(suites.FATAL), "hyponatremia_lab", failing=5))

    check = phenotype_check_result(KEY, "leg_cramps", EXPECTATIONS, suite_result(*results))

    assert (check.check_name, check.passed, check.severity) == (PHENOTYPE_CHECK_NAME, False, dg.AssetCheckSeverity.WARN)
    rows = check.metadata["checks"].value.splitlines()[2:]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == [e["meta"]["name"] for e in EXPECTATIONS]
    assert check.metadata["checks_failed"].value == [warning["meta"]["name"]]
    assert check.metadata["checks_passed"].value == len(EXPECTATIONS) - 1
    assert check.metadata[f"{warning['meta']['name']}/unexpected_count"].value == 3


def test_a_failing_fatal_sub_check_fails_with_error_severity():
    fatal = first(suites.FATAL)
    results = [sub_result(e, "leg_cramps", failing=2 if e is fatal else 0) for e in EXPECTATIONS]

    check = phenotype_check_result(KEY, "leg_cramps", EXPECTATIONS, suite_result(*results))

    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert check.description.startswith(f"failed: {fatal['meta']['name']} (fatal)")


def test_all_passed_and_a_missing_result_fails():
    passed = phenotype_check_result(KEY, "leg_cramps", EXPECTATIONS,
                                    suite_result(*(sub_result(e, "leg_cramps") for e in EXPECTATIONS)))
    assert passed.passed and passed.metadata["checks_failed"].value == []

    missing = phenotype_check_result(KEY, "leg_cramps", EXPECTATIONS, suite_result())
    assert not missing.passed and missing.severity == dg.AssetCheckSeverity.ERROR
    assert len(missing.metadata["checks_failed"].value) == len(EXPECTATIONS)
    assert "leg_cramps is not in phenotype.definitions of this run" in missing.description
