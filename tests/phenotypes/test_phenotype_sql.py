"""The compiled SQL on small hand-built staging tables, with persons whose expected phenotypes can be checked by
hand (boundary values, per-leg ABI, visit rules, exclusions, composites); and the one-pass-per-table property."""

from __future__ import annotations

import itertools
import re
from datetime import date

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from pipelines.extract_spec import TABLES
from pipelines.phenotypes import compile_phenotypes, phenotype_library, run_phenotypes
from tests.support.phenotype_staging import create_staging_tables, insert_rows

_ids = itertools.count(1)


def condition(person, code, day, vocabulary="ICD10CM", visit=None):
    return {"condition_occurrence_id": f"c{next(_ids)}", "person_id": person, "condition_vocabulary": vocabulary,
            "condition_code": code, "condition_start_date": day, "visit_occurrence_id": visit}


def visit(visit_id, person, visit_type, day):
    return {"visit_occurrence_id": visit_id, "person_id": person, "visit_type": visit_type,
            "visit_start_date": day}


def drug(person, code, day, vocabulary, end=None):
    return {"drug_exposure_id": f"d{next(_ids)}", "person_id": person, "drug_vocabulary": vocabulary,
            "drug_code": code, "drug_exposure_start_date": day, "drug_exposure_end_date": end or day}


def lab(person, code, value, unit, day="2020-01-01", vocabulary="LOINC"):
    return {"measurement_id": f"m{next(_ids)}", "person_id": person, "measurement_vocabulary": vocabulary,
            "measurement_code": code, "measurement_date": day, "value_as_number": value, "unit": unit}


def abi(person, value, side, day="2020-01-01", unit="ratio"):
    row = lab(person, "446841001", value, unit, day, vocabulary="SNOMED")
    row["laterality"] = side
    return row


VISITS = [
    visit("v_dm_in", "dm_inpatient", "inpatient", "2020-01-01"),
    visit("v_dm29_a", "dm_outpatient_29_days", "outpatient", "2020-01-01"),
    visit("v_dm29_b", "dm_outpatient_29_days", "outpatient", "2020-01-30"),
    visit("v_dm30_a", "dm_outpatient_30_days", "outpatient", "2020-01-01"),
    visit("v_dm30_b", "dm_outpatient_30_days", "outpatient", "2020-01-31"),
    visit("v_dm_er", "dm_emergency_and_outpatient", "emergency", "2020-01-01"),
    visit("v_dm_op", "dm_emergency_and_outpatient", "outpatient", "2020-03-01"),
    visit("v_dm_one", "dm_one_outpatient", "outpatient", "2020-01-01"),
    visit("v_dm_in29_a", "dm_in_and_out", "outpatient", "2020-01-10"),
    visit("v_dm_in29_b", "dm_in_and_out", "inpatient", "2020-01-20"),
    visit("v_pad_in", "pad_inpatient", "inpatient", "2021-06-01"),
    visit("v_aorta", "aorta_only", "inpatient", "2021-06-01"),
]

