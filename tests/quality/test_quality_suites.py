"""The suites in expectations/staging/: generated, complete, well-formed, loadable by GX."""

import os
import re

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import pytest  # noqa: E402

from pipelines import extract_spec as spec  # noqa: E402
from pipelines.quality import suites  # noqa: E402
from tests.support.planted_defect_checks import PLANTED_DEFECT_CHECKS  # noqa: E402
from pipelines.quality.runner import load_suite  # noqa: E402
from pipelines.quality.valid_codes import valid_icd10cm_codes  # noqa: E402

STAGING_SUITES = [suites.suite_name("staging", t.name) for t in spec.TABLES]


def test_every_staging_table_has_a_suite():
    assert sorted(suites.layer_suite_names("staging")) == sorted(STAGING_SUITES)


@pytest.mark.parametrize("table", spec.TABLES, ids=lambda t: t.name)
def test_committed_suite_json_is_up_to_date(table):
    expected = suites.suite_json_text(suites.build_staging_suite(table))
    committed = suites.suite_path(suites.suite_name("staging", table.name)).read_text()
    assert committed == expected, "expectations/ is out of date: run `python -m pipelines.quality.suites`"


@pytest.mark.parametrize("name", STAGING_SUITES)
def test_every_expectation_carries_dqd_metadata(name):
    suite = suites.read_suite_json(name)
    names = [e["meta"]["name"] for e in suite["expectations"]]
    assert len(names) == len(set(names))
    for expectation in suite["expectations"]:
        meta = expectation["meta"]
        assert suites.CHECK_NAME_PATTERN.match(meta["name"]), meta["name"]
        assert meta["category"] in suites.CATEGORIES
        assert meta["subcategory"]
        assert meta["severity"] in suites.SEVERITIES
        assert 0 <= meta["threshold"] <= 100
        assert meta["description"]
        if meta["severity"] == suites.FATAL:
            assert meta["threshold"] == 0, "fatal checks allow no failing row"


@pytest.mark.parametrize("name", STAGING_SUITES)
def test_gx_loads_every_expectation(name):
    suite_json = suites.read_suite_json(name)
    assert len(load_suite(suite_json).expectations) == len(suite_json["expectations"])


def test_fatal_and_warning_choices():
    """The severity policy of docs/data_quality.md, on a few representative checks."""
    def severity(suite, check):
        return next(e["meta"]["severity"] for e in suites.read_suite_json(suite)["expectations"]
                    if e["meta"]["name"] == check)

    assert severity("staging.person", "person_id_unique") == "fatal"
    assert severity("staging.person", "sex_in_value_set") == "fatal"
    assert severity("staging.condition_occurrence", "person_id_in_person_table") == "fatal"
    assert severity("staging.condition_occurrence", "columns_match_spec") == "fatal"
    assert severity("staging.condition_occurrence", "condition_start_date_not_after_death") == "warning"
    assert severity("staging.measurement", "sodium_value_plausible") == "warning"
    assert severity("staging.condition_occurrence", "condition_code_format_snomed") == "warning"


def test_planted_defect_mapping_names_existing_checks():
    existing = {(name, e["meta"]["name"]) for name in STAGING_SUITES
                for e in suites.read_suite_json(name)["expectations"]}
    assert set(PLANTED_DEFECT_CHECKS) == {"duplicate_event", "event_after_death", "event_outside_observation",
                                          "end_before_start", "impossible_lab_value", "unknown_code"}
    for kind, checks in PLANTED_DEFECT_CHECKS.items():
        assert checks, kind
        for check in checks:
            assert check in existing, (kind, check)
    all_mapped = [c for checks in PLANTED_DEFECT_CHECKS.values() for c in checks]
    assert len(all_mapped) == len(set(all_mapped)), "a check belongs to one defect kind"


def test_code_formats():
    def matches(vocabulary, code):
        return re.match(suites.CODE_FORMATS[vocabulary], code) is not None

    assert matches("ICD10CM", "R25.2") and matches("ICD10CM", "R25") and matches("ICD10CM", "S72.001A")
    assert not matches("ICD10CM", "R252") and not matches("ICD10CM", "r25.2")
    assert matches("SNOMED", "446841001") and not matches("SNOMED", "12AB") and not matches("SNOMED", "12345")
    assert matches("RxNorm", "5487") and not matches("RxNorm", "C03AA03")
    assert matches("ATC", "C03AA03") and matches("ATC", "C03") and matches("ATC", "C") and not matches("ATC", "C3")
    assert matches("LOINC", "2951-2") and not matches("LOINC", "2951")


def test_valid_icd10cm_codes():
    codes = set(valid_icd10cm_codes())
    assert {"R25", "R25.2", "E87.1", "E83.42", "I73.9"} <= codes
    assert "R25.7" not in codes and "A00-B99" not in codes
    # Nearly every code of the release has the documented format; the exceptions (the new "QA0" family of the
    # April 2026 release) are listed in docs/data_quality.md.
    malformed = {c for c in codes if not re.match(suites.CODE_FORMATS["ICD10CM"], c)}
    assert all(c.startswith("QA0") for c in malformed)
