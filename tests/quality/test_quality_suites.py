"""The suites in expectations/staging/: generated, complete, well-formed, loadable by GX."""

import os
import re

os.environ["GX_ANALYTICS_ENABLED"] = "false"

from pathlib import Path  # noqa: E402

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from pipelines import extract_spec as spec  # noqa: E402
from pipelines.paths import PHENOTYPES_DIR  # noqa: E402
from pipelines.phenotypes import PhenotypeDefinitionError, load_phenotype_library, phenotype_library  # noqa: E402
from pipelines.quality import suites  # noqa: E402
from tests.support.quality_staging import build_example_staging, insert_rows  # noqa: E402
from tests.support.planted_defect_checks import PLANTED_DEFECT_CHECKS  # noqa: E402
from pipelines.quality.runner import load_suite, run_suite  # noqa: E402
from pipelines.quality.valid_codes import valid_icd10cm_codes  # noqa: E402
from pipelines.vocabularies import CODE_VOCABULARIES, check_digit_is_valid, check_digit_sql  # noqa: E402

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
        return re.match(CODE_VOCABULARIES[vocabulary].pattern, code) is not None

    assert matches("ICD10CM", "R25.2") and matches("ICD10CM", "R25") and matches("ICD10CM", "S72.001A")
    assert not matches("ICD10CM", "R252") and not matches("ICD10CM", "r25.2")
    assert matches("SNOMED", "446841001") and not matches("SNOMED", "12AB") and not matches("SNOMED", "12345")
    assert matches("RxNorm", "5487") and not matches("RxNorm", "C03AA03")
    assert matches("ATC", "C03AA03") and matches("ATC", "C03") and matches("ATC", "C") and not matches("ATC", "C3")
    assert matches("LOINC", "2951-2") and not matches("LOINC", "2951")


def test_the_check_digit_sql_agrees_with_the_python_rule():
    """The staging check computes the SNOMED CT Verhoeff and LOINC mod-10 digits in SQL; the phenotype loader in
    Python. Both from the tables of pipelines/vocabularies.py, and equal on every code tried."""
    random = np.random.default_rng(7)
    codes = {
        "SNOMED": [str(n) for n in random.integers(100_000, 10**12, 2000)] + ["446841001", "43339006", "89627008"],
        "LOINC": [f"{n}-{d}" for n, d in zip(random.integers(1, 999_999, 2000), random.integers(0, 10, 2000))]
                 + ["2951-2", "2823-3", "2823-4", "19123-9", "2601-3"],
    }
    con = duckdb.connect()
    for vocabulary, sample in codes.items():
        rows = con.execute(f"SELECT code, {check_digit_sql(vocabulary, 'code')} FROM unnest($codes) AS t(code)",
                           {"codes": sample}).fetchall()
        assert {code: valid for code, valid in rows} == {c: check_digit_is_valid(vocabulary, c) for c in sample}
        assert 0 < sum(valid for _, valid in rows) < len(sample)  # both verdicts occur


# Codes that look like codes but are not: an RxNorm CUI with a leading zero, a LOINC code with a wrong check digit
# (2823-3 is potassium), a SNOMED CT id with a leading zero.
NOT_CODES = {
    "drug_exposure": ("drugs/ace_inhibitors.yaml", "RxNorm", "0123"),
    "measurement": ("electrolytes/hypokalemia_lab.yaml", "LOINC", "2823-4"),
    "condition_occurrence": ("conditions/alcohol_use.yaml", "SNOMED", "012345"),
}


def test_codes_the_phenotype_loader_refuses_are_flagged_by_the_staging_check(tmp_path):
    """One rule for what a code looks like: a code a phenotype file may not list is a malformed code in staging."""
    library = tmp_path / "phenotypes"
    library.mkdir()
    for file, vocabulary, code in NOT_CODES.values():
        definition = yaml.safe_load((PHENOTYPES_DIR / file).read_text())
        group = next(g for g in definition["codes"] if g["vocabulary"] == vocabulary)
        group["codes"] = [code]
        definition.pop("exclude_persons_with", None)
        (library / Path(file).name).write_text(yaml.safe_dump(definition, sort_keys=False))
    with pytest.raises(PhenotypeDefinitionError) as refused:
        load_phenotype_library(library)
    refused_codes = {p.message.split("'")[1] for p in refused.value.problems if ".codes[" in p.field}
    assert refused_codes == {code for _, _, code in NOT_CODES.values()}

    database = build_example_staging(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(database)) as con:
        insert_rows(con, "drug_exposure", [("d_bad", "p1", "RxNorm", "0123", "2018-02-01", "2018-03-02", 30, 30.0,
                                            None)])
        insert_rows(con, "measurement", [("m_bad", "p1", "LOINC", "2823-4", "2018-02-01", 3.2, "mmol/L", None,
                                          None)])
        insert_rows(con, "condition_occurrence", [("c_bad", "p1", "SNOMED", "012345", "2018-02-01", None, None)])
    for table, (_, vocabulary, _) in NOT_CODES.items():
        code_column = next(code for _, code in spec.TABLES_BY_NAME[table].coded)
        result = run_suite(database, suites.suite_name("staging", table), run_id="codes", build_data_docs=False)
        for check in (r for r in result.results if r.name.startswith(f"{code_column}_format_")):
            assert check.error is None
            # The planted code is the one violating row of its vocabulary's check; the clean rows pass.
            assert check.unexpected_count == (1 if check.name.endswith(vocabulary.lower()) else 0), check.name


