"""Table 1 figures computed by hand: counts, percentages, mean (SD), median [IQR], SMDs, and small-cell
suppression as published in results.table1."""

from __future__ import annotations

import math

import pytest

from pipelines.cohorts import build_study
from pipelines.cohorts.table1 import categorical_smd, table1_markdown
from tests.support.hand_cohort import HandExtract, make_study

INDEX = "2016-03-01"


def table(con, study_id: str = "test_study") -> dict[tuple, dict]:
    """results.table1 keyed by (variable, level, statistic, group)."""
    cursor = con.execute('SELECT * FROM results.table1 WHERE study_id = ?', [study_id])
    columns = [d[0] for d in cursor.description]
    rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
    return {(r["variable"], r["level"], r["statistic"], r["group"]): r for r in rows}


def values(t: dict, variable: str, level: str | None, statistic: str) -> tuple[str, str, str]:
    return tuple(t[(variable, level, statistic, g)]["value"] for g in ("overall", "exposed", "unexposed"))


@pytest.fixture
def ten_persons():
    """4 with peripheral arterial disease (ages 60-90, F F M M, 3 diabetic, 1 later cramp) and 6 without (ages
    50 50 60 60 70 70, F F F F M M, 1 diabetic); ages are index year - year of birth."""
    extract = HandExtract()
    exposed = [(60, "F", True), (70, "F", True), (80, "M", True), (90, "M", False)]
    unexposed = [(50, "F", True), (50, "F", False), (60, "F", False), (60, "F", False), (70, "M", False),
                 (70, "M", False)]
    for n, (age, sex, diabetic) in enumerate(exposed + unexposed):
        pid = f"P{n}"
        extract.person(pid, year_of_birth=2016 - age, sex=sex, visits=[INDEX])
        if n < len(exposed):
            extract.event(pid, "peripheral_arterial_disease", "2014-05-05")
        if diabetic:
            extract.event(pid, "diabetes_mellitus", "2013-01-01")
    extract.event("P0", "leg_cramps", "2018-01-01")
    con = extract.connect()
    study = make_study(exposures=["peripheral_arterial_disease"], covariates=["diabetes_mellitus"],
                       table1_by="peripheral_arterial_disease")
    build = build_study(con, study)
    return con, build


def test_counts_and_percentages(ten_persons):
    con, _ = ten_persons
    t = table(con)
    assert values(t, "n", None, "n") == ("10", "4", "6")
    assert values(t, "sex", "F", "n_pct") == ("6 (60.0%)", "2 (50.0%)", "4 (66.7%)")
    assert values(t, "sex", "M", "n_pct") == ("4 (40.0%)", "2 (50.0%)", "2 (33.3%)")
    assert values(t, "sex", None, "missing") == ("0", "0", "0")
    assert values(t, "diabetes_mellitus", "true", "n_pct") == ("4 (40.0%)", "3 (75.0%)", "1 (16.7%)")
    # The outcome is not a characteristic at index: its count is published by the statistics stage, once the
    # cross-table small-cell rule allows it (results.outcome_counts).
    assert not any(key[0] == "outcome_flag" for key in t)
    row = t[("diabetes_mellitus", "true", "n_pct", "unexposed")]
    assert (row["count"], row["denominator"], row["percent"]) == (1, 6, pytest.approx(100 / 6))
    assert row["suppressed"] is False and row["by_variable"] == "peripheral_arterial_disease"
    # The variable that splits the table is not a row of it.
    assert not any(key[0] == "peripheral_arterial_disease" for key in t)