CONDITIONS = [
    # Leg cramps. Staging codes are already normalised by the ingest: "R252" in the extract is "R25.2" here.
    condition("cramp_r25_2", "R25.2", "2020-02-01"),
    condition("cramp_r25_2", "R25.2", "2020-01-15"),
    condition("cramp_calf", "M62.831", "2020-02-01"),
    condition("cramp_sleep", "G47.62", "2020-02-01"),
    condition("cramp_snomed", "449918009", "2020-02-01", vocabulary="SNOMED"),
    condition("back_spasm", "M62.830", "2020-02-01"),
    condition("other_spasm", "M62.838", "2020-02-01"),
    condition("carpopedal", "R29.0", "2020-02-01"),
    condition("not_normalised", "R252", "2020-02-01"),  # never in staging; documents that matching needs the dot
    condition("heat", "T67.2XXA", "2020-07-01"),
    condition("heat_stroke", "T67.01XA", "2020-07-01"),
    # Diabetes: one inpatient, or two outside inpatient at least 30 days apart.
    condition("dm_inpatient", "E11.9", "2020-01-01", visit="v_dm_in"),
    condition("dm_outpatient_29_days", "E11.9", "2020-01-01", visit="v_dm29_a"),
    condition("dm_outpatient_29_days", "E11.9", "2020-01-30", visit="v_dm29_b"),
    condition("dm_outpatient_30_days", "E11.9", "2020-01-01", visit="v_dm30_a"),
    condition("dm_outpatient_30_days", "E10.9", "2020-01-31", visit="v_dm30_b"),
    condition("dm_emergency_and_outpatient", "E13.9", "2020-01-01", visit="v_dm_er"),
    condition("dm_emergency_and_outpatient", "E11.65", "2020-03-01", visit="v_dm_op"),
    condition("dm_one_outpatient", "E11.9", "2020-01-01", visit="v_dm_one"),
    condition("dm_no_visit", "E11.9", "2020-01-01"),
    condition("dm_no_visit", "44054006", "2020-02-15", vocabulary="SNOMED"),
    condition("dm_unknown_visit", "E11.9", "2020-01-01", visit="v_not_in_extract"),
    condition("dm_in_and_out", "E11.9", "2020-01-10", visit="v_dm_in29_a"),
    condition("dm_in_and_out", "E11.9", "2020-01-20", visit="v_dm_in29_b"),
    condition("dm_type_e08", "E08.9", "2020-01-01"),
    condition("dm_type_e08", "E08.9", "2020-06-01"),
    # Peripheral arterial disease and claudication.
    condition("pad_inpatient", "I70.213", "2021-06-01", visit="v_pad_in"),
    condition("aorta_only", "I70.0", "2021-06-01", visit="v_aorta"),
    condition("pvd_outpatient_twice", "I73.9", "2021-01-01"),
    condition("pvd_outpatient_twice", "I73.9", "2021-03-01"),
    condition("claudication_borderline_abi", "I70.211", "2020-02-01"),
    condition("claudication_low_abi", "I70.212", "2020-02-01"),
    condition("claudication_abi_1_31", "I70.219", "2020-02-01"),
    condition("claudication_abi_1_30", "63491006", "2020-02-01", vocabulary="SNOMED"),
    condition("claudication_no_abi", "I70.218", "2020-02-01"),
    # Prefix and exclusion boundaries.
    condition("ibm", "G72.41", "2020-01-01"),
    condition("statin_myopathy", "G72.0", "2020-01-01"),
    condition("mcardle", "E74.04", "2020-01-01"),
    condition("parkinson_legacy", "G20", "2019-01-01"),
    condition("parkinson_fy2024", "G20.A1", "2024-01-01"),
    condition("compartment_traumatic", "T79.A21A", "2020-01-01"),
    condition("compartment_nontraumatic", "M79.A22", "2020-01-01"),
    condition("alcoholic_neuropathy", "G62.1", "2020-01-01"),
    # Malaria and babesiosis (the quinine exclusion: fills within 30 days before or after do not count).
    condition("quinine_malaria", "B50.9", "2018-03-01"),  # 2 years before the fill
    condition("quinine_babesiosis", "B60.01", "2022-01-01"),  # nearly 2 years after the fill
    condition("quinine_for_malaria", "B54", "2020-03-10"),
    condition("quinine_only_for_malaria", "B50.9", "2020-06-01"),
]

