"""Profile the data-quality suite of one staging table: CPU seconds and memory per SQL check, and the whole suite
through GX.

    python bench/profile_checks.py --database <a built database> --table drug_exposure [--memory-limit 5GB]

The staging checks are the slowest stage after the ingest (docs/performance.md). This runs, on a copy of a built
database (a published one, or `bench/run_benchmark.py --keep-database`'s bench/results/bench_<N>.duckdb):
- every SQL check of the table's suite (expect_no_violating_rows, expectations/staging/<table>.json) on its own,
  as the count of the rows it returns, and prints its wall and CPU seconds (of the process: DuckDB's threads), the
  peak of DuckDB's buffer memory and the bytes it spilled to disk (its JSON query profile), and that count;
- the whole suite through the real runner (pipelines/quality/runner.py: GX, the gx_duckdb workaround, recording in
  dq.check_results), whose time also covers GX's column expectations (not null, value sets, ranges: one query
  per table) and GX's own overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from pipelines import paths
from pipelines.quality import runner
from pipelines.quality.valid_codes import ensure_valid_icd10cm_codes
from pipelines.sql_quoting import qualified_name, quote_literal


def sql_checks(table: str) -> list[tuple[str, str]]:
    """(name, query) of every SQL check of the table's staging suite, with {batch} standing for the table."""
    suite = json.loads((paths.EXPECTATIONS_DIR / "staging" / f"{table}.json").read_text())
    checks = []
    for expectation in suite["expectations"]:
        query = expectation["kwargs"].get("unexpected_rows_query")
        if query:
            # GX formats the query with str.format-like escaping: {{ }} stand for literal braces.
            query = query.replace("{batch}", f"staging.{table}").replace("{{", "{").replace("}}", "}")
            checks.append((expectation["meta"]["name"], query))
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description="Seconds per data-quality check of one staging table.")
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--memory-limit", default="5GB")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="legcramp-profile-checks-") as tmp:
        database = Path(tmp) / "profiled.duckdb"
        shutil.copy(args.database, database)
        config = {"memory_limit": args.memory_limit, "temp_directory": str(Path(tmp) / "spill")}
        con = duckdb.connect(str(database), config=config)
        ensure_valid_icd10cm_codes(con)  # the ICD-10-CM existence check reads it
        rows = con.execute(f"SELECT count(*) FROM {qualified_name('staging', args.table)}").fetchone()[0]
        print(f"staging.{args.table}: {rows:,} rows; each SQL check on its own "
              f"(wall s, CPU s, peak buffer memory, spilled):")
        query_profile = Path(tmp) / "query_profile.json"
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = {quote_literal(query_profile)}")
        total = 0.0
        for name, query in sql_checks(args.table):
            started, cpu_started = time.time(), os.times()
            [(violating,)] = con.execute(f"SELECT count(*) FROM ({query}) AS violating_rows").fetchall()
            seconds, cpu_ended = time.time() - started, os.times()
            cpu = (cpu_ended.user - cpu_started.user) + (cpu_ended.system - cpu_started.system)
            system = json.loads(query_profile.read_text())["system"]
            total += cpu
            print(f"  {name:<55}{seconds:>7.1f} s{cpu:>7.1f} s{system['peak_buffer_memory'] / 1e9:>7.2f} GB"
                  f"{system['total_bytes_spilled'] / 1e9:>7.2f} GB {violating:>12,} violating rows")
        con.execute("PRAGMA disable_profiling")
        con.close()
        print(f"  {'all SQL checks (CPU)':<62}{total:>7.1f} s")

        started, cpu_started = time.time(), os.times()
        runner.run_suite(database, f"staging.{args.table}", build_data_docs=False, duckdb_config=config)
        cpu_ended = os.times()
        print(f"the whole suite through GX (runner.run_suite): {time.time() - started:.1f} s, "
              f"{cpu_ended.user + cpu_ended.system - cpu_started.user - cpu_started.system:.1f} CPU s")


if __name__ == "__main__":
    main()
