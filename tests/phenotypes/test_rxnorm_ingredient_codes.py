"""An RxNorm ingredient CUI stands for one ingredient, and an ingredient has one CUI, across every drug class.

The reference table phenotypes/reference/drug_ingredients.csv lists a CUI once per class it belongs to (amlodipine
is a calcium channel blocker and a dihydropyridine). The commonest error in public drug tables is a CUI given to the
wrong drug (phenotypes/reference/README.md quotes tables listing spironolactone as 8640, where the cited sources give
9997): across the table such a code shows up under two ingredient names, or an ingredient under two codes. This check
reads the table only; which code is right is the business of the sources cited on each row.
"""

from __future__ import annotations

import csv
from collections import defaultdict

from pipelines import paths

TABLE_PATH = paths.PHENOTYPES_DIR / "reference" / "drug_ingredients.csv"


def _rxnorm_rows() -> list[dict[str, str]]:
    with TABLE_PATH.open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["vocabulary"] == "RxNorm"]


def cui_conflicts(rows: list[dict[str, str]]) -> list[str]:
    """Every CUI listed under more than one ingredient name, and every ingredient listed under more than one CUI."""
    names_of_code: dict[str, set[str]] = defaultdict(set)
    codes_of_name: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        name = row["ingredient"].strip().lower()
        names_of_code[row["code"]].add(name)
        codes_of_name[name].add(row["code"])
    return ([f"RxNorm {code} is listed as {sorted(names)}" for code, names in sorted(names_of_code.items())
             if len(names) > 1]
            + [f"{name} is listed as RxNorm {sorted(codes)}" for name, codes in sorted(codes_of_name.items())
               if len(codes) > 1])


def test_an_rxnorm_cui_names_one_ingredient_and_an_ingredient_has_one_cui():
    rows = _rxnorm_rows()
    assert len(rows) > 100  # every class's RxNorm rows are read, not an empty file
    assert cui_conflicts(rows) == []


def test_a_cui_given_to_a_second_drug_is_reported():
    rows = _rxnorm_rows()
    propranolol = next(row for row in rows if row["ingredient"] == "propranolol")
    planted = [*rows, {**propranolol, "phenotype_id": "statins", "ingredient": "procainamide"},
               {**propranolol, "code": "7", "phenotype_id": "calcium_channel_blockers"}]
    assert cui_conflicts(planted) == ["RxNorm 8787 is listed as ['procainamide', 'propranolol']",
                                      "propranolol is listed as RxNorm ['7', '8787']"]