def test_means_sds_medians_and_quartiles(ten_persons):
    con, _ = ten_persons
    t = table(con)
    assert values(t, "age_at_index", None, "mean_sd") == ("66.0 (12.6)", "75.0 (12.9)", "60.0 (8.9)")
    exposed = t[("age_at_index", None, "mean_sd", "exposed")]
    assert exposed["mean"] == 75.0 and exposed["sd"] == pytest.approx(math.sqrt(500 / 3))
    unexposed = t[("age_at_index", None, "mean_sd", "unexposed")]
    assert unexposed["sd"] == pytest.approx(math.sqrt(80))
    assert t[("age_at_index", None, "mean_sd", "overall")]["sd"] == pytest.approx(math.sqrt(1440 / 9))
    # Linear-interpolation quartiles (as numpy and tableone): [60 70 80 90] -> 67.5, 75, 82.5.
    assert values(t, "age_at_index", None, "median_iqr") == (
        "65.0 [60.0, 70.0]", "75.0 [67.5, 82.5]", "60.0 [52.5, 67.5]")
    # Follow-up from 2016-03-02 to 2022-12-31 (2,496 days), except P0 (exposed) whose cramp on 2018-01-01 ends it
    # after 671 days: exposed [671, 2496, 2496, 2496].
    exposed = t[("followup_days", None, "mean_sd", "exposed")]
    assert exposed["mean"] == 2039.75 and exposed["sd"] == pytest.approx(912.5)
    assert t[("followup_days", None, "mean_sd", "overall")]["mean"] == 2313.5
    assert values(t, "followup_days", None, "mean_sd")[2] == "2,496.0 (0.0)"
    assert values(t, "followup_days", None, "median_iqr")[1] == "2,496.0 [2,039.8, 2,496.0]"


def test_standardized_mean_differences(ten_persons):
    con, _ = ten_persons
    t = table(con)

    def smd(variable: str) -> float:
        smds = {row["smd"] for key, row in t.items() if key[0] == variable}
        assert len(smds) == 1, "one SMD per variable, on every row of it"
        return smds.pop()

    assert smd("age_at_index") == pytest.approx(15 / math.sqrt((500 / 3 + 80) / 2))
    assert smd("age_at_index") == pytest.approx(1.35067, abs=1e-5)
    p1, p0 = 0.75, 1 / 6
    assert smd("diabetes_mellitus") == pytest.approx((p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2))
    assert smd("diabetes_mellitus") == pytest.approx(1.44399, abs=1e-5)
    p1, p0 = 0.5, 1 / 3  # men
    assert smd("sex") == pytest.approx((p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2))
    assert smd("followup_days") == pytest.approx(abs(2039.75 - 2496) / math.sqrt((912.5**2 + 0**2) / 2))
    assert smd("n") is None


