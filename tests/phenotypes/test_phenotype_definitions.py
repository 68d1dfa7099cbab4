"""The committed phenotype files: they load, compile, and say what the project's rules say."""

from __future__ import annotations

import csv

import pytest

from pipelines import paths
from pipelines.phenotypes import compile_phenotypes, phenotype_library
from pipelines.phenotypes.compiler import DEFINITION_TABLES
from pipelines.phenotypes.reference_page import DOCS_PATH, generate_markdown

# id -> (domain, rule type) as the project specifies them; the synthetic generator plants ground truth with these.
PROJECT_PHENOTYPES = {
    "leg_cramps": ("condition", "min_records"),
    "heat_cramps": ("condition", "min_records"),
    "quinine_start": ("drug", "min_records"),
    "peripheral_arterial_disease": ("condition", "one_inpatient_or_two_outpatient"),
    "intermittent_claudication": ("condition", "min_records"),
    "abi_low": ("measurement", "lowest_value"),
    "abi_borderline": ("measurement", "lowest_value"),
    "abi_normal": ("measurement", "all_values"),
    "abi_noncompressible": ("measurement", "min_records"),
    "abi_critical_ischaemia": ("measurement", "min_records"),
    "claudication_with_borderline_or_normal_abi": ("composite", "all_of"),
    "hyponatremia_diagnosis": ("condition", "min_records"),
    "hyponatremia_lab": ("measurement", "min_records"),
    "hypokalemia_diagnosis": ("condition", "min_records"),
    "hypokalemia_lab": ("measurement", "min_records"),
    "hypomagnesemia_diagnosis": ("condition", "min_records"),
    "hypomagnesemia_lab": ("measurement", "min_records"),
    "dehydration": ("condition", "min_records"),
    "heat_exposure": ("condition", "min_records"),
    "peripheral_neuropathy": ("condition", "min_records"),
    "diabetic_neuropathy": ("condition", "min_records"),
    "radiculopathy": ("condition", "min_records"),
    "lumbar_spinal_stenosis": ("condition", "min_records"),
    "parkinsons_disease": ("condition", "min_records"),
    "hypothyroidism": ("condition", "min_records"),
    "diabetes_mellitus": ("condition", "one_inpatient_or_two_outpatient"),
    "metabolic_myopathy": ("condition", "min_records"),
    "thiazide_diuretics": ("drug", "min_records"),
    "thiazide_like_diuretics": ("drug", "min_records"),
    "hydrochlorothiazide": ("drug", "min_records"),
    "loop_diuretics": ("drug", "min_records"),
    "potassium_sparing_diuretics": ("drug", "min_records"),
    "statins": ("drug", "min_records"),
    "other_lipid_lowering": ("drug", "min_records"),
    "ace_inhibitors": ("drug", "min_records"),
    "angiotensin_receptor_blockers": ("drug", "min_records"),
    "calcium_channel_blockers": ("drug", "min_records"),
    "beta_blockers": ("drug", "min_records"),
    "short_acting_beta2_agonists": ("drug", "min_records"),
    "long_acting_beta2_agonists": ("drug", "min_records"),
    "insulin": ("drug", "min_records"),
    "oral_contraceptives": ("drug", "min_records"),
    "alcohol_use": ("condition", "min_records"),
    "restless_legs_syndrome": ("condition", "min_records"),
    "pseudoclaudication": ("condition", "min_records"),
    "venous_disease": ("condition", "min_records"),
    "chronic_compartment_syndrome": ("condition", "min_records"),
    "osteoarthritis": ("condition", "min_records"),
    "inflammatory_myopathy": ("condition", "min_records"),
}
# Helpers the project phenotypes are built from.
HELPER_PHENOTYPES = {"malaria_or_babesiosis", "abi_lowest_0_91_to_1_30"}
# Variants for sensitivity analyses (the generator plants no separate truth for them).
VARIANT_PHENOTYPES = {"leg_cramps_leg_specific", "leg_cramps_with_other_muscle_spasm", "leg_cramps_two_records",
                      "hypomagnesemia_lab_below_1_46", "intermittent_claudication_with_i73_9"}