DRUGS = [
    drug("quinine_twice", "9071", "2020-05-01", "RxNorm"),
    drug("quinine_twice", "P01BC01", "2020-03-01", "ATC"),
    drug("quinine_malaria", "P01BC01", "2020-03-01", "ATC"),
    drug("quinine_babesiosis", "9071", "2020-03-01", "RxNorm"),
    drug("quinine_for_malaria", "9071", "2020-03-01", "RxNorm"),  # 9 days before the diagnosis
    drug("quinine_for_malaria", "9071", "2020-04-09", "RxNorm"),  # 30 days after: the window's last day
    drug("quinine_for_malaria", "9071", "2020-04-10", "RxNorm"),  # 31 days after: a cramp start
    drug("quinine_only_for_malaria", "P01BC01", "2020-06-01", "ATC"),
    drug("hctz_atc", "C03AA03", "2020-01-01", "ATC", end="2020-03-30"),
    drug("hctz_rxnorm", "5487", "2020-01-01", "RxNorm"),
    drug("hctz_amiloride", "C03EA01", "2020-01-01", "ATC"),
    drug("chlortalidone", "2409", "2020-01-01", "RxNorm"),
    drug("laba_ics", "R03AK06", "2020-01-01", "ATC"),
    drug("saba", "R03AC02", "2020-01-01", "ATC"),
    drug("ezetimibe", "C10AX09", "2020-01-01", "ATC"),
    drug("other_c10ax", "C10AX06", "2020-01-01", "ATC"),
]

MEASUREMENTS = [
    # Sodium: < 135 mmol/L (mEq/L identical), plausible 100-200.
    lab("na_134_9", "2951-2", 134.9, "mmol/L", "2020-04-01"),
    lab("na_135_0", "2951-2", 135.0, "mmol/L"),
    lab("na_meq_upper_case", "2951-2", 130, "MEQ/L"),
    lab("na_blood_no_unit", "2947-0", 130, None),
    lab("na_unlisted_unit", "2951-2", 130, "mg/dL"),
    lab("na_implausible", "2951-2", 99.9, "mmol/L"),
    lab("na_plausible_edge", "2951-2", 100, " mmol / l "),
    lab("na_no_value", "2951-2", None, "mmol/L"),
    # Potassium: < 3.5 mmol/L.
    lab("k_3_49", "2823-3", 3.49, "mmol/L"),
    lab("k_3_50", "6298-4", 3.5, "mEq/L"),
    # Magnesium: < 1.70 mg/dL (= 0.70 mmol/L = 1.4 mEq/L at reported precision).
    lab("mg_1_70_mg_dl", "19123-9", 1.70, "mg/dL"),
    lab("mg_1_69_mg_dl", "19123-9", 1.69, "mg/dL"),
    lab("mg_0_70_mmol", "2601-3", 0.70, "mmol/L"),
    lab("mg_0_69_mmol", "2601-3", 0.69, "mmol/L"),
    lab("mg_1_4_meq", "19123-9", 1.4, "mEq/L"),
    lab("mg_1_38_meq", "19123-9", 1.38, "meq/l"),
    lab("mg_mmol_no_unit", "2601-3", 0.65, None),
    lab("mg_implausible", "2601-3", 0.05, "mmol/L"),
    # ABI: per leg; the lowest value over both legs and all dates decides.
    abi("abi_0_90", 0.90, "L", "2020-03-01"), abi("abi_0_90", 1.10, "R", "2020-03-01"),
    abi("abi_0_91", 0.91, "L"), abi("abi_0_91", 1.05, "R"),
    abi("abi_1_40", 1.40, "L"), abi("abi_1_40", 1.20, "R"),
    abi("abi_1_41", 1.41, "L"), abi("abi_1_41", 1.20, "R"),
    abi("abi_worse_later", 1.10, "L", "2020-01-01"), abi("abi_worse_later", 1.05, "R", "2020-01-01"),
    abi("abi_worse_later", 1.00, "L", "2021-01-01"), abi("abi_worse_later", 0.85, "R", "2021-01-01"),
    abi("abi_low_and_calcified", 0.80, "L", "2020-05-01"), abi("abi_low_and_calcified", 1.50, "R", "2020-05-01"),
    abi("abi_implausible_ignored", 2.60, "L"), abi("abi_implausible_ignored", 1.10, "R"),
    abi("abi_zero_ignored", 0.00, "L"), abi("abi_zero_ignored", 1.10, "R"),
    # Critical ischaemia: kept, low (not borderline by the other leg) and flagged.
    abi("abi_0_15_critical", 0.15, "L", "2020-02-01"), abi("abi_0_15_critical", 0.95, "R", "2020-02-01"),
    abi("abi_0_20_not_critical", 0.20, "L"), abi("abi_0_20_not_critical", 1.00, "R"),
    abi("abi_no_side_no_unit", 0.95, None, unit=None),
    abi("claudication_borderline_abi", 0.95, "L", "2020-03-01"),
    abi("claudication_borderline_abi", 1.02, "R", "2020-03-01"),
    abi("claudication_low_abi", 0.85, "R", "2020-03-01"),
    abi("claudication_abi_1_31", 1.31, "L", "2020-03-01"),
    abi("claudication_abi_1_30", 1.30, "L", "2020-01-01"),
]


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    create_staging_tables(connection)
    persons = sorted({row["person_id"] for row in VISITS + CONDITIONS + DRUGS + MEASUREMENTS})
    insert_rows(connection, "person", [{"person_id": p, "year_of_birth": 1950, "sex": "F"} for p in persons])
    insert_rows(connection, "visit_occurrence", VISITS)
    insert_rows(connection, "condition_occurrence", CONDITIONS)
    insert_rows(connection, "drug_exposure", DRUGS)
    insert_rows(connection, "measurement", MEASUREMENTS)
    run_phenotypes(connection)
    yield connection
    connection.close()


