"""Condition phenotypes that do not depend on the site's vocabulary: ICD-9-CM records (US data before 2015-10-01)
found through the real ingest, and SNOMED CT concepts matched with their descendants through an OMOP extract's
concept_ancestor."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.formats import load_extract_any_format
from pipelines.ingest.loader import load_extract
from pipelines.phenotypes import run_phenotypes
from pipelines.sql import RECORD_SPANS_SQL, read_sql
from tests.support.paths import SHARED_DATA

# A canonical extract whose diagnoses before the ICD-10-CM transition are ICD-9-CM, spelt as sites spell them
# (with and without the dot, vocabulary 'ICD-9-CM' or 'ICD9').
ICD9_EXTRACT = {
    "person.csv": """person_id,year_of_birth,sex
P1,1950,F
P2,1948,M
P3,1945,M
P4,1952,F
P5,1960,F
""",
    "observation_period.csv": """observation_period_id,person_id,observation_period_start_date,observation_period_end_date
1,P1,2012-01-01,2020-12-31
2,P2,2012-01-01,2020-12-31
3,P3,2012-01-01,2020-12-31
4,P4,2012-01-01,2020-12-31
5,P5,2012-01-01,2020-12-31
""",
    "visit_occurrence.csv": """visit_occurrence_id,person_id,visit_type,visit_start_date,visit_end_date
V3,P3,inpatient,2013-02-01,2013-02-04
V4a,P4,outpatient,2014-01-10,
V4b,P4,outpatient,2014-03-01,
""",
    "condition_occurrence.csv": """condition_occurrence_id,person_id,condition_vocabulary,condition_code,condition_start_date,condition_end_date,visit_occurrence_id