# Negative-control outcomes for empirical calibration: the bundled list (phenotypes/reference/).
with open(paths.PHENOTYPES_DIR / "reference" / "negative_control_outcomes.csv", newline="") as _file:
    NEGATIVE_CONTROL_PHENOTYPES = {row["phenotype_id"] for row in csv.DictReader(_file)}
# Negative-control exposures for the leg-cramp outcome: the bundled list (phenotypes/reference/).
with open(paths.PHENOTYPES_DIR / "reference" / "negative_control_exposures.csv", newline="") as _file:
    NEGATIVE_CONTROL_EXPOSURE_PHENOTYPES = {row["phenotype_id"] for row in csv.DictReader(_file)}
# The classes and indication of the LEGEND-style active-comparator study (thiazide_vs_ccb).
LEGEND_PHENOTYPES = {"thiazide_or_thiazide_like_diuretics", "dihydropyridine_calcium_channel_blockers", "hypertension"}

FOLDERS = {"outcome", "vascular", "electrolytes", "conditions", "drugs", "mimics", "negative_controls",
           "negative_control_exposures"}


@pytest.fixture(scope="module")
def library():
    return phenotype_library()


def codes(library, phenotype_id, vocabulary, match=None, excluded=False):
    definition = library[phenotype_id].definition
    groups = definition.exclude_codes if excluded else definition.codes
    return {c for g in groups if g.vocabulary == vocabulary and (match is None or g.match == match) for c in g.codes}


def test_every_project_phenotype_is_defined_with_its_domain_and_rule(library):
    assert set(library.ids) == (set(PROJECT_PHENOTYPES) | HELPER_PHENOTYPES | VARIANT_PHENOTYPES
                                | NEGATIVE_CONTROL_PHENOTYPES | NEGATIVE_CONTROL_EXPOSURE_PHENOTYPES
                                | LEGEND_PHENOTYPES)
    for phenotype_id, (domain, rule_type) in PROJECT_PHENOTYPES.items():
        definition = library[phenotype_id].definition
        assert (definition.domain, definition.rule.type) == (domain, rule_type), phenotype_id
        if rule_type == "min_records":
            assert definition.rule.min_records == 1, phenotype_id
        if rule_type == "one_inpatient_or_two_outpatient":
            assert definition.rule.min_days_apart == 30, phenotype_id


def test_files_live_in_the_domain_folders(library):
    for phenotype in library:
        assert phenotype.source_file.startswith("phenotypes/")
        assert phenotype.source_file.split("/")[1] in FOLDERS, phenotype.source_file


def test_the_library_compiles(library):
    compiled = compile_phenotypes(library)
    assert set(compiled.definition_rows) == set(DEFINITION_TABLES)
    assert len(compiled.definition_rows["definitions"]) == len(library)
    assert compiled.steps


def test_outcome_codes(library):
    assert codes(library, "leg_cramps", "ICD10CM") == {"R25.2", "G47.62", "M62.831"}
    assert codes(library, "leg_cramps", "SNOMED", "descendants") == {"55300003", "449918009"}
    assert codes(library, "leg_cramps", "ICD9CM", "exact") == {"729.82", "327.52"}
    # The leg-specific variant: only codes that name the leg (R25.2, 729.82 and 55300003 mean any site).
    assert codes(library, "leg_cramps_leg_specific", "ICD10CM") == {"G47.62", "M62.831"}
    assert codes(library, "leg_cramps_leg_specific", "ICD9CM") == {"327.52"}
    assert codes(library, "leg_cramps_leg_specific", "SNOMED", "descendants") == {"449918009"}
    assert codes(library, "leg_cramps", "ICD10CM", excluded=True) == {"M62.830", "M62.838", "R29.0", "G47.61"}
    assert codes(library, "heat_cramps", "ICD10CM", "prefix") == {"T67.2"}
    assert codes(library, "quinine_start", "RxNorm") == {"9071"}
    assert "P01BC01" in codes(library, "quinine_start", "ATC")
    assert library["quinine_start"].definition.rule.exclude_persons_with == ["malaria_or_babesiosis"]
    assert codes(library, "malaria_or_babesiosis", "ICD10CM", "prefix") == {"B50", "B51", "B52", "B53", "B54",
                                                                            "B60.0"}


