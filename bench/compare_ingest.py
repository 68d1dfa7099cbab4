"""The ingest of two checkouts on the same extract: CPU seconds, interleaved, and whether their outputs are identical.

    python bench/compare_ingest.py --extract /tmp/extract --before /tmp/before_checkout [--after .] [--rounds 2]

Each round runs the ingest of each checkout (pipelines.ingest.loader.load_extract, the ingest step's code) in a
process of its own, before then after, so a loaded machine slows both alike; the CPU seconds (user + system of the
process and its threads) are the figures to compare, wall seconds are shown beside them with the load average.
Every run prints, and the comparison checks, the fingerprint of each staging table (pipelines/engine/fingerprint.py:
row count and hash sums, independent of row order), the staging rows in order (the sum of each row's hash with its rowid:
later stages' "first record" rules read the order), every reject row (file, line, column, reason, detail, record)
and the load counts: a speed change must leave all of them identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs inside the checkout's own process (its pipelines package first on the path).
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import duckdb
from pipelines import extract_spec as spec
from pipelines.engine.fingerprint import table_fingerprint
from pipelines.ingest import loader

extract, database, memory_limit = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
con = duckdb.connect(database, config={"preserve_insertion_order": "true", "memory_limit": memory_limit})
con.execute("SET enable_progress_bar = false")
started, cpu_started = time.time(), time.process_time()
loader.load_extract(con, extract)
cpu, wall = time.process_time() - cpu_started, time.time() - started


class Engine:  # the fingerprint's engine interface over this connection
    def records(self, sql):
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


outputs = {}
for table in spec.TABLES:
    fingerprint = table_fingerprint(Engine(), f"staging.{table.name}")
    # Position-tied: a row hashed with its position, so the same rows in another order sum differently. The
    # position, not the rowid: rowid values (the gaps left by deleted rejects) follow DuckDB's storage layout,
    # which no later stage reads.
    ordered = con.execute(f"SELECT CAST(sum(hash(position, row)) AS VARCHAR) FROM (SELECT row_number() OVER "
                          f"(ORDER BY rowid) AS position, t AS row FROM staging.{table.name} t)").fetchone()[0]
    outputs[f"staging.{table.name}"] = [fingerprint.rows, list(fingerprint.hash_sums), ordered]
outputs["ingest.rejects"] = con.execute(
    "SELECT count(*), md5(string_agg(md5(CAST(r AS VARCHAR)), '' ORDER BY table_name, line, column_name, reason)) "
    "FROM ingest.rejects r").fetchone()
outputs["ingest.load_counts"] = [list(map(str, row)) for row in con.execute(
    "SELECT * FROM ingest.load_counts ORDER BY table_name").fetchall()]
print("COMPARE_INGEST_FIGURES " + json.dumps({"cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2), "load": open("/proc/loadavg").read().split()[:3],
                  "outputs": outputs}, default=str), flush=True)
"""


def run_ingest(code: Path, extract: Path, memory_limit: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="legcramp-compare-ingest-") as tmp:
        environment = {**os.environ, "PYTHONPATH": str(code.resolve())}
        done = subprocess.run([sys.executable, "-c", _CHILD, str(extract), str(Path(tmp) / "compare.duckdb"),
                               memory_limit], cwd=code, env=environment, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{code}: the ingest failed:\n{done.stderr[-3000:]}")
    figures = [line for line in done.stdout.splitlines() if line.startswith("COMPARE_INGEST_FIGURES ")]
    if not figures:
        raise SystemExit(f"{code}: the ingest printed no figures:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(figures[-1].split(" ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description="Compare the ingest of two checkouts on one extract.")
    parser.add_argument("--extract", type=Path, required=True)
    parser.add_argument("--before", type=Path, required=True, help="the checkout before the change")
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-limit", default="5GB")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for round_number in range(1, args.rounds + 1):
        for label, code in (("before", args.before), ("after", args.after)):
            run = run_ingest(code, args.extract, args.memory_limit)
            runs[label].append(run)
            print(f"round {round_number} {label:<6} CPU {run['cpu_seconds']:7.1f} s  wall {run['wall_seconds']:7.1f} s"
                  f"  load {' '.join(run['load'])}", flush=True)
    reference = runs["before"][0]["outputs"]
    differing = sorted({name for run in runs["before"] + runs["after"] for name, value in run["outputs"].items()
                        if value != reference.get(name)})
    print("outputs identical (staging fingerprints and row order, rejects, load counts)" if not differing
          else f"OUTPUTS DIFFER: {', '.join(differing)}")
    if args.out:
        args.out.write_text(json.dumps({"extract": str(args.extract), "runs": runs, "differing": differing},
                                       indent=2, default=str))
    if differing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
