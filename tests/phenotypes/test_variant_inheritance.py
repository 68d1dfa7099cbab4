"""A variant phenotype file states only how it differs from its parent (variant_of + add_codes / remove_codes /
add_exclude_codes / remove_exclude_codes / rule / threshold); the loader builds the complete definition from the
parent's, so a later change to the parent reaches the variant (one fact in one place)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.phenotypes import PhenotypeDefinitionError, load_phenotype_library, phenotype_library
from pipelines.phenotypes.compiler import definition_rows


def code_set(groups) -> set[tuple[str, str]]:
    return {(group.vocabulary, code) for group in groups for code in group.codes}


# The library's variants as their complete files listed them before they stated only their differences: included
# and excluded codes (vocabulary, code), rule and threshold, so the definitions built from the parents are the same.
LEG_CRAMPS_CODES = {("ICD10CM", "R25.2"), ("ICD10CM", "G47.62"), ("ICD10CM", "M62.831"), ("SNOMED", "55300003"),
                    ("SNOMED", "449918009"), ("ICD9CM", "729.82"), ("ICD9CM", "327.52")}
LEG_CRAMPS_EXCLUDED = {("ICD10CM", "M62.830"), ("ICD10CM", "M62.838"), ("ICD10CM", "R29.0"), ("ICD10CM", "G47.61"),
                       ("ICD9CM", "728.85"), ("ICD9CM", "781.0")}
COMPLETE_VARIANTS = {
    "leg_cramps_with_other_muscle_spasm": (
        LEG_CRAMPS_CODES | {("ICD10CM", "M62.838"), ("ICD9CM", "728.85")},
        LEG_CRAMPS_EXCLUDED - {("ICD10CM", "M62.838"), ("ICD9CM", "728.85")}, ("min_records", 1), None),
    "leg_cramps_leg_specific": (
        {("ICD10CM", "G47.62"), ("ICD10CM", "M62.831"), ("SNOMED", "449918009"), ("ICD9CM", "327.52")},
        {("ICD9CM", "728.85")}, ("min_records", 1), None),
    "leg_cramps_two_records": (LEG_CRAMPS_CODES, LEG_CRAMPS_EXCLUDED, ("min_records", 2), None),
    "intermittent_claudication_with_i73_9": (
        {("ICD10CM", "I70.21"), ("ICD10CM", "I73.9"), ("SNOMED", "63491006"), ("ICD9CM", "440.21"),
         ("ICD9CM", "443.9")}, set(), ("min_records", 1), None),
    "hypomagnesemia_lab_below_1_46": (
        {("LOINC", "19123-9"), ("LOINC", "2601-3")}, set(), ("min_records", 1), 1.46),
}


@pytest.mark.parametrize("variant_id", sorted(COMPLETE_VARIANTS))
def test_each_variant_of_the_library_builds_the_definition_its_complete_file_gave(variant_id):
    library = phenotype_library()
    built, parent = library[variant_id].definition, library[library.parents[variant_id]].definition
    codes, excluded, (rule_type, min_records), threshold = COMPLETE_VARIANTS[variant_id]
    assert code_set(built.codes) == codes and code_set(built.exclude_codes) == excluded
    assert (built.rule.type, built.rule.min_records) == (rule_type, min_records)
    assert built.domain == parent.domain and built.seed_section == parent.seed_section
    if threshold is not None:
        assert built.measurement.threshold.less_than == threshold
        assert built.measurement.units == parent.measurement.units
        assert built.measurement.plausible_range == parent.measurement.plausible_range
    # the compiled code list holds the same codes (a SNOMED code with its bundled descendants)
    rows = [row for row in definition_rows(library)["code_list"] if row["phenotype_id"] == variant_id]
    assert {(row["vocabulary"], row["code"]) for row in rows if not row["excluded"]} >= codes
    assert {(row["vocabulary"], row["code"]) for row in rows if row["excluded"]} == excluded


def parent() -> dict:
    return {"id": "cramps", "name": "Cramps", "version": 1, "domain": "condition", "description": "test",
            "seed_section": "test", "rule": {"type": "min_records"}, "sources": ["parent source"],
            "codes": [{"vocabulary": "ICD10CM", "match": "exact", "codes": ["R25.2", "G47.62"],
                       "status": "verified", "source": "test"}],
            "exclude_codes": [{"vocabulary": "ICD10CM", "match": "exact", "codes": ["M62.838"],
                               "status": "verified", "source": "test"}]}


def broader(**changes) -> dict:
    return {"id": "cramps_broad", "variant_of": "cramps", "name": "Cramps or spasm", "version": 1,
            "description": "test", "sources": ["variant source"],
            "add_codes": [{"vocabulary": "ICD10CM", "match": "exact", "codes": ["M62.838"], "status": "verified",
                           "source": "test"}],
            "remove_exclude_codes": [{"vocabulary": "ICD10CM", "codes": ["M62.838"]}],
            "decisions": [{"decision": "count other muscle spasm", "reason": "test"}], **changes}


def write(folder: Path, *definitions: dict) -> None:
    for item in definitions:
        (folder / f"{item['id']}.yaml").write_text(yaml.safe_dump(item, sort_keys=False))


def test_a_change_to_the_parent_reaches_the_variant(tmp_path):
    write(tmp_path, parent(), broader())
    before = load_phenotype_library(tmp_path)
    variant = before["cramps_broad"].definition
    assert code_set(variant.codes) == {("ICD10CM", "R25.2"), ("ICD10CM", "G47.62"), ("ICD10CM", "M62.838")}
    assert variant.exclude_codes == [] and variant.sources == ["parent source", "variant source"]
    assert variant.domain == "condition" and variant.variant_of == "cramps"

    changed = parent()
    changed["codes"][0]["codes"].append("M62.831")
    write(tmp_path, changed)
    after = load_phenotype_library(tmp_path)
    assert ("ICD10CM", "M62.831") in code_set(after["cramps_broad"].definition.codes)
    # the variant's recorded hash covers its parent's file too: its results came from both texts
    assert after["cramps_broad"].sha256 != before["cramps_broad"].sha256


@pytest.mark.parametrize("changes, message", [
    ({"remove_codes": [{"vocabulary": "ICD10CM", "codes": ["R99"]}]},
     "remove_codes[0].codes[0]: cramps lists no ICD10CM code R99 here to remove"),
    ({"codes": parent()["codes"]},
     "codes: a variant takes this from its parent (variant_of); state only the differences"),
    ({"threshold": {"less_than": 1.46}},
     "threshold: cramps is a condition phenotype; only a measurement phenotype has a threshold"),
    ({"add_codes": [], "remove_exclude_codes": []}, "(file): states no difference from cramps"),
    ({"add_codes": [{"vocabulary": "ICD10CM", "match": "exact", "codes": ["R25.2"], "status": "verified",
                     "source": "test"}]},
     "codes[1].codes[0] (as built from cramps): ICD10CM R25.2 is listed twice (also at codes[0].codes[0])"),
])
def test_a_wrong_difference_is_a_definition_error_of_the_variant_file(tmp_path, changes, message):
    write(tmp_path, parent(), broader(**changes))
    with pytest.raises(PhenotypeDefinitionError) as caught:
        load_phenotype_library(tmp_path)
    assert f"cramps_broad.yaml: {message}" in str(caught.value)