def test_vascular_codes(library):
    assert codes(library, "peripheral_arterial_disease", "ICD10CM", "prefix") == {
        "I70.2", "I70.3", "I70.4", "I70.5", "I70.6", "I70.7"}
    assert codes(library, "peripheral_arterial_disease", "ICD10CM", "exact") == {"I73.9"}
    assert codes(library, "peripheral_arterial_disease", "SNOMED") == {"399957001", "840580004", "400047006",
                                                                       "724440007"}
    assert codes(library, "peripheral_arterial_disease", "ICD9CM", "prefix") == {"440.2", "440.3"}
    assert codes(library, "peripheral_arterial_disease", "ICD9CM", "exact") == {"443.9"}
    assert codes(library, "intermittent_claudication", "ICD10CM") == {"I70.21"}
    assert codes(library, "intermittent_claudication", "ICD9CM") == {"440.21"}
    assert codes(library, "intermittent_claudication", "SNOMED") == {"63491006"}
    assert library["claudication_with_borderline_or_normal_abi"].definition.rule.all_of == [
        "intermittent_claudication", "abi_lowest_0_91_to_1_30"]


@pytest.mark.parametrize("phenotype_id, lower, lower_inclusive, upper, upper_inclusive", [
    ("abi_low", None, None, 0.90, True),
    ("abi_borderline", 0.90, False, 1.00, False),
    ("abi_normal", 1.00, True, 1.40, True),
    ("abi_noncompressible", 1.40, False, None, None),
    ("abi_lowest_0_91_to_1_30", 0.90, False, 1.30, True),
    ("abi_critical_ischaemia", None, None, 0.20, False),
])
def test_abi_thresholds(library, phenotype_id, lower, lower_inclusive, upper, upper_inclusive):
    (row,) = [r for r in compile_phenotypes(library).definition_rows["measurement_rules"]
              if r["phenotype_id"] == phenotype_id]
    assert (row["threshold_lower"], row["threshold_lower_inclusive"], row["threshold_upper"],
            row["threshold_upper_inclusive"]) == (lower, lower_inclusive, upper, upper_inclusive)
    # Above 0 (0 < ABI < 0.20 is critical ischaemia, not an error) up to 2.5.
    assert (row["plausible_min"], row["plausible_min_inclusive"], row["plausible_max"]) == (0, False, 2.5)
    assert codes(library, phenotype_id, "SNOMED") == {"446841001"}
    assert library[phenotype_id].definition.measurement.laterality == "per_leg"


def test_lab_thresholds_in_canonical_units(library):
    rows = {r["phenotype_id"]: r for r in compile_phenotypes(library).definition_rows["measurement_rules"]}
    assert (rows["hyponatremia_lab"]["threshold_upper"], rows["hyponatremia_lab"]["plausible_min"],
            rows["hyponatremia_lab"]["plausible_max"]) == (135, 100, 200)
    assert (rows["hypokalemia_lab"]["threshold_upper"], rows["hypokalemia_lab"]["plausible_min"],
            rows["hypokalemia_lab"]["plausible_max"]) == (3.5, 1, 10)
    magnesium = rows["hypomagnesemia_lab"]
    assert magnesium["canonical_unit"] == "mg/dL"
    assert (magnesium["threshold_upper"], magnesium["threshold_upper_inclusive"]) == (1.7, False)
    assert (magnesium["plausible_min"], magnesium["plausible_max"]) == (0.24305, 12.1525)  # 0.1-5 mmol/L
    assert codes(library, "hyponatremia_lab", "LOINC") == {"2951-2", "2947-0"}
    assert codes(library, "hypokalemia_lab", "LOINC") == {"2823-3", "6298-4"}
    assert codes(library, "hypomagnesemia_lab", "LOINC") == {"19123-9", "2601-3"}


