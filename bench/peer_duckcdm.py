"""A peer measured side by side: duckcdm (DuckDB-powered OMOP CDM engine) and this project on the same OMOP extract.

    python3.11 -m venv /tmp/peer-venv && /tmp/peer-venv/bin/pip install duckcdm==0.4.7 duckdb==2.0.1
    python bench/peer_duckcdm.py --extract ../shared/data/omop/eunomia_gibleed_v5.3 --peer-python /tmp/peer-venv/bin/python

duckcdm is never a dependency of the project (it is not in requirements.lock): it runs in its own environment,
named by --peer-python, and this script only starts that interpreter. Each round runs, each in a process of its own
and one after the other (interleaved, so a loaded machine slows both alike):
- ours, ingest: the ingest step's code (pipelines.ingest.formats.load_extract_any_format: format detection, every
  row typed or rejected with file, line, column and reason, the accounting);
- the peer, load: a typed read_csv of every OMOP CDM table file of the folder into DuckDB, with the column types
  of duckcdm's own CDM field list (duckcdm.omop.cdm_fields; columns it does not know stay text), lines that do not
  parse skipped (no reject accounting);
- the peer, Achilles: duckcdm.achilles.run_achilles on that database (the 110 analyses the ATLAS data-source
  reports read), the peer's closest counterpart of our data-quality stage;
- ours, whole study (unless --no-whole-run): the study job through Dagster (pipelines.run.run_study) on a
  throw-away instance: ingest, phenotypes, cohorts, statistics, data quality, publish.
The CPU seconds (user + system of the process and its threads) are the figures to compare; wall seconds and the
load average are shown beside them. The persons each side loaded are printed too (the same person rows should
load on both). Figures go to bench/results/peer_duckcdm.json.

Not measured here (yet): the peer's Circe cohorts (they need cohort definitions written for the peer's concept
sets), so the whole-run comparison is ours against the peer's load + Achilles.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent

_PEER = r"""
import json, os, sys, time
import duckdb
from duckcdm.achilles import run_achilles
from duckcdm.omop import RESULTS_TABLES, cdm_fields

folder, database = sys.argv[1], sys.argv[2]
files = {name.lower().rsplit(".", 1)[0]: os.path.join(folder, name) for name in os.listdir(folder)
         if name.lower().endswith(".csv")}
version = "5.4" if any(name in files for name in ("episode", "episode_event")) else "5.3"
con = duckdb.connect(database)
started, cpu_started = time.time(), time.process_time()
for table, fields in cdm_fields().items():
    if table in RESULTS_TABLES or table not in files:
        continue
    path = files[table]
    with open(path, encoding="utf-8-sig") as handle:
        header = handle.readline().rstrip("\r\n").split(",")
    known = {name: kind for name, kind in fields}
    columns = ", ".join(f"'{name}': '{known.get(name.lower(), 'VARCHAR')}'" for name in header)
    con.execute(f"CREATE TABLE main.{table} AS SELECT * FROM read_csv('{path}', header = true, auto_detect = false, "
                f"columns = {{{columns}}}, ignore_errors = true)")
load = {"cpu_seconds": time.process_time() - cpu_started, "wall_seconds": time.time() - started}
persons = con.execute("SELECT count(*) FROM main.person").fetchone()[0]
started, cpu_started = time.time(), time.process_time()
done, failed = run_achilles(con, cdm_schema="main", results_schema="results", cdm_version=version, log=None)
achilles = {"cpu_seconds": time.process_time() - cpu_started, "wall_seconds": time.time() - started,
            "analyses": len(done), "failed": {str(aid): error for aid, error in failed}}
print(json.dumps({"load": load, "achilles": achilles, "persons": persons, "cdm_version": version}))
"""

_OURS_INGEST = r"""
import json, sys, time
from pathlib import Path
import duckdb
from pipelines.ingest.formats import load_extract_any_format
from pipelines.phenotypes.loader import phenotype_library

folder, database = Path(sys.argv[1]), sys.argv[2]
con = duckdb.connect(database, config={"preserve_insertion_order": "true"})
phenotype_vocabularies = phenotype_library().code_vocabularies()  # read once by the code location, not the step
started, cpu_started = time.time(), time.process_time()
result = load_extract_any_format(con, folder, phenotype_vocabularies=phenotype_vocabularies)
ingest = {"cpu_seconds": time.process_time() - cpu_started, "wall_seconds": time.time() - started}
persons = con.execute("SELECT count(*) FROM staging.person").fetchone()[0]
print(json.dumps({"ingest": ingest, "persons": persons, "format": result.extract_format}))
"""

_OURS_WHOLE_RUN = r"""
import json, sys, time
from pathlib import Path
started, cpu_started = time.time(), time.process_time()
import dagster as dg
from pipelines.run import run_study

