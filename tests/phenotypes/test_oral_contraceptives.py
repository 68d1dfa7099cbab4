"""oral_contraceptives by RxNorm ingredient (phenotypes/drugs/oral_contraceptives.yaml, version 2): a record coded
with ethinyl estradiol (4124) or levonorgestrel (6373) is found, through the compiled SQL on a real DuckDB database;
the ATC route (G03A) still finds a combined pill; another ingredient does not count."""

from __future__ import annotations

from datetime import date

import duckdb

from pipelines.phenotypes import run_phenotypes
from tests.support.phenotype_staging import create_staging_tables, insert_rows

FILLS = [  # person, vocabulary, code, day
    ("ethinyl_estradiol", "RxNorm", "4124", "2020-02-01"),
    ("levonorgestrel", "RxNorm", "6373", "2020-03-01"),
    ("levonorgestrel", "RxNorm", "6373", "2020-04-01"),
    ("combined_pill_by_atc", "ATC", "G03AA07", "2020-05-01"),  # levonorgestrel and ethinylestradiol
    ("norethindrone", "RxNorm", "7514", "2020-06-01"),  # an ingredient the class does not list
]


def test_a_record_coded_by_either_ingredient_is_found():
    con = duckdb.connect()
    create_staging_tables(con)
    insert_rows(con, "person", [{"person_id": p, "year_of_birth": 1990, "sex": "F"} for p in {f[0] for f in FILLS}])
    insert_rows(con, "drug_exposure", [
        {"drug_exposure_id": f"d{i}", "person_id": person, "drug_vocabulary": vocabulary, "drug_code": code,
         "drug_exposure_start_date": day, "drug_exposure_end_date": day}
        for i, (person, vocabulary, code, day) in enumerate(FILLS)])
    run_phenotypes(con)
    found = dict(((person, (first, count)) for person, first, count in con.execute(
        "SELECT person_id, first_date, event_count FROM phenotype.person_summary "
        "WHERE phenotype_id = 'oral_contraceptives'").fetchall()))
    assert found == {"ethinyl_estradiol": (date(2020, 2, 1), 1), "levonorgestrel": (date(2020, 3, 1), 2),
                     "combined_pill_by_atc": (date(2020, 5, 1), 1)}