def persons(con, phenotype_id: str) -> set[str]:
    rows = con.execute("SELECT person_id FROM phenotype.person_summary WHERE phenotype_id = ?",
                       [phenotype_id]).fetchall()
    return {row[0] for row in rows}


def summary(con, phenotype_id: str, person_id: str) -> tuple:
    return con.execute("SELECT first_date, last_date, event_count FROM phenotype.person_summary "
                       "WHERE phenotype_id = ? AND person_id = ?", [phenotype_id, person_id]).fetchone()


def test_leg_cramps(con):
    assert persons(con, "leg_cramps") == {"cramp_r25_2", "cramp_calf", "cramp_sleep", "cramp_snomed"}
    assert summary(con, "leg_cramps", "cramp_r25_2") == (date(2020, 1, 15), date(2020, 2, 1), 2)


def test_heat(con):
    assert persons(con, "heat_cramps") == {"heat"}
    assert persons(con, "heat_exposure") == {"heat", "heat_stroke"}


def test_diabetes_one_inpatient_or_two_outpatient_30_days_apart(con):
    assert persons(con, "diabetes_mellitus") == {
        "dm_inpatient", "dm_outpatient_30_days", "dm_emergency_and_outpatient", "dm_no_visit", "dm_in_and_out"}
    # Records of persons who do not meet the rule stay in events.
    events = con.execute("SELECT count(*) FROM phenotype.events WHERE phenotype_id = 'diabetes_mellitus' "
                         "AND person_id IN ('dm_outpatient_29_days', 'dm_one_outpatient')").fetchone()[0]
    assert events == 3
    # Dated at the confirming record (the one that makes the rule true), not at the first record.
    assert summary(con, "diabetes_mellitus", "dm_outpatient_30_days") == (date(2020, 1, 31), date(2020, 1, 31), 2)
    first_dates = dict(con.execute("SELECT person_id, first_date FROM phenotype.person_summary "
                                   "WHERE phenotype_id = 'diabetes_mellitus'").fetchall())
    assert first_dates == {
        "dm_inpatient": date(2020, 1, 1),
        "dm_outpatient_30_days": date(2020, 1, 31),
        "dm_emergency_and_outpatient": date(2020, 3, 1),
        "dm_no_visit": date(2020, 2, 15),
        "dm_in_and_out": date(2020, 1, 20),  # outpatient 01-10 alone is not enough; the inpatient record confirms
    }
    assert persons(con, "peripheral_arterial_disease") == {"pad_inpatient", "pvd_outpatient_twice"}
    assert summary(con, "peripheral_arterial_disease", "pvd_outpatient_twice")[0] == date(2021, 3, 1)


