"""SNOMED CT concepts listed with their descendants find the descendants of the bundled list
(phenotypes/reference/snomed_descendants.csv) in an extract that ships no concept_ancestor.

- The list is well formed: valid SNOMED CT codes, a named source and a check date per pair, and every ancestor is a
  concept some phenotype lists with match: descendants (a pair no phenotype can use is a mistake).
- Through the compiled SQL on a real DuckDB database with an empty vocabulary.concept_code_map (a canonical
  extract): a record coded with a bundled descendant falls in the phenotype of its ancestor, a record coded with the
  same descendant does not fall in a phenotype that lists the ancestor as exact, and a SNOMED code outside the list
  finds nothing.
"""

from __future__ import annotations

import csv
from datetime import date

import duckdb
import pytest

from pipelines import paths
from pipelines.phenotypes import load_phenotype_library, phenotype_library, run_phenotypes
from pipelines.phenotypes.compiler import SNOMED_DESCENDANTS_FILE, bundled_snomed_descendants
from pipelines.sql import read_sql
from pipelines.vocabularies import code_problem
from tests.support.phenotype_staging import create_staging_tables, insert_rows

COLUMNS = ["ancestor_code", "ancestor_name", "descendant_code", "descendant_name", "status", "source", "checked_on"]


@pytest.fixture(scope="module")
def pairs() -> list[dict[str, str]]:
    with SNOMED_DESCENDANTS_FILE.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_the_bundled_list_is_well_formed(pairs):
    assert SNOMED_DESCENDANTS_FILE.parent == paths.PHENOTYPES_DIR / "reference"
    listed_with_descendants = {code for phenotype in phenotype_library()
                               for group in phenotype.definition.codes
                               if group.vocabulary == "SNOMED" and group.match == "descendants"
                               for code in group.codes}
    seen = set()
    for line, pair in enumerate(pairs, start=2):
        key = (pair["ancestor_code"], pair["descendant_code"])
        assert key not in seen and key[0] != key[1], line
        seen.add(key)
        for code in key:
            assert code_problem("SNOMED", code, "exact") is None, (line, code)
        assert pair["ancestor_code"] in listed_with_descendants, line
        assert pair["status"] == "verified" and pair["source"].strip(), line
        assert pair["ancestor_name"].strip() and pair["descendant_name"].strip(), line
        assert date.fromisoformat(pair["checked_on"]) <= date.today(), line
    assert bundled_snomed_descendants()["38341003"] == ("1201005", "8218002", "8762007", "9901000")


@pytest.fixture(scope="module")
def members() -> dict[str, set[str]]:
    """Phenotype -> persons, for a hand-written canonical extract (no concept_ancestor, empty concept_code_map)."""
    con = duckdb.connect()
    create_staging_tables(con)
    con.execute(read_sql("staging/empty_concept_code_map.sql"))
    # hypertension: SNOMED 38341003 with descendants, min_records 1; 1201005 benign essential hypertension is one
    # of its bundled descendants; 8762007 chronic hypertension in obstetric context is another, which the phenotype
    # excludes (as it excludes O10-O16). 195967001 (asthma) descends from neither listed concept.
    records = [("p_benign_essential", "1201005"), ("p_hypertensive_disorder", "38341003"), ("p_asthma", "195967001"),
               ("p_obstetric", "8762007")]
    insert_rows(con, "condition_occurrence", [
        {"condition_occurrence_id": f"c{index}", "person_id": person, "condition_vocabulary": "SNOMED",
         "condition_code": code, "condition_start_date": "2020-03-01"}
        for index, (person, code) in enumerate(records)])
    run_phenotypes(con)
    result: dict[str, set[str]] = {}
    for person, phenotype in con.execute("SELECT person_id, phenotype_id FROM phenotype.person_summary").fetchall():
        result.setdefault(phenotype, set()).add(person)
    con.close()
    return result


def test_a_bundled_descendant_falls_in_its_ancestors_phenotype_without_concept_ancestor(members):
    assert members["hypertension"] == {"p_benign_essential", "p_hypertensive_disorder"}
    assert not any("p_asthma" in persons or "p_obstetric" in persons for persons in members.values())


def test_the_bundled_descendants_count_only_for_codes_listed_with_their_descendants(tmp_path):
    # The same concept listed as exact in a copy of the hypertension phenotype: its bundled descendants do not count.
    source = (paths.PHENOTYPES_DIR / "conditions" / "hypertension.yaml").read_text(encoding="utf-8")
    include_group = 'match: descendants\n    codes: ["38341003"]'
    assert source.count(include_group) == 1
    (tmp_path / "hypertension.yaml").write_text(
        source.replace(include_group, 'match: exact\n    codes: ["38341003"]'),
                                                encoding="utf-8")
    library = load_phenotype_library(tmp_path)
    con = duckdb.connect()
    create_staging_tables(con)
    con.execute(read_sql("staging/empty_concept_code_map.sql"))
    insert_rows(con, "condition_occurrence", [
        {"condition_occurrence_id": "c1", "person_id": "p_benign_essential", "condition_vocabulary": "SNOMED",
         "condition_code": "1201005", "condition_start_date": "2020-03-01"}])
    run_phenotypes(con, library)
    assert con.execute("SELECT count(*) FROM phenotype.person_summary").fetchone()[0] == 0
    con.close()