folder, database, home = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
max_reject_share = float(sys.argv[4]) if len(sys.argv) > 4 else None
with dg.instance_for_test(temp_dir=home) as instance:
    result = run_study(folder, database, instance=instance, max_reject_share=max_reject_share)
print(json.dumps({"whole_run": {"cpu_seconds": time.process_time() - cpu_started,
                                "wall_seconds": time.time() - started, "success": result.success}}))
"""


def _load_average() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def run_child(python: str, code: str, arguments: list[str], pythonpath: Path | None) -> dict:
    environment = dict(os.environ)
    environment.pop("PYTHONPATH", None)
    if pythonpath is not None:
        environment["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run([python, "-c", code, *arguments], env=environment, capture_output=True, text=True,
                          cwd=pythonpath or None)
    if done.returncode:
        raise SystemExit(f"{python}: the run failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["load_average"] = _load_average()
    return figures


def one_round(extract: Path, peer_python: str, whole_run: bool, max_reject_share: float | None = None) -> dict:
    figures = {}
    with tempfile.TemporaryDirectory(prefix="legcramp-peer-") as tmp:
        work = Path(tmp)
        figures["ours"] = run_child(sys.executable, _OURS_INGEST, [str(extract), str(work / "ours.duckdb")],
                                    PROJECT_DIR)
        figures["peer"] = run_child(peer_python, _PEER, [str(extract), str(work / "peer.duckdb")], None)
        if whole_run:
            (work / "dagster_home").mkdir()
            (work / "dagster_home" / "dagster.yaml").write_text((PROJECT_DIR / "dagster.yaml").read_text())
            figures["ours"].update(run_child(sys.executable, _OURS_WHOLE_RUN, [
                str(extract), str(work / "study.duckdb"), str(work / "dagster_home"),
                *([str(max_reject_share)] if max_reject_share is not None else [])], PROJECT_DIR))
    return figures


def print_round(number: int, figures: dict) -> None:
    ours, peer = figures["ours"], figures["peer"]

    def cell(part: dict) -> str:
        return f"{part['cpu_seconds']:8.1f} CPU s {part['wall_seconds']:8.1f} wall s"

    print(f"round {number} (load {' '.join(peer['load_average'])})")
    print(f"  ours: ingest             {cell(ours['ingest'])}   {ours['persons']:,} persons ({ours['format']})")
    print(f"  peer: typed load         {cell(peer['load'])}   {peer['persons']:,} persons (CDM {peer['cdm_version']})")
    failed = peer["achilles"]["failed"]
    print(f"  peer: Achilles           {cell(peer['achilles'])}   {peer['achilles']['analyses']} analyses"
          + (f", failed: {', '.join(failed)} ({next(iter(failed.values()))})" if failed else ""))
    if "whole_run" in ours:
        print(f"  ours: whole study        {cell(ours['whole_run'])}   success {ours['whole_run']['success']}")
    print(f"  ingest / peer's load: CPU {ours['ingest']['cpu_seconds'] / peer['load']['cpu_seconds']:.1f}x")
    if "whole_run" in ours:
        peer_total = peer["load"]["cpu_seconds"] + peer["achilles"]["cpu_seconds"]
        print(f"  whole study / peer's load + Achilles: CPU {ours['whole_run']['cpu_seconds'] / peer_total:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description="duckcdm and this project side by side on one OMOP extract.")
    parser.add_argument("--extract", type=Path, required=True, help="an OMOP CDM v5.3/v5.4 folder of CSV files")
    parser.add_argument("--peer-python", required=True,
                        help="the Python of an environment with duckcdm==0.4.7 and duckdb (not the project's)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-whole-run", dest="whole_run", action="store_false",
                        help="compare the ingest with the peer's load only")
    parser.add_argument("--max-reject-share", type=float,
                        help="the whole run's reject limit (Eunomia GiBleed needs 0.5, as its test: most of its drug "
                             "records name no ingredient the study reads)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "peer_duckcdm.json")
    args = parser.parse_args()

    rounds = []
    for number in range(1, args.rounds + 1):
        figures = one_round(args.extract.resolve(), args.peer_python, args.whole_run, args.max_reject_share)
        print_round(number, figures)
        rounds.append(figures)
    peer_version = subprocess.run([args.peer_python, "-c", "import duckcdm, duckdb; "
                                   "print(getattr(duckcdm, '__version__', '?'), duckdb.__version__)"],
                                  capture_output=True, text=True).stdout.split()
    args.out.write_text(json.dumps({"extract": str(args.extract), "peer": {"duckcdm": peer_version[:1],
                                                                           "duckdb": peer_version[1:]},
                                    "cores": os.cpu_count(), "rounds": rounds}, indent=2))
    print(f"figures: {args.out}")


if __name__ == "__main__":
    main()