C1,P1,ICD-9-CM,72982,2014-03-01,,
C2,P1,ICD10CM,R25.2,2017-05-01,,
C3,P2,ICD9CM,327.52,2015-06-01,,
C4,P3,ICD9,4439,2013-02-01,,V3
C5,P4,ICD9CM,250.00,2014-01-10,,V4a
C6,P4,ICD9CM,25002,2014-03-01,,V4b
C7,P5,ICD9CM,E8801,2014-07-07,,
C8,P5,ICD9CM,2449,2015-09-30,,
""",
    "drug_exposure.csv": "drug_exposure_id,person_id,drug_vocabulary,drug_code,drug_exposure_start_date\n",
    "measurement.csv": "measurement_id,person_id,measurement_vocabulary,measurement_code,measurement_date\n",
    "procedure_occurrence.csv": "procedure_occurrence_id,person_id,procedure_vocabulary,procedure_code,procedure_date\n",
}


@pytest.fixture(scope="module")
def icd9_phenotyped(tmp_path_factory) -> duckdb.DuckDBPyConnection:
    folder = tmp_path_factory.mktemp("icd9_extract")
    for name, text in ICD9_EXTRACT.items():
        (folder / name).write_text(text)
    con = duckdb.connect()
    load_extract(con, folder)
    con.execute(read_sql("staging/empty_concept_code_map.sql"))
    run_phenotypes(con)
    return con


def first_dates(con: duckdb.DuckDBPyConnection, phenotype_id: str) -> dict[str, str]:
    rows = con.execute("SELECT person_id, first_date FROM phenotype.person_summary WHERE phenotype_id = ?",
                       [phenotype_id]).fetchall()
    return {person: day.isoformat() for person, day in rows}


def test_icd9cm_codes_are_staged_in_the_dotted_form_phenotypes_list(icd9_phenotyped):
    staged = dict(icd9_phenotyped.execute(
        "SELECT condition_occurrence_id, condition_vocabulary || ' ' || condition_code "
        "FROM staging.condition_occurrence").fetchall())
    assert staged == {"C1": "ICD9CM 729.82", "C2": "ICD10CM R25.2", "C3": "ICD9CM 327.52", "C4": "ICD9CM 443.9",
                      "C5": "ICD9CM 250.00", "C6": "ICD9CM 250.02", "C7": "ICD9CM E880.1", "C8": "ICD9CM 244.9"}


def test_a_cramp_coded_in_icd9cm_before_the_transition_makes_the_later_icd10cm_cramp_prevalent(icd9_phenotyped):
    # P1's first cramp is the ICD-9-CM 729.82 of 2014, not the R25.2 of 2017: without ICD-9-CM the 2017 record
    # would pass for a first (incident) cramp.
    assert first_dates(icd9_phenotyped, "leg_cramps") == {"P1": "2014-03-01", "P2": "2015-06-01"}
    # 729.82 is a cramp of any limb; only 327.52 names the leg.
    assert first_dates(icd9_phenotyped, "leg_cramps_leg_specific") == {"P2": "2015-06-01"}


def test_baseline_conditions_coded_in_icd9cm_are_found_with_their_confirmation_rules(icd9_phenotyped):
    assert first_dates(icd9_phenotyped, "peripheral_arterial_disease") == {"P3": "2013-02-01"}  # one inpatient
    assert first_dates(icd9_phenotyped, "diabetes_mellitus") == {"P4": "2014-03-01"}  # two outpatient, 50 days
    assert first_dates(icd9_phenotyped, "hypothyroidism") == {"P5": "2015-09-30"}
    assert first_dates(icd9_phenotyped, "intermittent_claudication") == {}


GIBLEED = SHARED_DATA / "omop" / "eunomia_gibleed_v5.3"
# GiBleed's SNOMED concept 'Concussion injury of brain' (110030002, OMOP 375671 in its CONCEPT.csv) has
# descendants that GiBleed persons are coded with ('Concussion with (no) loss of consciousness').
ANCESTOR_CODE = "110030002"


def _persons_with_descendants_of(folder: Path, snomed_code: str, include_descendants: bool) -> int:
    """Persons with a condition_occurrence whose concept is the SNOMED concept (or descends from it), counted with
    plain DuckDB SQL on the source files."""
    def source(name: str) -> str:
        return f"read_csv('{folder / (name + '.csv')}', header = true, all_varchar = true)"
    descendants = (f"UNION SELECT descendant_concept_id FROM {source('concept_ancestor')} "
                   "WHERE ancestor_concept_id IN (SELECT concept_id FROM listed)") if include_descendants else ""
    return duckdb.connect().execute(f"""
        WITH listed AS (SELECT concept_id FROM {source('concept')}
                        WHERE vocabulary_id = 'SNOMED' AND concept_code = '{snomed_code}'),
             concepts AS (SELECT concept_id FROM listed {descendants})
        SELECT count(DISTINCT person_id) FROM {source('condition_occurrence')}
        WHERE condition_concept_id IN (SELECT concept_id FROM concepts)
    """).fetchone()[0]


@pytest.mark.skipif(not GIBLEED.is_dir(), reason="shared sample extract absent (see ../shared/data/README.md)")
def test_snomed_codes_listed_with_descendants_find_the_descendants_concept_ancestor_names():
    con = duckdb.connect()
    load_extract_any_format(con, GIBLEED)
    con.execute("CREATE SCHEMA phenotype")
    con.execute("CREATE TABLE phenotype.definitions (phenotype_id VARCHAR, domain VARCHAR)")
    con.execute("INSERT INTO phenotype.definitions VALUES ('with_descendants', 'condition'), "
                "('concept_only', 'condition')")
    con.execute("CREATE TABLE phenotype.code_list (phenotype_id VARCHAR, vocabulary VARCHAR, code VARCHAR, "
                "match_type VARCHAR, excluded BOOLEAN)")
    con.execute("INSERT INTO phenotype.code_list VALUES (?, 'SNOMED', ?, 'descendants', false), "
                "(?, 'SNOMED', ?, 'exact', false)", ["with_descendants", ANCESTOR_CODE, "concept_only", ANCESTOR_CODE])
    con.execute(read_sql(RECORD_SPANS_SQL))
    con.execute(read_sql("phenotypes/code_to_phenotype.sql"))
    con.execute(read_sql("phenotypes/condition_records.sql"))
    found = dict(con.execute("SELECT phenotype_id, count(DISTINCT person_id) FROM phenotype_condition_records "
                             "GROUP BY phenotype_id").fetchall())
    expected = _persons_with_descendants_of(GIBLEED, ANCESTOR_CODE, include_descendants=True)
    assert expected > 0
    assert found.get("with_descendants") == expected
    # Listed as exact, the concept matches only itself: its descendants' records do not count.
    assert found.get("concept_only", 0) == _persons_with_descendants_of(GIBLEED, ANCESTOR_CODE, False) < expected
    # Each record once, though it reaches the listed concept both as itself or a descendant and through the map.
    records = con.execute("SELECT count(*) FROM phenotype_condition_records "
                          "WHERE phenotype_id = 'with_descendants'").fetchone()[0]
    assert records == con.execute("""
        SELECT count(*) FROM staging.condition_occurrence AS c
        WHERE c.condition_vocabulary = 'SNOMED'
          AND (c.condition_code = $code
               OR EXISTS (SELECT 1 FROM vocabulary.concept_code_map AS m
                          WHERE m.vocabulary = c.condition_vocabulary AND m.code = c.condition_code
                            AND m.mapping = 'SNOMED ancestor' AND m.mapped_code = $code))
    """, {"code": ANCESTOR_CODE}).fetchone()[0]
