"""Benchmark a small extract end to end, as a new user runs it: `legcramp-run` on N patients (default 100).

    python bench/small_extract.py [--patients 100] [--seed 1] [--code PATH] [--out FILE]

Each command runs in its own process, timed from outside (wall, and user+sys CPU of the process and its
children), with a throw-away Dagster instance:
- `legcramp-run --check` on the extract;
- `legcramp-run` on a copy whose person.csv lacks person_id (how soon a layout error is reported);
- `legcramp-run` on the extract (the whole study), run as `bench/profile_small_run.py -- <legcramp-run arguments>`
  (the same `pipelines.run.main` in one process, with its CPU sampled): the wall and CPU seconds of each stage read
  from the run's Dagster step windows, the CPU outside the steps (imports, building the definitions, run set-up),
  the time from the process start to the first step, and the number of asset-check results and events the run
  wrote.
--code PATH measures another checkout of the project (e.g. `git archive main | tar -x -C /tmp/main`) with this
benchmark, so that two versions can be measured one after the other under the same machine load.
The machine is shared, so the load average before and after each command is printed beside it: compare CPU
seconds between machines, wall seconds only on a quiet one. Figures go to bench/results/small_extract.json.

What the whole study published is fingerprinted too (`published` in the figures): every table of the published
database (row count and an md5 of its sorted rows) and every file of its outputs (plots, reports, Data Docs), with
what differs from run to run by design written out first (the run's ids and times, the benchmark's temporary
folder, the random ids matplotlib gives an SVG's clip paths, dq.check_results' run_id and checked_at). Two versions'
outputs are compared with

    python bench/small_extract.py --compare-published BEFORE.json AFTER.json

which prints each table and file whose fingerprint differs (exit 1 when any does).
"""

from __future__ import annotations

import argparse
import json
import os
import hashlib
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPOSITORY = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPOSITORY))  # pipelines.sql_quoting, for the fingerprints' SQL

# Columns that say which run wrote a row and when: left out of the tables' fingerprints.
RUN_COLUMNS = ("run_id", "checked_at")
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Written out of the outputs' text before hashing: times (2026-12-06 01:50, 2026-12-06T01:50:00.123+00:00,
# GX's 20261206T015000.123456Z), an SVG's <dc:date>, and the ids matplotlib salts anew for every SVG it writes
# (svg.hashsalt unset: ten hex digits after a letter or a path collection's C<n>_<n>_, in id="..." and url(#...) /
# href="#...").
OUTPUT_NOISE = (
    (re.compile(UUID_PATTERN), "<uuid>"),
    (re.compile(r"\d{8}T\d{6}(\.\d+)?Z"), "<time>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}| UTC)?"), "<time>"),
    (re.compile(r"<dc:date>[^<]*</dc:date>"), "<dc:date/>"),
    (re.compile(r'(?<=id=")(C[0-9a-f]+_[0-9a-f]+_)?[A-Za-z]?[0-9a-f]{10}(?=")'
                r'|(?<=#)(C[0-9a-f]+_[0-9a-f]+_)?[A-Za-z]?[0-9a-f]{10}\b'), "<svg-id>"),
)
TEXT_SUFFIXES = {".svg", ".html", ".md", ".json", ".js", ".css", ".txt", ".csv", ".jsonl"}


def timed(command: list[str], env: dict[str, str]) -> dict:
    """Run `command`; its wall and CPU seconds (user+sys of the process and its children), exit code, load."""
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    completed = subprocess.run(command, env=env, cwd=env.get("PYTHONPATH", REPOSITORY), capture_output=True, text=True)
    wall = time.time() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "command": " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command)),
        "exit": completed.returncode,
        "wall_s": round(wall, 2),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "started_at": started,
        "stderr_tail": completed.stderr.strip().splitlines()[-3:],
    }


def run_figures(started_at: float, profile: dict) -> dict:
    """The whole-study figures `bench/profile_small_run.py` measured inside the run's process (stages and steps
    from the run's Dagster step events, events by type), with the time from this command's start to the first
    step."""
    first_step = profile.pop("first_step_at")
    return {**profile, "start_up_s": round(first_step - started_at, 2) if first_step else None}


def _without_noise(text: str, work: Path) -> str:
    text = text.replace(str(work), "<work>")
    for pattern, replacement in OUTPUT_NOISE:
        text = pattern.sub(replacement, text)
    return text


