"""Drug classes are defined by ingredient, whatever vocabulary an extract uses.

- Every drug phenotype's codes equal its rows in phenotypes/reference/drug_ingredients.csv, and every class in the
  table is a drug phenotype: the table is kept apart from the phenotype files, so a code added to one side only fails.
- Every entry of the table is well formed and names its source, verification status and check date; the phenotype
  reference page shows per phenotype how many codes each vocabulary has.
- Through the compiled SQL on a real DuckDB database: a product recorded by its ATC code, by its RxNorm ingredient
  CUIs, or as an OMOP clinical drug that reaches its ingredients and ATC classes through vocabulary.concept_code_map,
  falls in the same classes, and those are the classes of its ingredients (combinations count for each).
"""

from __future__ import annotations

import csv
import itertools
from datetime import date

import duckdb
import pytest

from pipelines import paths
from pipelines.phenotypes import PhenotypeDefinitionError, load_phenotype_library, phenotype_library, run_phenotypes
from pipelines.vocabularies import code_problem
from pipelines.phenotypes.reference_page import generate_markdown, vocabulary_counts, vocabulary_counts_text
from tests.support.phenotype_staging import create_staging_tables, insert_rows
from pipelines.sql import read_sql

TABLE_PATH = paths.PHENOTYPES_DIR / "reference" / "drug_ingredients.csv"
COLUMNS = ["phenotype_id", "ingredient", "vocabulary", "code", "match", "status", "source", "checked_on", "note"]


@pytest.fixture(scope="module")
def library():
    return phenotype_library()


@pytest.fixture(scope="module")
def table() -> list[dict[str, str]]:
    with TABLE_PATH.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def drug_phenotype_ids(library) -> set[str]:
    return {p.id for p in library if p.definition.domain == "drug"}


def test_the_table_is_well_formed(table):
    seen = set()
    for line, row in enumerate(table, start=2):
        key = (row["phenotype_id"], row["vocabulary"], row["code"], row["match"])
        assert key not in seen, f"line {line}: {key} listed twice"
        seen.add(key)
        assert row["vocabulary"] in ("RxNorm", "ATC"), line
        assert code_problem(row["vocabulary"], row["code"], row["match"]) is None, line
        assert row["vocabulary"] == "ATC" or row["match"] == "exact", f"line {line}: RxNorm CUIs match exactly"
        assert row["status"] in ("verified", "verified_weak"), line
        assert row["ingredient"].strip() and row["source"].strip(), line
        assert date.fromisoformat(row["checked_on"]) <= date.today(), line


def test_the_classes_of_the_table_are_the_drug_phenotypes(library, table):
    assert {row["phenotype_id"] for row in table} == drug_phenotype_ids(library)


@pytest.mark.parametrize("phenotype_id", sorted(drug_phenotype_ids(phenotype_library())))
def test_a_drug_phenotype_has_exactly_its_codes_in_the_table(library, table, phenotype_id):
    definition = library[phenotype_id].definition
    assert not definition.exclude_codes
    in_phenotype = {(group.vocabulary, code, group.match, group.status)
                    for group in definition.codes for code in group.codes}
    in_table = {(row["vocabulary"], row["code"], row["match"], row["status"])
                for row in table if row["phenotype_id"] == phenotype_id}
    assert in_phenotype - in_table == set(), "codes in the phenotype file but not in the table"
    assert in_table - in_phenotype == set(), "codes in the table but not in the phenotype file"


def test_every_drug_code_group_names_its_source_and_check_date(library, table):
    checked = {(row["phenotype_id"], row["vocabulary"], row["code"]): date.fromisoformat(row["checked_on"])
               for row in table}
    for phenotype_id in drug_phenotype_ids(library):
        for group in library[phenotype_id].definition.codes:
            assert group.source.strip() and group.checked_on is not None, (phenotype_id, group.codes)
            assert {checked[(phenotype_id, group.vocabulary, code)] for code in group.codes} == {group.checked_on}