def test_peripheral_arterial_disease_and_claudication(con):
    assert persons(con, "peripheral_arterial_disease") == {"pad_inpatient", "pvd_outpatient_twice"}
    assert persons(con, "intermittent_claudication") == {
        "pad_inpatient", "claudication_borderline_abi", "claudication_low_abi", "claudication_abi_1_31",
        "claudication_abi_1_30", "claudication_no_abi"}


def test_prefixes_and_excluded_codes(con):
    assert persons(con, "metabolic_myopathy") == {"statin_myopathy", "mcardle"}
    assert persons(con, "inflammatory_myopathy") == {"ibm"}
    assert persons(con, "parkinsons_disease") == {"parkinson_legacy", "parkinson_fy2024"}
    assert persons(con, "chronic_compartment_syndrome") == {"compartment_nontraumatic"}
    assert persons(con, "alcohol_use") == {"alcoholic_neuropathy"}
    assert "alcoholic_neuropathy" in persons(con, "peripheral_neuropathy")


def test_quinine_first_fill_and_malaria_exclusion(con):
    # The rule of phenotypes/outcome/quinine_start.yaml (version 2): a fill with malaria or babesiosis recorded within
    # 30 days before or after it treats the infection; an infection years away does not remove a cramp start.
    assert persons(con, "quinine_start") == {"quinine_twice", "quinine_malaria", "quinine_babesiosis",
                                             "quinine_for_malaria"}
    assert summary(con, "quinine_start", "quinine_twice") == (date(2020, 3, 1), date(2020, 5, 1), 2)
    assert summary(con, "quinine_start", "quinine_malaria") == (date(2020, 3, 1), date(2020, 3, 1), 1)
    assert summary(con, "quinine_start", "quinine_babesiosis") == (date(2020, 3, 1), date(2020, 3, 1), 1)
    # The fills 9 days before and 30 days after the diagnosis are left out; the start is the fill 31 days after.
    assert summary(con, "quinine_start", "quinine_for_malaria") == (date(2020, 4, 10), date(2020, 4, 10), 1)
    assert persons(con, "malaria_or_babesiosis") == {"quinine_malaria", "quinine_babesiosis", "quinine_for_malaria",
                                                     "quinine_only_for_malaria"}
    # The left-out fills are not events of the phenotype (the rule is judged on the records left).
    left = con.execute("SELECT person_id, event_date FROM phenotype.events WHERE phenotype_id = 'quinine_start' "
                       "AND person_id IN ('quinine_for_malaria', 'quinine_only_for_malaria')").fetchall()
    assert left == [("quinine_for_malaria", date(2020, 4, 10))]


def test_drug_classes(con):
    # A combination counts for each of its ingredients' classes: HCTZ + amiloride (C03EA01) is hydrochlorothiazide,
    # a thiazide and a potassium-sparing diuretic.
    assert persons(con, "hydrochlorothiazide") == {"hctz_atc", "hctz_rxnorm", "hctz_amiloride"}
    assert persons(con, "thiazide_diuretics") == {"hctz_atc", "hctz_rxnorm", "hctz_amiloride"}
    assert persons(con, "potassium_sparing_diuretics") == {"hctz_amiloride"}
    assert persons(con, "thiazide_like_diuretics") == {"chlortalidone"}
    assert persons(con, "long_acting_beta2_agonists") == {"laba_ics"}
    assert persons(con, "short_acting_beta2_agonists") == {"saba"}
    assert persons(con, "other_lipid_lowering") == {"ezetimibe"}


