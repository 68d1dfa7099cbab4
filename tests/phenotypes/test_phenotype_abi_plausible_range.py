"""The ABI's plausible range is one fact of the phenotype library: above 0 (0 < ABI < 0.20 is critical ischaemia,
kept and flagged) up to 2.5. The staging data-quality check reads it from the library, and GX applies it."""

import os

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import duckdb  # noqa: E402

from pipelines.phenotypes import phenotype_library  # noqa: E402
from pipelines.quality import suites  # noqa: E402
from tests.support.quality_staging import build_example_staging, insert_rows  # noqa: E402
from pipelines.quality.runner import run_suite  # noqa: E402

ABI = ("SNOMED", "446841001")


def test_the_library_states_one_range_for_the_abi_code():
    assert phenotype_library().plausible_range(*ABI) == (0, 2.5, False)
    [check] = [r for r in suites.PLAUSIBLE_MEASUREMENT_RANGES if (r.vocabulary, r.code) == ABI]
    assert (check.low, check.high, check.low_inclusive) == (0, 2.5, False)


def test_the_staging_check_keeps_critical_ischaemia_and_flags_zero_and_above_2_5(tmp_path):
    database = build_example_staging(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(str(database))
    insert_rows(con, "measurement", [
        ("m_abi_1", "p2", "SNOMED", "446841001", "2019-05-10", 0.15, "ratio", "L", None),  # critical, real
        ("m_abi_2", "p2", "SNOMED", "446841001", "2019-05-10", 0.95, "ratio", "R", None),
        ("m_abi_3", "p3", "SNOMED", "446841001", "2019-05-10", 0.0, "ratio", "L", None),  # not measurable
        ("m_abi_4", "p3", "SNOMED", "446841001", "2019-05-10", 2.6, "ratio", "R", None),  # not measurable
    ])
    con.close()
    result = run_suite(database, "staging.measurement", run_id="abi", build_data_docs=False)
    check = result.result("ankle_brachial_index_value_plausible")
    assert check.error is None
    assert check.unexpected_count == 2
