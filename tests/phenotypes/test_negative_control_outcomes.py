"""The bundled negative-control outcomes: the reference list (phenotypes/reference/negative_control_outcomes.csv),
its ICD-10-CM codes checked with the pinned simple-icd-10-cm and its ICD-9-CM codes against CMS release 32 (their
agreement under the CMS GEMs: tests/phenotypes/test_icd9cm_gems.py), and the phenotype files that implement it."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date

import pytest

from pipelines import paths
from pipelines.phenotypes import phenotype_library
from pipelines.vocabularies import icd9cm_titles
from tests.support.icd10cm_reference import icd10cm

LIST = paths.PHENOTYPES_DIR / "reference" / "negative_control_outcomes.csv"
FOLDER = "negative_controls"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with open(LIST, newline="") as file:
        return list(csv.DictReader(file))


def test_every_code_is_a_valid_icd_code_with_its_cms_title(rows):
    assert len(rows) >= 20
    for row in rows:
        if row["vocabulary"] == "ICD9CM":
            assert row["match"] == "exact" and icd9cm_titles()[row["code"]] == row["title"], row
            continue
        assert row["vocabulary"] == "ICD10CM"
        assert icd10cm().is_valid_item(row["code"]), row
        assert icd10cm().get_description(row["code"]) == row["title"], row
        # A prefix must stand for a category with codes below it; an exact code must be one code.
        if row["match"] == "prefix":
            assert icd10cm().get_descendants(row["code"]), row
        else:
            assert row["match"] == "exact"


def test_every_row_names_its_source_and_check_date(rows):
    for row in rows:
        assert "LEGEND" in row["source"] and "NegativeControls.csv" in row["source"], row
        assert row["legend_concept_id"].isdigit() and row["legend_name"], row
        assert date.fromisoformat(row["checked_on"]) <= date.today()


def test_the_phenotype_files_hold_exactly_the_listed_codes(rows):
    listed: dict[str, set] = defaultdict(set)
    for row in rows:
        listed[row["phenotype_id"]].add((row["vocabulary"], row["match"], row["code"]))
    library = phenotype_library()
    in_folder = {p.definition.id for p in library if p.source_file.split("/")[1] == FOLDER}
    assert in_folder == set(listed)
    for phenotype_id, codes in listed.items():
        definition = library[phenotype_id].definition
        assert definition.domain == "condition" and definition.rule.type == "min_records"
        assert {(g.vocabulary, g.match, c) for g in definition.codes for c in g.codes} == codes, phenotype_id