def test_sodium(con):
    assert persons(con, "hyponatremia_lab") == {"na_134_9", "na_meq_upper_case", "na_blood_no_unit",
                                                "na_plausible_edge"}
    value, unit, first_date = con.execute(
        "SELECT e.value, e.unit, s.first_date FROM phenotype.events e JOIN phenotype.person_summary s "
        "USING (person_id, phenotype_id) WHERE e.phenotype_id = 'hyponatremia_lab' AND person_id = 'na_134_9'"
    ).fetchone()
    assert (value, unit, first_date) == (134.9, "mmol/L", date(2020, 4, 1))


def test_potassium(con):
    assert persons(con, "hypokalemia_lab") == {"k_3_49"}


def test_magnesium_boundaries_in_both_units(con):
    assert persons(con, "hypomagnesemia_lab") == {"mg_1_69_mg_dl", "mg_0_69_mmol", "mg_1_38_meq",
                                                  "mg_mmol_no_unit"}
    values = dict(con.execute("SELECT person_id, value FROM phenotype.events "
                              "WHERE phenotype_id = 'hypomagnesemia_lab'").fetchall())
    assert values["mg_0_69_mmol"] == pytest.approx(0.69 * 2.4305)


def test_abi_categories(con):
    assert persons(con, "abi_low") == {"abi_0_90", "abi_worse_later", "abi_low_and_calcified",
                                       "claudication_low_abi", "abi_0_15_critical", "abi_0_20_not_critical"}
    assert persons(con, "abi_borderline") == {"abi_0_91", "abi_no_side_no_unit", "claudication_borderline_abi"}
    # abi_worse_later was normal in 2020 (1.10/1.05), before its 0.85 of 2021: both, each on its own days.
    assert persons(con, "abi_normal") == {"abi_1_40", "abi_implausible_ignored", "claudication_abi_1_31",
                                          "claudication_abi_1_30", "abi_worse_later", "abi_zero_ignored"}
    assert persons(con, "abi_noncompressible") == {"abi_1_41", "abi_low_and_calcified"}


def test_abi_below_0_20_is_critical_ischaemia_not_implausible(con):
    assert persons(con, "abi_critical_ischaemia") == {"abi_0_15_critical"}
    assert summary(con, "abi_low", "abi_0_15_critical") == (date(2020, 2, 1), date(2020, 2, 1), 1)
    assert con.execute("SELECT value FROM phenotype.events WHERE phenotype_id = 'abi_critical_ischaemia'"
                       ).fetchall() == [(0.15,)]
    assert "abi_0_15_critical" not in persons(con, "abi_borderline")
    # 0 and below stay implausible: the 1.10 of the other leg alone decides.
    assert "abi_zero_ignored" not in persons(con, "abi_low")


def test_abi_is_judged_on_the_values_up_to_each_day(con):
    # 1.10/1.05 in 2020, then 1.00/0.85 in 2021: normal from 2020 until the 0.85 of the right leg, low from then.
    assert summary(con, "abi_low", "abi_worse_later") == (date(2021, 1, 1), date(2021, 1, 1), 1)
    periods = dict(con.execute("SELECT phenotype_id, (first_date, end_date) FROM phenotype.person_summary "
                               "WHERE person_id = 'abi_worse_later'").fetchall())
    assert periods == {"abi_normal": (date(2020, 1, 1), date(2021, 1, 1)),
                       "abi_lowest_0_91_to_1_30": (date(2020, 1, 1), date(2021, 1, 1)),
                       "abi_low": (date(2021, 1, 1), None)}
    lowest = con.execute("SELECT value, laterality FROM phenotype.events WHERE phenotype_id = 'abi_low' "
                         "AND person_id = 'abi_worse_later'").fetchone()
    assert lowest == (0.85, "R")