def test_categorical_smd_reduces_to_the_binary_formula_and_handles_three_levels():
    p1, p0 = 0.3, 0.6
    binary = abs(p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    assert categorical_smd({"F": 7, "M": 3}, {"F": 4, "M": 6}) == pytest.approx(binary)
    # Three levels: Yang & Dalton, checked against a direct computation with the last two levels.
    import numpy as np
    a, b = np.array([0.3, 0.2]), np.array([0.5, 0.1])
    s = ((np.diag(a) - np.outer(a, a)) + (np.diag(b) - np.outer(b, b))) / 2
    expected = math.sqrt((a - b) @ np.linalg.inv(s) @ (a - b))
    assert categorical_smd({"F": 5, "M": 3, "U": 2}, {"F": 4, "M": 5, "U": 1}) == pytest.approx(expected)
    assert categorical_smd({"F": 5}, {"F": 0}) is None


def test_markdown_lays_out_groups_as_columns(ten_persons):
    _, build = ten_persons
    text = table1_markdown(build.table1)
    # tableone's layout: labels, not ids; a yes/no variable is one line; a variable with levels a header line with
    # the SMD and one indented line per level; no missing line where nothing is missing; no footnote when nothing
    # is hidden.
    assert text.splitlines()[0] == "|  | overall | exposed | unexposed | SMD |"
    assert "| Diabetes mellitus, n (%) | 4 (40.0%) | 3 (75.0%) | 1 (16.7%) | 1.444 |" in text
    assert "| Sex, n (%) |  |  |  | 0.343 |" in text
    assert "| &nbsp;&nbsp;F | 6 (60.0%) | 2 (50.0%) | 4 (66.7%) |  |" in text
    assert "| Age at index, years, mean (SD) | 66.0 (12.6) | 75.0 (12.9) | 60.0 (8.9) | 1.351 |" in text
    assert "| Age at index, years, median [Q1, Q3] |" in text and text.count("1.351") == 1  # SMD once
    assert "missing" not in text and "diabetes_mellitus" not in text and "hidden" not in text


def test_new_user_table_is_split_by_treatment():
    extract = HandExtract()
    for n in range(3):
        extract.person(f"T{n}").fill(f"T{n}", "thiazide_diuretics", "2016-03-01", "2016-03-30")
    for n in range(2):
        extract.person(f"C{n}").fill(f"C{n}", "calcium_channel_blockers", "2016-03-01", "2016-03-30")
        extract.event(f"C{n}", "hypothyroidism", "2012-01-01")
    con = extract.connect()
    build_study(con, make_study(index={"rule": "new_user", "target": "thiazide_diuretics",
                                       "comparator": "calcium_channel_blockers"}, covariates=["hypothyroidism"]))
    t = table(con)
    assert tuple(t[("n", None, "n", g)]["value"] for g in ("overall", "target", "comparator")) == ("5", "3", "2")
    assert tuple(t[("hypothyroidism", "true", "n_pct", g)]["value"] for g in ("overall", "target", "comparator")) \
        == ("2 (40.0%)", "0 (0.0%)", "2 (100.0%)")
    assert {row["by_variable"] for row in t.values()} == {"treatment"}
    assert not any(key[0] in ("thiazide_diuretics", "calcium_channel_blockers") for key in t)


def test_overall_only_table_without_table1_by():
    extract = HandExtract().person("a", visits=[INDEX]).person("b", visits=[INDEX])
    con = extract.connect()
    build_study(con, make_study(covariates=["hypothyroidism"]))
    t = table(con)
    assert {key[3] for key in t} == {"overall"} and {row["smd"] for row in t.values()} == {None}


# ---------------------------------------------------------------------------------------------------------------
# Small cells
# ---------------------------------------------------------------------------------------------------------------

def suppressed_population(exposed: int, unexposed: int, diabetic: tuple[int, int], osteoarthritis: tuple[int, int]):
    extract = HandExtract()
    for group, size in (("E", exposed), ("U", unexposed)):
        for n in range(size):
            pid = f"{group}{n}"
            extract.person(pid, visits=[INDEX])
            if group == "E":
                extract.event(pid, "peripheral_arterial_disease", "2014-01-01")
            if n < diabetic[group == "U"]:
                extract.event(pid, "diabetes_mellitus", "2014-01-01")
            if n < osteoarthritis[group == "U"]:
                extract.event(pid, "osteoarthritis", "2014-01-01")
    con = extract.connect()
    study = make_study(exposures=["peripheral_arterial_disease"], covariates=["diabetes_mellitus", "osteoarthritis"],
                       table1_by="peripheral_arterial_disease", small_cell_threshold=11)
    return con, build_study(con, study)


def test_small_cells_are_hidden_never_zero_and_recoverable_cells_too():
    # 12 exposed, 20 unexposed. Diabetes: 3 exposed (small) and 15 unexposed; the overall 18 is shown, so the
    # unexposed 15 would give the 3 away (18 - 15): it is hidden as well.
    con, _ = suppressed_population(exposed=12, unexposed=20, diabetic=(3, 15), osteoarthritis=(0, 20))
    t = table(con)
    assert values(t, "diabetes_mellitus", "true", "n_pct") == ("18 (56.2%)", "<11", "suppressed")
    exposed = t[("diabetes_mellitus", "true", "n_pct", "exposed")]
    assert (exposed["count"], exposed["percent"], exposed["suppressed"], exposed["suppression"]) == (
        None, None, True, "small_cell")
    assert t[("diabetes_mellitus", "true", "n_pct", "unexposed")]["suppression"] == "complementary"
    assert {t[("diabetes_mellitus", None, "missing", g)]["value"] for g in ("overall", "exposed")} == {"0"}
    # The 5 unexposed without diabetes would be at most 20 - 11 (the hidden 15 is "at least 11"): diabetes is
    # withheld whole among the unexposed, its missing 0 hidden too (protect_table1)
    assert t[("diabetes_mellitus", None, "missing", "unexposed")]["value"] == "suppressed"
    # The SMD would let a reader solve for the hidden count.
    assert t[("diabetes_mellitus", "true", "n_pct", "overall")]["smd"] is None
    # Zero is shown as zero; everyone (20 of 20) is not a small cell.
    assert values(t, "osteoarthritis", "true", "n_pct") == ("20 (62.5%)", "0 (0.0%)", "20 (100.0%)")


def test_a_small_unprinted_complement_hides_the_printed_count():
    # 16 of 20 unexposed have osteoarthritis: the 4 without it follow from 20 - 16, so 16 is hidden; then the
    # overall 16 would give it away (16 - 0)... unless one more cell is hidden.
    con, _ = suppressed_population(exposed=12, unexposed=20, diabetic=(0, 0), osteoarthritis=(0, 16))
    t = table(con)
    overall, exposed, unexposed = values(t, "osteoarthritis", "true", "n_pct")
    assert unexposed == "suppressed"
    assert overall == "suppressed"  # overall 16 = exposed 0 + unexposed 16: a zero protects nothing
    assert exposed == "0 (0.0%)"


def test_a_small_group_hides_both_group_columns():
    con, build = suppressed_population(exposed=5, unexposed=20, diabetic=(2, 11), osteoarthritis=(0, 0))
    t = table(con)
    assert values(t, "n", None, "n") == ("25", "<11", "suppressed")
    assert values(t, "age_at_index", None, "mean_sd")[1:] == ("suppressed", "suppressed")
    assert values(t, "diabetes_mellitus", "true", "n_pct") == ("13 (52.0%)", "<11", "suppressed")
    assert {row["smd"] for row in t.values()} == {None}
    text = table1_markdown(build.table1, threshold=11)
    # A small cell prints "<11", the cell hidden with it the footnote mark, and the footnote says how it was chosen.
    assert "| n | 25 | <11 | hidden\u2020 |" in text
    assert "| Diabetes mellitus, n (%) | 13 (52.0%) | <11 | hidden\u2020 |  |" in text
    assert "<11: a count of 1 to 10 persons" in text and "the smallest other non-zero count was hidden" in text


def test_overall_count_is_hidden_when_its_complement_is_small():
    # 17 of 25 diabetic: the 8 without diabetes follow from 25 - 17.
    con, _ = suppressed_population(exposed=5, unexposed=20, diabetic=(2, 15), osteoarthritis=(0, 0))
    assert values(table(con), "diabetes_mellitus", "true", "n_pct")[0] == "suppressed"


def test_attrition_counts_below_the_threshold_are_suppressed():
    extract = HandExtract()
    for n in range(40):
        extract.person(f"P{n}", visits=[INDEX])
    for n in range(3):
        extract.person(f"child{n}", year_of_birth=2010, visits=[INDEX])
    for n in range(20):
        extract.person(f"dead{n}", visits=[INDEX], death="2015-01-01")
    con = extract.connect()
    build_study(con, make_study(small_cell_threshold=11))
    rows = con.execute("SELECT step_code, persons_before_text, persons_removed_text, persons_after_text, "
                       "persons_removed, suppressed FROM results.attrition ORDER BY step_order").fetchall()
    by_step = {row[0]: row[1:] for row in rows}
    assert by_step["in_extract"] == ("63", "0", "63", 0, False)
    # 3 children removed (<11): the count after them (60) is hidden, and so is the next removal (20), so that
    # only 63 - 40 = 23 persons removed by the two steps together can be worked out.
    assert by_step["age_out_of_range"] == ("63", "<11", "suppressed", None, True)
    assert by_step["died_before_index"] == ("suppressed", "suppressed", "40", None, True)
    assert by_step["outcome_before_time_at_risk"] == ("40", "0", "40", 0, False)
