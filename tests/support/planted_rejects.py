"""A hand-written canonical extract with one planted reject on most lines, and the rejects the ingest must find.

Used by the ingest tests and by every test that needs a run whose ingest rejects something.
"""

from __future__ import annotations

from pathlib import Path

# A small extract with one planted problem per line that the comments name. Line numbers count the header as 1.
FIXTURE = {
    "person.csv": """person_id,year_of_birth,sex,site_id
P1,1950,female,A
P2,19x0,M,A
P3,1960,M,B
,1970,F,B
P3,1961,M,B
P4,1980,U
P5,1990,Male,B
""",
    # line 3 unparseable_number, line 5 missing_required_field, line 6 duplicate_primary_key, line 7 malformed_line
    "observation_period.csv": """observation_period_id,person_id,observation_period_start_date,observation_period_end_date
1,P1,2015-01-01,2020-12-31
2,P3,2015-01-01,2019-12-31
3,P9,2015-01-01,2019-12-31
4,P2,2015-01-01,2019-12-31
""",
    # line 4 unknown_person (P9 never existed), line 5 unknown_person (P2 was rejected)
    "visit_occurrence.csv": """visit_occurrence_id,person_id,visit_type,visit_start_date,visit_end_date
V1,P1,OP,2016-01-01,
V2,P1,Inpatient,2016-02-01,2016-02-03
V3,P3,ER,2017-01-01,2017-01-01
""",
    "condition_occurrence.csv": """condition_occurrence_id,person_id,condition_vocabulary,condition_code,condition_start_date,condition_end_date,visit_occurrence_id
C1,P1,ICD-10-CM,R252,2016-01-01,,V1
C2,P1,snomed ct,55300003,2016-13-01,,V1
C3,P3,icd10cm,e11.9,2017-01-01,,
C1,P3,ICD10CM,E11.9,2017-01-01,,
C4,P3,ICD10CM,E11.9
C5,P3,ICD10CM,,2017-01-01,,
C6,P5,SNOMED,449918009,31/12/2019,,
C7,P5,ICD10CM,G20,2018-05-05,,
""",
    # line 3 unparseable_date, 5 duplicate_primary_key, 6 malformed_line, 7 missing_required_field, 8 unparseable_date
    "drug_exposure.csv": """drug_exposure_id,person_id,drug_vocabulary,drug_code,drug_exposure_start_date,drug_exposure_end_date,days_supply,quantity,visit_occurrence_id
D1,P1,RxNorm,5487,2016-01-01,,30,30,
D2,P1,ATC,c03aa03,2016-02-01,,abc,30,
D3,P3,atc,C10AA05,2016-02-01,2016-03-01,90,90,
D4,P3,ATC,C10AA05,2016-06-01,,,,
""",
    # line 3 unparseable_number
    "measurement.csv": """measurement_id,person_id,measurement_vocabulary,measurement_code,measurement_date,value_as_number,unit,laterality,visit_occurrence_id
M1,P1,LOINC,2951-2,2016-01-01,133,mmol/L,,
M2,P1,SNOMED,446841001,2016-01-01,0.85,ratio,left,
M3,P1,SNOMED,446841001,2016-01-01,1.05,ratio,Right,
M4,P3,LOINC,19123-9,2016-01-01,1.2.3,mg/dL,,
""",
    # line 5 unparseable_number
    "procedure_occurrence.csv": """procedure_occurrence_id,person_id,procedure_vocabulary,procedure_code,procedure_date,visit_occurrence_id
PR1,P1,CPT4,93922,2016-01-01,V1
""",
    "death.csv": """person_id,death_date
P3,2019-06-30
P3,2019-07-01
""",
    # line 3 duplicate_primary_key
}

EXPECTED_REJECTS = {
    ("person", 3, "unparseable_number", "year_of_birth"),
    ("person", 5, "missing_required_field", "person_id"),
    ("person", 6, "duplicate_primary_key", "person_id"),
    ("person", 7, "malformed_line", None),
    ("observation_period", 4, "unknown_person", "person_id"),
    ("observation_period", 5, "unknown_person", "person_id"),
    ("condition_occurrence", 3, "unparseable_date", "condition_start_date"),
    ("condition_occurrence", 5, "duplicate_primary_key", "condition_occurrence_id"),
    ("condition_occurrence", 6, "malformed_line", None),
    ("condition_occurrence", 7, "missing_required_field", "condition_code"),
    ("condition_occurrence", 8, "unparseable_date", "condition_start_date"),
    ("drug_exposure", 3, "unparseable_number", "days_supply"),
    ("measurement", 5, "unparseable_number", "value_as_number"),
    ("death", 3, "duplicate_primary_key", "person_id"),
}


# The fixture plants a reject on most of its lines (4 of person's 7 records, 5 of condition_occurrence's 8): a run of
# the whole job on it stops at the ingest's reject-share checks (default 1%) unless it accepts that share.
FIXTURE_MAX_REJECT_SHARE = 0.75


def accepting_fixture_rejects(run_config: dict) -> dict:
    """`run_config` (resources.extract.config) with the reject share a run on the fixture needs."""
    run_config["resources"]["extract"]["config"]["max_reject_share"] = FIXTURE_MAX_REJECT_SHARE
    return run_config


def write_fixture(folder: Path, files: dict[str, str] = FIXTURE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder
