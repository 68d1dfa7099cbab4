"""Attrition and Table 1 of the bundled study against values computed from the generator's truth.

The reference (tests/support/cohort_reference.py) applies the study's inclusion steps person by person in Python,
from the truth file's birth years, deaths and first leg-cramp dates; only observation periods and visits, which
the truth file does not list, come from the loaded extract.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from pipelines.cohorts import load_studies
from tests.support.cohort_reference import person_records_from_truth, reference_attrition, reference_population


@pytest.fixture(scope="module")
def built(generated_extract, study_database):
    folder = generated_extract(3_000, 17, defect_rate=0.0).path
    con = duckdb.connect(str(study_database(3_000, 17, defect_rate=0.0)), read_only=True)
    truth = pd.read_parquet(folder / "_truth" / "persons.parquet")
    study = load_studies()["leg_cramps"]
    records = person_records_from_truth(
        study, truth,
        con.sql("SELECT * FROM staging.observation_period").df(),
        con.sql("SELECT * FROM staging.visit_occurrence").df())
    yield con, study, truth, records
    con.close()


def test_attrition_equals_the_reference_from_truth(built):
    con, study, _, records = built
    published = con.execute(
        "SELECT step_code, persons_before, persons_after, persons_removed, suppressed FROM results.attrition "
        "WHERE study_id = 'leg_cramps' ORDER BY step_order").fetchall()
    expected = reference_attrition(study, records)
    assert [row[0] for row in published] == [row[0] for row in expected]
    for row, reference in zip(published, expected):
        if not row[4]:  # suppressed small counts are not published
            assert row[:4] == reference, row[0]
    assert published[-1][2] == sum(1 for r in reference_population(study, records).values()
                                   if r.exclusion_reason is None)


def test_table1_sex_counts_and_mean_age_equal_the_reference(built):
    con, study, truth, records = built
    included = {pid: r for pid, r in reference_population(study, records).items() if r.exclusion_reason is None}
    people = truth.set_index("person_id").loc[list(included)]
    women = int((people["sex"] == "F").sum())
    # Age in whole years at index, from the full birth date where the extract has one (else the year), as written.
    birth_dates = dict(con.execute("SELECT person_id, birth_date FROM staging.person").fetchall())

    def age(pid, day):
        born = birth_dates.get(pid)
        if born is None:
            return day.year - int(people.loc[pid, "year_of_birth"])
        return day.year - born.year - (0 if (day.month, day.day) >= (born.month, born.day) else 1)

    ages = [age(pid, r.index_date) for pid, r in included.items()]
    published_women = con.execute(
        "SELECT count FROM results.table1 WHERE study_id = 'leg_cramps' AND variable = 'sex' AND level = 'F' "
        "AND \"group\" = 'overall' AND statistic = 'n_pct'").fetchone()[0]
    published_mean = con.execute(
        "SELECT mean FROM results.table1 WHERE study_id = 'leg_cramps' AND variable = 'age_at_index' "
        "AND \"group\" = 'overall' AND statistic = 'mean_sd'").fetchone()[0]
    assert published_women == women
    assert published_mean == pytest.approx(sum(ages) / len(ages), abs=1e-9)