def test_measurement_range_checks_are_the_library_ranges_in_the_codes_units(tmp_path):
    """The library states magnesium's plausible range once, 0.1-5 mmol/L, which is 0.24305-12.1525 mg/dL; the
    staging check of the mg/dL code (LOINC 19123-9) applies that, not a hand-kept 0.25-12."""
    ranges = {(r.vocabulary, r.code): r for r in suites.PLAUSIBLE_MEASUREMENT_RANGES if r.includes_no_unit}
    mg_dl, mmol_l = ranges["LOINC", "19123-9"], ranges["LOINC", "2601-3"]
    assert (mg_dl.unit, mg_dl.low, mg_dl.high) == ("mg/dL", 0.24305, 12.1525)
    assert (mmol_l.unit, mmol_l.low, mmol_l.high) == ("mmol/L", 0.1, 5.0)
    assert phenotype_library().plausible_range("LOINC", "19123-9") == (0.24305, 12.1525, True)
    # Every measurement code of the library has its check.
    library_codes = {(g.vocabulary, c) for p in phenotype_library() if p.definition.measurement is not None
                     for g in p.definition.codes for c in g.codes}
    assert set(ranges) == library_codes

    database = build_example_staging(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(database)) as con:
        insert_rows(con, "measurement", [
            ("m_mg_1", "p1", "LOINC", "19123-9", "2018-02-01", 0.245, "mg/dL", None, None),  # 0.1008 mmol/L
            ("m_mg_2", "p1", "LOINC", "19123-9", "2018-02-01", 12.1, "mg/dL", None, None),  # 4.98 mmol/L
            ("m_mg_3", "p2", "LOINC", "19123-9", "2018-02-01", 0.2, "mg/dL", None, None),  # 0.082 mmol/L
            ("m_mg_4", "p2", "LOINC", "19123-9", "2018-02-01", 12.2, "mg/dL", None, None),  # 5.02 mmol/L
        ])
    result = run_suite(database, "staging.measurement", run_id="magnesium", build_data_docs=False)
    check = result.result("magnesium_mg_dl_value_plausible")
    assert check.error is None
    assert check.unexpected_count == 2  # 0.2 and 12.2; 0.245 and 12.1 are plausible


def test_valid_icd10cm_codes():
    codes = set(valid_icd10cm_codes())
    assert {"R25", "R25.2", "E87.1", "E83.42", "I73.9"} <= codes
    assert "R25.7" not in codes and "A00-B99" not in codes
    # Nearly every code of the release has the documented format; the exceptions (the new "QA0" family of the
    # April 2026 release) are listed in docs/data_quality.md.
    malformed = {c for c in codes if not re.match(CODE_VOCABULARIES["ICD10CM"].pattern, c)}
    assert all(c.startswith("QA0") for c in malformed)


def test_measurement_range_checks_judge_a_value_in_the_unit_it_was_recorded_in(tmp_path):
    """A magnesium value recorded in another listed unit than its code's is judged after the same conversion the
    phenotypes apply (mg/dL = mmol/L x 2.4305, mEq/L = mmol/L x 2), not against the range in the code's unit."""
    database = build_example_staging(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(database)) as con:
        insert_rows(con, "measurement", [
            # LOINC 2601-3 reports mmol/L (plausible 0.1-5 mmol/L).
            ("m_u_1", "p1", "LOINC", "2601-3", "2018-02-01", 6.0, "mg/dL", None, None),  # 2.47 mmol/L: plausible
            ("m_u_2", "p1", "LOINC", "2601-3", "2018-02-01", 0.2, "mg/dL", None, None),  # 0.082 mmol/L: not
            ("m_u_3", "p1", "LOINC", "2601-3", "2018-02-01", 1.6, "meq/l", None, None),  # 0.8 mmol/L: plausible
            ("m_u_4", "p1", "LOINC", "2601-3", "2018-02-01", 0.8, None, None, None),  # no unit: the code's, plausible
            # LOINC 19123-9 reports mg/dL (plausible 0.24305-12.1525 mg/dL).
            ("m_u_5", "p2", "LOINC", "19123-9", "2018-02-01", 0.2, "mmol/L", None, None),  # 0.49 mg/dL: plausible
            ("m_u_6", "p2", "LOINC", "19123-9", "2018-02-01", 6.0, "MMOL/L", None, None),  # 14.6 mg/dL: not
        ])
    result = run_suite(database, "staging.measurement", run_id="units", build_data_docs=False)
    checks = {r.name: r for r in result.results if r.name.startswith("magnesium_")}
    assert all(r.error is None for r in checks.values())
    found = {name: r.unexpected_count or 0 for name, r in checks.items()}
    assert found == {
        "magnesium_mmol_l_value_plausible": 0,  # m_u_4 (no unit) and the clean row m4
        "magnesium_mmol_l_value_plausible_recorded_in_mg_dl": 1,  # m_u_2; m_u_1 passes
        "magnesium_mmol_l_value_plausible_recorded_in_meq_l": 0,  # m_u_3
        "magnesium_mg_dl_value_plausible": 0,  # the clean row m3
        "magnesium_mg_dl_value_plausible_recorded_in_mmol_l": 1,  # m_u_6; m_u_5 passes
        "magnesium_mg_dl_value_plausible_recorded_in_meq_l": 0,
    }
    assert checks["magnesium_mmol_l_value_plausible_recorded_in_meq_l"].element_count == 1  # "meq/l" is judged