def test_a_check_date_that_is_not_a_date_is_a_definition_error(tmp_path):
    for source in ("outcome/quinine_start.yaml", "conditions/malaria_or_babesiosis.yaml"):
        text = (paths.PHENOTYPES_DIR / source).read_text(encoding="utf-8")
        (tmp_path / source.split("/")[1]).write_text(text.replace("checked_on: 2026-12-05", "checked_on: 5 Dec 2026"),
                                                     encoding="utf-8")
    with pytest.raises(PhenotypeDefinitionError) as caught:
        load_phenotype_library(tmp_path)
    assert "checked_on" in str(caught.value) and "quinine_start.yaml" in str(caught.value)


def test_the_docs_show_how_many_codes_each_vocabulary_has(library, table):
    for phenotype_id in drug_phenotype_ids(library):
        rows = [row for row in table if row["phenotype_id"] == phenotype_id]
        expected = {vocabulary: (sum(row["vocabulary"] == vocabulary for row in rows),
                                 sum(row["vocabulary"] == vocabulary and row["match"] == "prefix" for row in rows))
                    for vocabulary in ("RxNorm", "ATC")}
        assert vocabulary_counts(library[phenotype_id].definition) == expected, phenotype_id
    # A vocabulary without codes is shown with 0, so a thin list stands out; composites list no codes.
    assert vocabulary_counts_text(library["other_lipid_lowering"].definition) == "RxNorm 0, ATC 18 (3 prefixes)"
    assert vocabulary_counts_text(library["oral_contraceptives"].definition) == "RxNorm 2, ATC 1 (1 prefix)"
    assert vocabulary_counts_text(library["insulin"].definition) == "RxNorm 7, ATC 1 (1 prefix)"
    assert vocabulary_counts_text(library["leg_cramps"].definition) == "ICD10CM 3, ICD9CM 2, SNOMED 2"
    assert vocabulary_counts_text(library["radiculopathy"].definition) == "ICD10CM 1 (1 prefix), ICD9CM 2, SNOMED 2"
    assert vocabulary_counts_text(library["rotator_cuff_strain"].definition) == "ICD10CM 1 (1 prefix), ICD9CM 0, SNOMED 0"
    assert vocabulary_counts_text(library["claudication_with_borderline_or_normal_abi"].definition) == "—"
    text = generate_markdown(library)
    assert ("| [`other_lipid_lowering`](#other_lipid_lowering) | Other lipid-lowering agents | drug | ≥1 record "
            "| RxNorm 0, ATC 18 (3 prefixes) |" in text)
    assert "- Codes per vocabulary: RxNorm 0, ATC 18 (3 prefixes)" in text


# Products: the ATC code they are sold under, the RxNorm ingredient CUIs they contain (as listed in the table's
# sources), and the classes their ingredients belong to. Fluticasone (RxNorm 41126, OHDSI Eunomia vocabulary) is in
# no class: it must add nothing.
# The LEGEND classes: thiazides with thiazide-like diuretics, and dihydropyridine calcium channel blockers only.
TT, DHP = "thiazide_or_thiazide_like_diuretics", "dihydropyridine_calcium_channel_blockers"
PRODUCTS: dict[str, tuple[str, tuple[str, ...], set[str]]] = {
    "lisinopril + hydrochlorothiazide": (
        "C09BA03", ("29046", "5487"), {"ace_inhibitors", "thiazide_diuretics", "hydrochlorothiazide", TT}),
    "perindopril + indapamide": ("C09BA04", ("54552", "5764"), {"ace_inhibitors", "thiazide_like_diuretics", TT}),
    "trandolapril + verapamil": ("C09BB10", ("38454", "11170"), {"ace_inhibitors", "calcium_channel_blockers"}),
    "valsartan + amlodipine + hydrochlorothiazide": (
        "C09DX01", ("69749", "17767", "5487"),
        {"angiotensin_receptor_blockers", "calcium_channel_blockers", "thiazide_diuretics", "hydrochlorothiazide", TT, DHP}),
    "azilsartan + chlortalidone": (
        "C09DA09", ("1091643", "2409"), {"angiotensin_receptor_blockers", "thiazide_like_diuretics", TT}),
    "bisoprolol + hydrochlorothiazide": (
        "C07BB07", ("19484", "5487"), {"beta_blockers", "thiazide_diuretics", "hydrochlorothiazide", TT}),
    "spironolactone + hydrochlorothiazide": (
        "C03EA01", ("9997", "5487"),
        {"potassium_sparing_diuretics", "thiazide_diuretics", "hydrochlorothiazide", TT}),
    "atorvastatin + amlodipine": ("C10BX03", ("83367", "17767"), {"statins", "calcium_channel_blockers", DHP}),
    "salmeterol + fluticasone": ("R03AK06", ("36117", "41126"), {"long_acting_beta2_agonists"}),
    "pravastatin": ("C10AA03", ("42463",), {"statins"}),
    "furosemide": ("C03CA01", ("4603",), {"loop_diuretics"}),
    "torasemide": ("C03CA04", ("38413",), {"loop_diuretics"}),
    "eplerenone": ("C03DA04", ("298869",), {"potassium_sparing_diuretics"}),
    "chlorthalidone": ("C03BA04", ("2409",), {"thiazide_like_diuretics", TT}),
    "nifedipine": ("C08CA05", ("7417",), {"calcium_channel_blockers", DHP}),
    "lisinopril + amlodipine": ("C09BB03", ("29046", "17767"), {"ace_inhibitors", "calcium_channel_blockers", DHP}),
    "albuterol": ("R03AC02", ("435",), {"short_acting_beta2_agonists"}),
    "quinine": ("P01BC01", ("9071",), {"quinine_start"}),
    "insulin glargine": ("A10AE04", ("274783",), {"insulin"}),
    "insulin lispro": ("A10AB04", ("86009",), {"insulin"}),
    "insulin degludec": ("A10AE06", ("1670007",), {"insulin"}),
    "insulin isophane + regular human (70/30)": ("A10AD01", ("1605101", "253182"), {"insulin"}),
}
RECORDINGS = ("ATC", "RxNorm ingredients", "OMOP clinical drug")


