"""Drug concepts reach their RxNorm ingredient through every link of the chain OHDSI's vocabulary build follows when
the extract ships no concept_ancestor: a branded drug 'Tradename of' a clinical drug, a pack that 'Contains' a
branded drug, then 'Consists of' / 'RxNorm has ing' (sql/staging/omop_vocabulary.sql). Built on a copy of the
shared Synthea27Nj extract (OMOP CDM v5.4), whose own drugs use only the last two links."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.formats import load_extract_any_format
from tests.support.hand_omop import (OMOP_CLINICAL_TABLES, append_csv_rows, set_csv_field, synthea27nj_copy)

TABLES = OMOP_CLINICAL_TABLES + ("CONCEPT", "CONCEPT_RELATIONSHIP")  # no CONCEPT_ANCESTOR
LISINOPRIL_10_MG_TABLET = "19080128"  # clinical drug, RxNorm 314076; its ingredient lisinopril is RxNorm 29046
BRANDED = ("900000001", "Zestril 10 MG Oral Tablet", "Branded Drug", "900001")
PACK = ("900000002", "Zestril 10 MG Oral Tablet pack", "Branded Pack", "900002")
REWRITTEN_IDS = ("1", "2")  # the first two drug records (amoxicillin, ibuprofen), rewritten to name BRANDED and PACK


@pytest.fixture
def extract(tmp_path) -> Path:
    folder = synthea27nj_copy(tmp_path / "extract", TABLES)
    append_csv_rows(folder / "CONCEPT.csv", [[concept_id, name, "Drug", "RxNorm", concept_class, "S", code,
                                              "1970-01-01", "2099-12-31", ""]
                                             for concept_id, name, concept_class, code in (BRANDED, PACK)])
    append_csv_rows(folder / "CONCEPT_RELATIONSHIP.csv", [
        [BRANDED[0], LISINOPRIL_10_MG_TABLET, "Tradename of", "1970-01-01", "2099-12-31", ""],
        [PACK[0], BRANDED[0], "Contains", "1970-01-01", "2099-12-31", ""],
    ])
    # Two drug records of the extract now name the branded drug and the pack.
    drugs = folder / "DRUG_EXPOSURE.csv"
    assert [line.split(",")[0] for line in drugs.read_text().splitlines()[1:3]] == list(REWRITTEN_IDS)
    for line_number, concept_id in ((1, BRANDED[0]), (2, PACK[0])):
        set_csv_field(drugs, line_number, "drug_concept_id", concept_id)
    return folder


def test_branded_drugs_and_packs_reach_their_ingredient(extract):
    con = duckdb.connect()
    result = load_extract_any_format(con, extract)
    mapped = {row[0] for row in con.execute(
        "SELECT code FROM vocabulary.concept_code_map WHERE mapped_vocabulary = 'RxNorm' AND mapped_code = '29046' "
        "AND mapping = 'ingredient'").fetchall()}
    assert {BRANDED[3], PACK[3]} <= mapped
    assert con.execute("SELECT count(*) FROM staging.drug_exposure WHERE drug_code IN (?, ?)",
                       [BRANDED[3], PACK[3]]).fetchone()[0] == 2
    # The count of resolved records grows by the rewritten records that resolved to no ingredient before.
    baseline = duckdb.connect()
    baseline_report = _ingredient_report(load_extract_any_format(baseline, _pristine_copy(extract.parent)).warnings)
    unresolved_before = baseline.execute(
        "SELECT count(*) FROM staging.drug_exposure AS d WHERE d.drug_exposure_id IN (?, ?) AND NOT EXISTS ("
        "SELECT 1 FROM vocabulary.concept_code_map AS m WHERE m.vocabulary = d.drug_vocabulary "
        "AND m.code = d.drug_code AND m.mapping = 'ingredient')", REWRITTEN_IDS).fetchone()[0]
    assert baseline_report.startswith("drug ingredients: 121 of 883 ")  # the count
    resolved = 121 + unresolved_before
    assert _ingredient_report(result.warnings).startswith(
        f"drug ingredients: {resolved} of 883 drug records resolve to an RxNorm ingredient (0 through "
        f"concept_ancestor, {resolved} through the RxNorm relationship chain")


def _ingredient_report(warnings: list[str]) -> str:
    [report] = [w for w in warnings if w.startswith("drug ingredients:")]
    return report


def _pristine_copy(parent: Path) -> Path:
    return synthea27nj_copy(parent / "pristine", TABLES)