def test_claudication_with_borderline_or_normal_abi(con):
    # Lowest value in (0.90, 1.30], whatever the other leg: 1.41 next to 1.20 counts, 1.31 does not.
    assert persons(con, "abi_lowest_0_91_to_1_30") == {
        "abi_0_91", "abi_1_40", "abi_1_41", "abi_implausible_ignored", "abi_no_side_no_unit",
        "claudication_borderline_abi", "claudication_abi_1_30", "abi_worse_later", "abi_zero_ignored"}
    assert persons(con, "claudication_with_borderline_or_normal_abi") == {
        "claudication_borderline_abi", "claudication_abi_1_30"}
    # The later of the parts' first dates: claudication 2020-02-01, ABI 2020-03-01.
    first_date, _, event_count = summary(con, "claudication_with_borderline_or_normal_abi",
                                         "claudication_borderline_abi")
    assert first_date == date(2020, 3, 1)
    # Claudication before ABI or after: the composite needs both, whenever.
    assert summary(con, "claudication_with_borderline_or_normal_abi", "claudication_abi_1_30")[0] == date(2020, 2, 1)
    composite_events = con.execute(
        "SELECT count(*) FROM phenotype.events WHERE phenotype_id = 'claudication_with_borderline_or_normal_abi' "
        "AND person_id = 'claudication_borderline_abi'").fetchone()[0]
    assert composite_events == event_count == 3  # one claudication record and two ABI values in range


def test_event_count_matches_events_for_every_summary_row(con):
    mismatches = con.execute("""
        SELECT s.phenotype_id, s.person_id, s.event_count, count(e.person_id)
        FROM phenotype.person_summary s
        LEFT JOIN phenotype.events e USING (phenotype_id, person_id)
        GROUP BY ALL
        HAVING s.event_count <> count(e.person_id)
    """).fetchall()
    assert mismatches == []


def test_drug_events_carry_the_last_day_of_supply_and_other_events_none(con):
    ends = con.execute("SELECT source_table, event_end_date FROM phenotype.events "
                       "WHERE person_id IN ('hctz_atc', 'cramp_r25_2') AND phenotype_id IN "
                       "('thiazide_diuretics', 'leg_cramps') GROUP BY ALL ORDER BY 1").fetchall()
    assert ends == [("condition_occurrence", None), ("drug_exposure", date(2020, 3, 30))]


def test_output_tables_have_the_documented_columns(con):
    def columns(table):
        return [row[0] for row in con.execute(f"DESCRIBE phenotype.{table}").fetchall()]

    assert columns("definitions") == ["phenotype_id", "name", "domain", "version", "source_file", "sha256", "variant_of"]
    assert columns("code_list") == ["phenotype_id", "vocabulary", "code", "match_type", "excluded"]
    assert columns("events") == ["person_id", "phenotype_id", "event_date", "value", "unit", "laterality",
                                 "source_table", "vocabulary", "code", "event_end_date"]
    assert columns("person_summary") == ["person_id", "phenotype_id", "first_date", "end_date", "last_date",
                                         "event_count", "version"]
    definitions = con.execute("SELECT count(*), count(DISTINCT sha256) FROM phenotype.definitions").fetchone()
    assert definitions == (len(phenotype_library()), len(phenotype_library()))