def test_drug_codes(library):
    # Full membership per class is checked against phenotypes/reference/drug_ingredients.csv in
    # tests/phenotypes/test_phenotype_drug_classes.py; these are the combinations the classes are easiest to get wrong.
    assert codes(library, "thiazide_diuretics", "ATC", "prefix") == {"C03AA", "C03AB", "C03AH", "C03AX", "C07B",
                                                                     "C07D"}
    assert {"C03EA01", "C09BA03", "C09DA01", "C09DX01", "C02LG02"} <= codes(library, "thiazide_diuretics", "ATC")
    assert {"C09BA04", "C09DA09", "C03EA06"} <= codes(library, "thiazide_like_diuretics", "ATC")
    assert not {"C09BA04", "C09DA09", "C03EA06"} & codes(library, "thiazide_diuretics", "ATC")
    assert codes(library, "thiazide_like_diuretics", "RxNorm") == {"2409", "5764", "6916"}
    assert {"C03AA03", "C03EA01", "C09BA03"} <= codes(library, "hydrochlorothiazide", "ATC")
    assert codes(library, "loop_diuretics", "ATC") == {"C03CA", "C03CB", "C03CC", "C03EB"}
    assert codes(library, "potassium_sparing_diuretics", "ATC") == {"C03DA", "C03DB", "C03EA", "C03EB"}
    assert codes(library, "potassium_sparing_diuretics", "RxNorm") == {"9997", "298869"}
    assert codes(library, "statins", "RxNorm") == {"83367", "36567", "301542", "42463", "6472", "41127", "861634",
                                                   "596723"}
    assert "C10BX" in codes(library, "statins", "ATC", "prefix")
    assert {"C10BX03", "C09BB", "C09DB"} <= codes(library, "calcium_channel_blockers", "ATC")
    assert {"C10AD", "C10AX13", "C10AX14", "C10AX15"} <= codes(library, "other_lipid_lowering", "ATC")
    assert codes(library, "short_acting_beta2_agonists", "ATC") == {
        "R03AC02", "R03AC03", "R03AC04", "R03AK04", "R03AK13", "R03AK15", "R03AL01", "R03AL02"}
    # Combinations whose agonist is short-acting (R03AK04, R03AK13, R03AK15, R03AL01, R03AL02) are not LABA exposure.
    assert codes(library, "long_acting_beta2_agonists", "ATC", "prefix") == set()
    assert codes(library, "long_acting_beta2_agonists", "ATC", "exact") == {
        "R03AC12", "R03AC13", "R03AC18", "R03AC19"} | {f"R03AL{n:02d}" for n in range(3, 13)} | {
        f"R03AK{n:02d}" for n in (6, 7, 8, 9, 10, 11, 12, 14)}


def test_condition_codes(library):
    assert codes(library, "diabetes_mellitus", "ICD10CM", "prefix") == {"E10", "E11", "E13"}
    assert codes(library, "diabetes_mellitus", "ICD9CM", "prefix") == {"250"}
    assert codes(library, "hypothyroidism", "ICD9CM") == {"243", "244"}
    assert codes(library, "parkinsons_disease", "ICD9CM") == {"332.0"}
    assert codes(library, "metabolic_myopathy", "ICD10CM", excluded=True) == {"G72.41"}
    assert "G72.41" in codes(library, "inflammatory_myopathy", "ICD10CM")
    assert codes(library, "parkinsons_disease", "ICD10CM", "prefix") == {"G20"}
    assert codes(library, "chronic_compartment_syndrome", "ICD10CM", "prefix") == {"M79.A2"}
    assert codes(library, "chronic_compartment_syndrome", "ICD10CM", excluded=True) == {"T79.A"}


def test_the_committed_docs_match_the_definitions(library):
    expected = generate_markdown(library)
    assert DOCS_PATH.exists(), "run: python -m pipelines.phenotypes.reference_page"
    assert DOCS_PATH.read_text(encoding="utf-8") == expected, (
        "docs/phenotypes.md is out of date; run: python -m pipelines.phenotypes.reference_page")


def test_the_docs_mention_every_phenotype_and_code(library):
    text = generate_markdown(library)
    for phenotype in library:
        assert f"### `{phenotype.id}`" in text
        for group in phenotype.definition.codes + phenotype.definition.exclude_codes:
            for code in group.codes:
                assert f"`{code}`" in text


def test_docs_path_is_in_docs_folder():
    assert DOCS_PATH == paths.DOCS_DIR / "phenotypes.md"


def test_every_code_group_names_its_source_and_the_day_it_was_checked(library):
    for phenotype in library:
        definition = phenotype.definition
        for group in definition.codes + definition.exclude_codes:
            assert group.source.strip() and group.checked_on is not None, (phenotype.id, group.codes)