def published_fingerprints(database: Path, outputs: Path, work: Path) -> dict:
    """Every table of the published `database` (rows, md5 of its rows as text in sorted order, RUN_COLUMNS left
    out) and every file under `outputs` (md5, text files after _without_noise), so that two versions' outputs can
    be compared."""
    import duckdb

    from pipelines.sql_quoting import qualified_name, quote_identifier, quote_literal

    tables = {}
    con = duckdb.connect(str(database), read_only=True)
    try:
        listed = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
        for schema, table in listed:
            columns = [name for (name,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "ORDER BY column_index", [schema, table]).fetchall() if name not in RUN_COLUMNS]
            row_text = (f"regexp_replace(replace(CAST(t AS VARCHAR), {quote_literal(str(work))}, '<work>'), "
                        f"{quote_literal(UUID_PATTERN)}, '<uuid>', 'g')")
            rows, digest = con.execute(
                f"SELECT count(*), md5(coalesce(string_agg(x, chr(10) ORDER BY x), '')) FROM (SELECT {row_text} AS x "
                f"FROM (SELECT {', '.join(map(quote_identifier, columns))} FROM {qualified_name(schema, table)}) t)"
            ).fetchone()
            tables[f"{schema}.{table}"] = {"rows": rows, "md5": digest}
    finally:
        con.close()
    files = {}
    for path in sorted(p for p in outputs.resolve().rglob("*") if p.is_file()):
        name = _without_noise(str(path.relative_to(outputs.resolve())), work)
        content = path.read_bytes()
        if path.suffix in TEXT_SUFFIXES or not path.suffix:  # GX's .ge_store_backend_id holds a random id
            content = _without_noise(content.decode("utf-8", errors="replace"), work).encode()
        files[name] = hashlib.md5(content).hexdigest()
    return {"tables": tables, "files": files}


def compare_published(before: Path, after: Path) -> int:
    """Print the tables and files whose fingerprints differ between two figures files; 1 when any does."""
    first, second = (json.loads(path.read_text())["whole_study"]["published"] for path in (before, after))
    differences = 0
    for kind in ("tables", "files"):
        names = sorted(set(first[kind]) | set(second[kind]))
        differing = [name for name in names if first[kind].get(name) != second[kind].get(name)]
        print(f"{kind}: {len(names) - len(differing)} of {len(names)} identical")
        for name in differing:
            print(f"  differs: {name}: {first[kind].get(name)} -> {second[kind].get(name)}")
        differences += len(differing)
    return 1 if differences else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--code", type=Path, default=REPOSITORY, help="the checkout of the project to measure")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "small_extract.json", help="figures (JSON)")
    parser.add_argument("--compare-published", type=Path, nargs=2, metavar=("BEFORE", "AFTER"),
                        help="compare the published fingerprints of two figures files, and run nothing")
    args = parser.parse_args(argv)
    if args.compare_published:
        return compare_published(*args.compare_published)
    code = args.code.resolve()

    work = Path(tempfile.mkdtemp(prefix="legcramp_small_bench_"))
    try:
        dagster_home = work / "dagster_home"
        dagster_home.mkdir()
        shutil.copy(code / "dagster.yaml", dagster_home / "dagster.yaml")
        env = {**os.environ, "PYTHONPATH": str(code), "DAGSTER_HOME": str(dagster_home),
               "GX_ANALYTICS_ENABLED": "false", "DAGSTER_DISABLE_TELEMETRY": "1"}
        extract = work / "extract"
        generate = timed([str(BIN / "legcramp-generate"), "--patients", str(args.patients), "--seed",
                          str(args.seed), "--out", str(extract)], env)
        broken = shutil.copytree(extract, work / "broken")
        lines = (broken / "person.csv").read_text().splitlines(keepends=True)
        (broken / "person.csv").write_text(lines[0].replace("person_id", "patient_ref", 1) + "".join(lines[1:]))

        check = timed([str(BIN / "legcramp-run"), "--check", "--extract", str(extract)], env)
        refused = timed([str(BIN / "legcramp-run"), "--extract", str(broken), "--db", str(work / "broken.duckdb")],
                        env)
        whole = timed([sys.executable, str(BENCH_DIR / "profile_small_run.py"), "--out", str(work / "profile.json"),
                       "--", "--extract", str(extract), "--db", str(work / "site.duckdb")], env)
        figures = run_figures(whole["started_at"], json.loads((work / "profile.json").read_text()))
        published = (published_fingerprints(work / "site.duckdb", work / "site_outputs", work)
                     if whole["exit"] == 0 else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "patients": args.patients,
        "seed": args.seed,
        "code": str(code),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "generate": generate,
        "check": check,
        "broken_layout_refused": refused,
        # The command as timed from outside (wall and CPU with its children, exit); then what the run measured.
        "whole_study": {**whole, "run": figures, "published": published},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{args.patients} patients, {os.cpu_count()} CPUs ({platform.platform()})")
    print(f"{'command':<40} {'exit':>4} {'wall s':>8} {'CPU s':>8} {'load before/after':>18}")
    for name, figure in (("legcramp-run --check", check), ("legcramp-run, person.csv without person_id", refused),
                         ("legcramp-run (whole study)", whole)):
        print(f"{name:<40} {figure['exit']:>4} {figure['wall_s']:>8.1f} {figure['cpu_s']:>8.1f} "
              f"{figure['load_before']:>9.1f}/{figure['load_after']:<8.1f}")
    print(f"start-up (process start to first Dagster step): {figures['start_up_s']} s wall")
    for name, seconds in figures["cpu_s_outside_steps"].items():
        print(f"  {name:<40} {seconds:8.1f} s CPU")
    for stage, seconds in figures["stages_wall_s"].items():
        print(f"  {stage:<40} {seconds:8.1f} s wall {figures['stages_cpu_s'].get(stage, 0):8.1f} s CPU")
    print(f"asset-check results: {figures['asset_check_results']}, Dagster events: {figures['events']}")
    print(f"figures: {args.out}")
    return 0 if whole["exit"] == 0 and check["exit"] == 0 and refused["exit"] == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
