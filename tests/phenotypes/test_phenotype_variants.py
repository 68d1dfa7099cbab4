"""Variant phenotypes (variant_of): a variant names its parent, a main phenotype of its own domain, and the library
and the reference page say so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.phenotypes import PhenotypeDefinitionError, load_phenotype_library, phenotype_library
from pipelines.phenotypes.reference_page import generate_markdown


def definition(phenotype_id: str, domain: str = "condition", **changes) -> dict:
    codes = ({"vocabulary": "ICD10CM", "match": "exact", "codes": ["R25.2"]} if domain == "condition" else
             {"vocabulary": "RxNorm", "match": "exact", "codes": ["9071"]})
    return {"id": phenotype_id, "name": phenotype_id, "version": 1, "domain": domain, "description": "test",
            "seed_section": "test", "codes": [{**codes, "status": "verified", "source": "test"}],
            "rule": {"type": "min_records"}, "sources": ["test"], **changes}


def variant(phenotype_id: str, variant_of: str) -> dict:
    """A variant file: its parent's definition with one difference (two records)."""
    return {"id": phenotype_id, "variant_of": variant_of, "name": phenotype_id, "version": 1, "description": "test",
            "rule": {"type": "min_records", "min_records": 2},
            "decisions": [{"decision": "two records", "reason": "test"}]}


def write(folder: Path, *definitions: dict) -> None:
    for item in definitions:
        (folder / f"{item['id']}.yaml").write_text(yaml.safe_dump(item, sort_keys=False))


def test_a_variant_names_its_parent(tmp_path):
    write(tmp_path, definition("cramps"), variant("cramps_strict", "cramps"))
    library = load_phenotype_library(tmp_path)
    assert library.parents == {"cramps_strict": "cramps"}
    page = generate_markdown(library)
    assert "- Variant of [`cramps`](#cramps)" in page.split("### `cramps_strict`")[1]


@pytest.mark.parametrize("variant_of, others, message", [
    ("nothing", [], "variant_of: unknown phenotype 'nothing'"),
    ("cramps_strict", [], "variant_of: a phenotype cannot be a variant of itself"),
    ("cramps_broad", [variant("cramps_broad", "cramps")],
     "variant_of: 'cramps_broad' is itself a variant of 'cramps'; name the main phenotype"),
])
def test_a_wrong_parent_is_a_definition_error(tmp_path, variant_of, others, message):
    """(A variant has its parent's domain by construction: its file names none.)"""
    write(tmp_path, definition("cramps"), variant("cramps_strict", variant_of), *others)
    with pytest.raises(PhenotypeDefinitionError) as caught:
        load_phenotype_library(tmp_path)
    assert str(caught.value).endswith(f"cramps_strict.yaml: {message}")


def test_every_variant_of_the_library_names_a_main_phenotype():
    library = phenotype_library()
    assert library.parents == {
        "hypomagnesemia_lab_below_1_46": "hypomagnesemia_lab",
        "intermittent_claudication_with_i73_9": "intermittent_claudication",
        "leg_cramps_leg_specific": "leg_cramps",
        "leg_cramps_two_records": "leg_cramps",
        "leg_cramps_with_other_muscle_spasm": "leg_cramps",
    }