def test_a_single_reversed_observation_period_fails_its_check(tmp_path):
    """OHDSI DQD's default threshold of plausibleStartBeforeEnd is 0% for observation_period (1% for the other
    tables with an end date): one period ending before it starts among 300 (0.3%) fails the check, while one
    reversed visit among 300 stays within its 1%."""
    database = build_example_staging(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(database)) as con:
        # One-day periods of p1 every other day from 1970, before the example's observation.
        con.execute("INSERT INTO staging.observation_period SELECT 'op_day_' || n, 'p1', "
                    "DATE '1970-01-01' + CAST(2 * n AS INTEGER), DATE '1970-01-01' + CAST(2 * n AS INTEGER) "
                    "FROM range(294) AS t(n)")
        insert_rows(con, "observation_period", [("op_reversed", "p2", "1995-02-01", "1995-01-01")])
        con.execute("INSERT INTO staging.visit_occurrence SELECT 'v_day_' || n, 'p1', 'outpatient', "
                    "DATE '2016-01-01' + CAST(n AS INTEGER), DATE '2016-01-01' + CAST(n AS INTEGER) "
                    "FROM range(294) AS t(n)")
        insert_rows(con, "visit_occurrence", [("v_reversed", "p2", "outpatient", "2018-05-12", "2018-05-11")])
        [(periods,)] = con.sql("SELECT count(*) FROM staging.observation_period").fetchall()
        [(visits,)] = con.sql("SELECT count(*) FROM staging.visit_occurrence").fetchall()
    assert periods == visits == 301
    periods_check = run_suite(database, "staging.observation_period", run_id="op", build_data_docs=False).result(
        "observation_period_end_date_not_before_start")
    visits_check = run_suite(database, "staging.visit_occurrence", run_id="v", build_data_docs=False).result(
        "visit_end_date_not_before_start")
    assert (periods_check.unexpected_count, periods_check.threshold, periods_check.passed) == (1, 0, False)
    assert (visits_check.unexpected_count, visits_check.threshold, visits_check.passed) == (1, 1, True)


def test_a_format_check_judges_each_code_once_and_counts_every_row_of_it(tmp_path):
    """The format checks judge each distinct code once and then find its rows (suites.code_formats): every row of a
    malformed code counts, rows without a code count where the check digit's rule calls them malformed (as the
    per-row condition did), and rows of other vocabularies do not; the same count as the rule applied row by row."""
    database = build_example_staging(tmp_path / "warehouse.duckdb")
    planted = [("LOINC", "2823-4")] * 3 + [("LOINC", "2951")] * 2 + [("LOINC", None)] + [("SNOMED", "2823-4")] * 4
    with duckdb.connect(str(database)) as con:
        insert_rows(con, "measurement", [(f"m_planted{i}", "p1", vocabulary, code, "2018-02-01", 3.2, "mmol/L",
                                          None, None) for i, (vocabulary, code) in enumerate(planted)])
        [(row_by_row,)] = con.execute(
            "SELECT count(*) FROM staging.measurement WHERE measurement_vocabulary = 'LOINC' AND NOT "
            + suites.well_formed_code_sql("LOINC", "measurement_code").replace("{{", "{").replace("}}", "}")
        ).fetchall()
    result = run_suite(database, "staging.measurement", run_id="formats", build_data_docs=False)
    loinc = result.result("measurement_code_format_loinc")
    assert loinc.error is None
    assert loinc.unexpected_count == row_by_row == 6  # 3 + 2 rows of two malformed codes, and the row without
    assert len(loinc.example_rows) == 5 and {row["measurement_code"] for row in loinc.example_rows} <= {
        "2823-4", "2951", None}
    assert result.result("measurement_code_format_snomed").unexpected_count == 4  # SNOMED ids have no dash