def _atc_ancestors(code: str) -> list[str]:
    """Every ATC level of a 5th-level code, as an OMOP vocabulary's concept_ancestor gives them."""
    return [code[:length] for length in (1, 3, 4, 5, 7)]


@pytest.fixture(scope="module")
def class_members() -> dict[tuple[str, str], set[str]]:
    """(product, recording) -> the drug phenotypes the person recorded that way falls in."""
    con = duckdb.connect()
    create_staging_tables(con)
    con.execute(read_sql("staging/empty_concept_code_map.sql"))
    ids = itertools.count(1)
    drugs, code_map = [], []

    def fill(person: str, vocabulary: str, code: str) -> None:
        drugs.append({"drug_exposure_id": f"d{next(ids)}", "person_id": person, "drug_vocabulary": vocabulary,
                      "drug_code": code, "drug_exposure_start_date": "2020-03-01",
                      "drug_exposure_end_date": "2020-03-30"})

    for index, (product, (atc, ingredients, _)) in enumerate(PRODUCTS.items()):
        fill(f"{product}|ATC", "ATC", atc)
        for ingredient in ingredients:
            fill(f"{product}|RxNorm ingredients", "RxNorm", ingredient)
        # A stand-in clinical drug code (not a real RxCUI): it reaches the product's ingredients and ATC classes only
        # through the map, as ingest builds it from an OMOP vocabulary.
        clinical_drug = f"99000{index:02d}"
        fill(f"{product}|OMOP clinical drug", "RxNorm", clinical_drug)
        code_map += [("RxNorm", clinical_drug, "RxNorm", ingredient, "ingredient") for ingredient in ingredients]
        code_map += [("RxNorm", clinical_drug, "ATC", level, "ATC class") for level in _atc_ancestors(atc)]
    insert_rows(con, "drug_exposure", drugs)
    con.executemany("INSERT INTO vocabulary.concept_code_map VALUES (?, ?, ?, ?, ?)", code_map)
    run_phenotypes(con)
    members: dict[tuple[str, str], set[str]] = {
        (product, recording): set() for product in PRODUCTS for recording in RECORDINGS}
    summary = con.execute("SELECT person_id, phenotype_id FROM phenotype.person_summary").fetchall()
    for person_id, phenotype_id in summary:
        product, recording = person_id.split("|")
        members[(product, recording)].add(phenotype_id)
    con.close()
    return members


@pytest.mark.parametrize("product", list(PRODUCTS))
def test_a_product_falls_in_its_ingredients_classes_whatever_the_vocabulary(class_members, product):
    expected = PRODUCTS[product][2]
    for recording in RECORDINGS:
        assert class_members[(product, recording)] == expected, recording
