"""The phenotype truth check at any scale: every planted phenotype's persons and first dates in a database's
phenotype.person_summary against the generator's truth (tests/phenotypes/test_phenotypes_against_truth.py does the
same on a small extract, in Python sets; here it is SQL, so 1,000,000 patients take seconds).

    nice .venv/bin/python bench/phenotype_truth.py --extract /work/bench_data/csv_1000000 --db staged.duckdb
    nice .venv/bin/python bench/phenotype_truth.py --extract DIR --db FILE --run-phenotypes   # recompute first

--run-phenotypes runs the phenotype stage of this tree on the database's staging tables first (it writes the
phenotype schema: use a copy of a shared database). Prints one line per phenotype (found, planted, planted persons
not found with that first date, found not planted) and the total; exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.sql_quoting import quote_identifier, quote_literal  # noqa: E402
from pipelines.synthetic.catalog import PHENOTYPE_IDS  # noqa: E402


def truth_mismatches(con: duckdb.DuckDBPyConnection, truth_persons: Path) -> dict[str, tuple[int, int, int, int]]:
    """{phenotype: (found, planted, missing, extra)}: persons with their first date in phenotype.person_summary and
    in the truth's persons.parquet; missing = planted (person, date) pairs not found, extra = found ones not planted."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW truth AS SELECT * FROM read_parquet({quote_literal(str(truth_persons))})")
    result = {}
    for phenotype_id in PHENOTYPE_IDS:
        column = quote_identifier(f"{phenotype_id}_date")
        result[phenotype_id] = con.execute(f"""
            WITH found AS (SELECT person_id, first_date FROM phenotype.person_summary WHERE phenotype_id = ?),
                 planted AS (SELECT person_id, {column} AS first_date FROM truth WHERE {column} IS NOT NULL)
            SELECT (SELECT count(*) FROM found), (SELECT count(*) FROM planted),
                   (SELECT count(*) FROM (SELECT * FROM planted EXCEPT SELECT * FROM found)),
                   (SELECT count(*) FROM (SELECT * FROM found EXCEPT SELECT * FROM planted))""",
            [phenotype_id]).fetchone()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extract", type=Path, required=True, help="generated extract folder (with _truth/)")
    parser.add_argument("--db", type=Path, required=True, help="DuckDB file with staging.* (and phenotype.*)")
    parser.add_argument("--run-phenotypes", action="store_true", help="run the phenotype stage first")
    parser.add_argument("--memory-limit", default="5GB")
    args = parser.parse_args()

    con = duckdb.connect(str(args.db), read_only=not args.run_phenotypes,
                         config={"memory_limit": args.memory_limit})
    if args.run_phenotypes:
        from pipelines.phenotypes import run_phenotypes

        started, before = time.time(), resource.getrusage(resource.RUSAGE_SELF)
        run_phenotypes(con)
        after = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"phenotype_stage_wall_s": round(time.time() - started, 1),
                          "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
                          "load": open("/proc/loadavg").read().split()[:3]}), flush=True)
    mismatches = truth_mismatches(con, args.extract / "_truth" / "persons.parquet")
    con.close()
    for phenotype_id, (found, planted, missing, extra) in mismatches.items():
        print(f"{phenotype_id:45} found {found:>9,} planted {planted:>9,} missing {missing} extra {extra}")
    total = sum(missing + extra for _, _, missing, extra in mismatches.values())
    print(f"phenotypes {len(mismatches)} mismatches {total}")
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main())