def test_no_work_tables_are_left_behind(con):
    temp_tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    assert temp_tables == []
    temp_views = con.execute("SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()
    assert temp_views == []


def test_running_twice_gives_the_same_result(con):
    before = con.execute("SELECT * FROM phenotype.person_summary ORDER BY ALL").fetchall()
    run_phenotypes(con)
    assert con.execute("SELECT * FROM phenotype.person_summary ORDER BY ALL").fetchall() == before


def test_on_empty_staging_tables_every_phenotype_is_empty():
    connection = duckdb.connect()
    create_staging_tables(connection)
    counts = run_phenotypes(connection)
    assert len(counts) == len(phenotype_library())
    assert all(c.event_rows == 0 and c.person_count == 0 for c in counts.values())


# ---------------------------------------------------------------------------------------------------------------
# The shape of the compiled SQL
# ---------------------------------------------------------------------------------------------------------------

def staging_tables_read(sql: str) -> list[set[str]]:
    """For each statement of ``sql``: the staging tables it reads."""
    return [{table.name for table in statement.find_all(exp.Table) if table.db == "staging"}
            for statement in sqlglot.parse(sql, read="duckdb") if statement is not None]


def test_each_staging_table_is_read_by_the_code_matching_step_and_one_record_statement():
    # code_to_phenotype.sql reads the distinct codes of the condition, drug and measurement tables (the only code
    # matching); one statement per table then reads its records. Visits are read with the conditions only.
    compiled = compile_phenotypes(phenotype_library())
    statements_reading: dict[str, int] = {table.name: 0 for table in TABLES}
    for step in compiled.steps:
        executions = len(step.rows) if step.rows is not None else 1
        for tables in staging_tables_read(step.sql):
            for table in tables:
                statements_reading[table] += executions
    assert statements_reading == {
        "person": 0, "observation_period": 0, "visit_occurrence": 1, "condition_occurrence": 2,
        "drug_exposure": 2, "measurement": 2, "procedure_occurrence": 0, "death": 0,
    }


def test_the_statements_do_not_depend_on_the_number_of_phenotypes():
    library = phenotype_library()
    compiled = compile_phenotypes(library)
    sql_steps = [step.file for step in compiled.steps if step.rows is None]
    # Fourteen fixed steps (record_spans.sql and measurement_values.sql, the rules for records that end before they
    # start and for measurement values, among them), plus two per composite depth; nothing per phenotype.
    composite_depths = {p.depth for p in library if p.definition.domain == "composite"}
    assert len(sql_steps) == 14 + 2 * len(composite_depths)


def test_no_step_deletes_rows():
    # DuckDB 2.0.1's COMMIT re-appends a table row by row when the transaction deleted any of the rows it wrote
    # (the stage's commit at 1,000,000 patients: 64-119 s with a DELETE, 0.3 s without): the stage only adds rows.
    deleting = [step.file for step in compile_phenotypes(phenotype_library()).steps
                for statement in sqlglot.parse(step.sql, read="duckdb")
                if statement is not None and statement.find(exp.Delete) is not None]
    assert deleting == []


def test_no_code_is_written_into_sql():
    library = phenotype_library()
    compiled = compile_phenotypes(library)
    sql_text = "\n".join(step.sql for step in compiled.steps)
    codes = {code for p in library for g in p.definition.codes + p.definition.exclude_codes for code in g.codes}
    written = {code for code in codes if re.search(rf"(?<![\w.]){re.escape(code)}(?![\w.])", sql_text)}
    assert written == set()


def test_a_failed_run_leaves_the_previous_results_in_place():
    connection = duckdb.connect()
    create_staging_tables(connection)
    insert_rows(connection, "condition_occurrence", [condition("kept", "R25.2", "2020-01-01")])
    run_phenotypes(connection)
    connection.execute("DROP TABLE staging.measurement")  # the next run fails half-way
    with pytest.raises(duckdb.CatalogException):
        run_phenotypes(connection)
    assert persons(connection, "leg_cramps") == {"kept"}


def test_codes_are_matched_in_one_sql_file_that_every_record_statement_joins():
    compiled = compile_phenotypes(phenotype_library())
    files = {step.file: step.sql for step in compiled.steps}
    matching = {file for file, sql in files.items() if "code_list" in sql and "JOIN" in sql}
    assert matching == {"phenotypes/code_to_phenotype.sql"}
    for record_file in ("phenotypes/condition_records.sql", "phenotypes/drug_records.sql",
                        "phenotypes/measurement_records.sql"):
        assert "phenotype_code_to_phenotype" in files[record_file], record_file
        assert "concept_code_map" not in files[record_file], record_file
