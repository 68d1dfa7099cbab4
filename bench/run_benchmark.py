"""Benchmark the whole study on a synthetic extract of N patients and print one table of figures.

    python bench/run_benchmark.py --patients 1000000 [--format csv|parquet] [--memory-limit 6GB]
    python bench/run_benchmark.py --patients 100000 1000000     # also: how each stage scales with N
    python bench/run_benchmark.py --patients 20000 --engine spark   # also: the phenotype and cohort stages on Spark
    python bench/run_benchmark.py --patients 1000000 --peer-python /tmp/peer-venv/bin/python   # also: the duckcdm peer
    make bench N=1000000
    make bench N="100000 1000000"

It generates the extract once (bench/data/<format>_<N>/, reused afterwards), runs the study job through Dagster's
execution API against a throw-away instance, and reports per stage (ingest, phenotypes, cohorts, statistics, data
quality, publish) the wall time, the peak resident memory of this process during the stage and rows per second,
next to two reference figures measured in the same run on the same files:
- DuckDB's plain load: CREATE TABLE ... AS SELECT * FROM read_csv/read_parquet for every file, nothing else;
- one full scan of the staging tables (every column read once).
Figures go to bench/results/latest.json (and bench/results/<format>_<N>.json); with two or more sizes, the
scaling of each stage (time ratio over size ratio, 1.0 = linear) is printed and written to
bench/results/scaling.json.

With --engine spark the run's staging tables then go to a local Spark session as Parquet and the phenotype and cohort
stages run there from the same SQL files (pipelines/cohorts/spark_stages.py, docs/scaling.md); their seconds are
printed beside DuckDB's, with the session's start and the Parquet hand-over apart. The Spark session is a JVM
beside this process: its memory is not in the peak RSS figures. Local mode on two cores, not a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg
import duckdb

from pipelines import extract_spec as spec
from pipelines.ingest.loader import find_table_file
from pipelines.run import failure_messages, run_study
from pipelines.sql_quoting import quote_identifier, quote_literal

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

# Which stage a Dagster step belongs to, by the first part of its step key.
STAGE_OF_STEP_PREFIX = {
    "load_extract": "ingest",
    "phenotype": "phenotypes",
    "cohort": "cohorts",
    "results__associations": "statistics",
    "published_database": "publish",
}
STAGES = ["ingest", "phenotypes", "cohorts", "statistics", "data quality", "publish"]


class RssSampler:
    """Samples this process's resident memory every 50 ms, so peaks can be attributed to stages by time."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current_rss() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.current_rss()))
            time.sleep(0.05)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> int:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside, default=0)

    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


def ensure_extract(patients: int, fmt: str, seed: int) -> Path:
    from pipelines.synthetic import generate_extract

    folder = BENCH_DIR / "data" / f"{fmt.replace('.', '_')}_{patients}"
    if (folder / "_manifest.json").exists():
        print(f"reusing extract {folder}")
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    print(f"generating {patients:,} patients as {fmt} into {folder} ...")
    started = time.time()
    generate_extract(folder, patients=patients, seed=seed, fmt=fmt, progress=True)
    print(f"generated in {time.time() - started:.1f} s")
    return folder


def event_rows(folder: Path) -> dict[str, int]:
    manifest = json.loads((folder / "_manifest.json").read_text())
    return {entry["table"]: entry["rows"] for entry in manifest["files"] if entry.get("table")}


def duckdb_plain_load_seconds(folder: Path, workdir: Path, memory_limit: str | None) -> float:
    """The time DuckDB takes just to load every file into a table (auto-detected types, no checks)."""
    path = workdir / "plain_load.duckdb"
    con = duckdb.connect(str(path), config={"memory_limit": memory_limit} if memory_limit else {})
    started = time.time()
    for table in spec.TABLES:
        file = find_table_file(folder, table)
        if file is None:
            continue
        reader = "read_parquet" if file.name.endswith(".parquet") else "read_csv"
        options = "" if reader == "read_parquet" else ", ignore_errors = true"  # skip the planted bad lines
        con.execute(f"CREATE TABLE {quote_identifier(table.name)} AS "
                    f"SELECT * FROM {reader}({quote_literal(file)}{options})")
    elapsed = time.time() - started
    con.close()
    path.unlink()
    return elapsed


def staging_scan_seconds(database: Path) -> float:
    """One full scan of the staging tables: every column of every row read once."""
    con = duckdb.connect(str(database), read_only=True)
    present = {name for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'staging'").fetchall()}
    started = time.time()
    for table in spec.TABLES:
        if table.name not in present:  # a run that failed during the ingest
            continue
        # hash() of the whole row reads every column of every row (min/max could be answered from statistics).
        con.execute(f"SELECT sum(hash(COLUMNS(*))) FROM staging.{table.name}").fetchall()
    elapsed = time.time() - started
    con.close()
    return elapsed


def stage_of(step_key: str) -> str:
    if step_key.endswith("data_quality"):
        return "data quality"
    for prefix, stage in STAGE_OF_STEP_PREFIX.items():
        if step_key.startswith(prefix):
            return stage
    return "data quality" if "check" in step_key else "other"


def step_windows(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """The (start, end) wall-clock window of every step of the run, by step key, in the order they started."""
    starts: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in starts:
            windows[entry.step_key] = (starts[entry.step_key], entry.timestamp)
    return windows


def windows_by_stage(windows: dict[str, tuple[float, float]]) -> dict[str, list[tuple[float, float]]]:
    by_stage: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for step_key, window in windows.items():
        by_stage[stage_of(step_key)].append(window)
    return by_stage


def slowest_steps(windows: dict[str, tuple[float, float]], count: int = 10) -> dict[str, float]:
    """Seconds of the `count` slowest steps, slowest first: where to look inside a slow stage."""
    seconds = {step_key: round(end - start, 2) for step_key, (start, end) in windows.items()}
    return dict(sorted(seconds.items(), key=lambda item: -item[1])[:count])


# The local Spark session of the benchmark: the settings of the test group (tests/spark/conftest.py), with more
# shuffle partitions for larger tables.
LOCAL_SPARK_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "4g",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def spark_stage_seconds(database: Path, workdir: Path) -> dict:
    """The phenotype and cohort stages on a local Spark session from the run's staging tables, timed."""
    from pyspark.sql import SparkSession

    from pipelines.cohorts import build_all_studies
    from pipelines.cohorts.spark_stages import export_stage_inputs, register_stage_inputs
    from pipelines.phenotypes import run_phenotypes

    seconds = {}
    started = time.time()
    con = duckdb.connect(str(database), read_only=True)
    export_stage_inputs(con, workdir / "stage_inputs")
    con.close()
    seconds["parquet export (DuckDB)"] = time.time() - started
    started = time.time()
    builder = SparkSession.builder.master(f"local[{os.cpu_count()}]").appName("leg-cramp-benchmark")
    for key, value in {**LOCAL_SPARK_SETTINGS, "spark.sql.warehouse.dir": str(workdir / "spark_warehouse"),
                       "spark.local.dir": str(workdir / "spark_local")}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    seconds["session start"] = time.time() - started
    try:
        started = time.time()
        register_stage_inputs(spark, workdir / "stage_inputs")
        seconds["parquet tables"] = time.time() - started
        started = time.time()
        run_phenotypes(spark)
        seconds["phenotypes"] = time.time() - started
        started = time.time()
        build_all_studies(spark)
        seconds["cohorts"] = time.time() - started
    finally:
        spark.stop()
    return {stage: round(value, 2) for stage, value in seconds.items()}


def benchmark(patients: int, fmt: str, seed: int, memory_limit: str | None, keep_database: bool,
              engine: str = "duckdb") -> dict:
    """Generate (or reuse) the extract, run the whole study once and return the figures."""
    folder = ensure_extract(patients, fmt, seed)
    rows = event_rows(folder)
    total_rows = sum(rows.values())

    with tempfile.TemporaryDirectory(prefix="legcramp-bench-") as tmp:
        workdir = Path(tmp)
        database = workdir / "bench.duckdb"
        load_seconds = duckdb_plain_load_seconds(folder, workdir, memory_limit)
        home = workdir / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text((BENCH_DIR.parent / "dagster.yaml").read_text())
        with dg.instance_for_test(temp_dir=str(home)) as instance, RssSampler() as sampler:
            started = time.time()
            result = run_study(folder, database, instance=instance, memory_limit=memory_limit,
                               temp_directory=str(workdir / "spill"))
            total_seconds = time.time() - started
            steps = step_windows(instance, result.run_id)
        failures = [] if result.success else failure_messages(result)
        # A failed run publishes nothing: scan its build file instead.
        scanned = database if result.success else next((database.parent / ".runs").glob("*/*.duckdb"), None)
        scan_seconds = staging_scan_seconds(scanned) if scanned else float("nan")
        if keep_database:
            shutil.copy(database, BENCH_DIR / "results" / f"bench_{patients}.duckdb")
        spark_seconds = spark_stage_seconds(database, workdir) if engine == "spark" and result.success else None

    windows = windows_by_stage(steps)
    stages = {}
    for stage in [*STAGES, "other"]:
        spans = windows.get(stage, [])
        if not spans:
            continue
        seconds = sum(end - start for start, end in spans)
        peak = max(sampler.peak_between(start, end) for start, end in spans)
        stages[stage] = {
            "seconds": round(seconds, 2),
            "peak_rss_gb": round(peak / 1e9, 2),
            "rows_per_second": round(total_rows / seconds) if seconds else None,
        }
    return {
        "patients": patients,
        "format": fmt,
        "event_rows": total_rows,
        "rows_per_table": rows,
        "total_seconds": round(total_seconds, 2),
        "duckdb_load_seconds": round(load_seconds, 2),
        "ratio_to_duckdb_load": round(total_seconds / load_seconds, 2) if load_seconds else None,
        "staging_scan_seconds": round(scan_seconds, 2),
        "peak_rss_gb": round(sampler.peak() / 1e9, 2),
        "stages": stages,
        "slowest_steps": slowest_steps(steps),
        **{f"{stage.replace(' ', '_')}_seconds": figures["seconds"] for stage, figures in stages.items()},
        "machine": {"cores": os.cpu_count(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE")
                                                                * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "duckdb": duckdb.__version__},
        "memory_limit": memory_limit,
        "success": result.success,
        "failures": failures,
        **({"spark_local": {"seconds": spark_seconds, "cores": os.cpu_count()}} if spark_seconds else {}),
    }


def print_figures(figures: dict) -> None:
    print()
    print(f"{'stage':<14}{'seconds':>10}{'peak RSS GB':>13}{'rows/s':>14}")
    for stage, f in figures["stages"].items():
        print(f"{stage:<14}{f['seconds']:>10.2f}{f['peak_rss_gb']:>13.2f}{(f['rows_per_second'] or 0):>14,}")
    total = figures["total_seconds"]
    print(f"{'whole study':<14}{total:>10.2f}{figures['peak_rss_gb']:>13.2f}"
          f"{round(figures['event_rows'] / total):>14,}")
    print(f"{'DuckDB load':<14}{figures['duckdb_load_seconds']:>10.2f}   (plain read_* of the same files; ratio "
          f"{figures['ratio_to_duckdb_load']})")
    print(f"{'staging scan':<14}{figures['staging_scan_seconds']:>10.2f}   (one full scan of staging.*)")
    print(f"{figures['patients']:,} patients, {figures['event_rows']:,} rows, {os.cpu_count()} cores")
    print("slowest steps: " + ", ".join(f"{step} {seconds:.0f} s"
                                        for step, seconds in figures["slowest_steps"].items()))
    if "spark_local" in figures:
        spark = figures["spark_local"]["seconds"]
        print(f"\nthe same stages on Spark local mode ({figures['spark_local']['cores']} cores; the JVM's memory "
              "is not in the RSS figures)")
        print(f"{'stage':<26}{'DuckDB s':>10}{'Spark s':>10}")
        for stage, value in spark.items():
            duck = figures["stages"].get(stage, {}).get("seconds")
            print(f"{stage:<26}{duck if duck is not None else '':>10}{value:>10.2f}")


def scaling(small: dict, large: dict) -> dict:
    """Per stage, how much more time the larger run took per patient: 1.0 is linear, above 1 worse than linear."""
    size_ratio = large["patients"] / small["patients"]
    ratios = {}
    for stage in [*STAGES, "whole study"]:
        small_s = small["total_seconds"] if stage == "whole study" else small["stages"].get(stage, {}).get("seconds")
        large_s = large["total_seconds"] if stage == "whole study" else large["stages"].get(stage, {}).get("seconds")
        if small_s and large_s:
            ratios[stage] = {"seconds_small": small_s, "seconds_large": large_s,
                             "time_ratio": round(large_s / small_s, 2),
                             "per_patient_ratio": round(large_s / small_s / size_ratio, 2)}
    return {"patients_small": small["patients"], "patients_large": large["patients"], "size_ratio": size_ratio,
            "stages": ratios}


def print_scaling(table: dict) -> None:
    print(f"\nscaling from {table['patients_small']:,} to {table['patients_large']:,} patients "
          f"({table['size_ratio']:g}x): time ratio / size ratio (1.0 = linear)")
    print(f"{'stage':<14}{'small s':>10}{'large s':>10}{'time x':>9}{'per patient':>13}")
    for stage, r in table["stages"].items():
        print(f"{stage:<14}{r['seconds_small']:>10.1f}{r['seconds_large']:>10.1f}{r['time_ratio']:>9.2f}"
              f"{r['per_patient_ratio']:>13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the leg-cramp study on N synthetic patients.")
    parser.add_argument("--patients", type=int, nargs="+", default=[1_000_000],
                        help="one size, or several (e.g. 100000 1000000) to also report how each stage scales")
    parser.add_argument("--format", default="csv", choices=["csv", "csv.gz", "parquet"])
    parser.add_argument("--seed", type=int, default=2024)
    # 5GB for DuckDB keeps the whole process (with Python, Dagster and GX) under the 6 GB target.
    parser.add_argument("--memory-limit", default="5GB", help="DuckDB memory limit (default 5GB)")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "spark"],
                        help="spark: also run the phenotype and cohort stages on local Spark (pyspark, Java 17)")
    parser.add_argument("--peer-python", help="also measure the duckcdm peer (bench/peer_duckcdm.py) with this "
                        "interpreter of its own environment, on --peer-extract")
    parser.add_argument("--peer-extract", type=Path, default=BENCH_DIR.parent.parent / "shared" / "data" / "omop"
                        / "eunomia_gibleed_v5.3", help="the OMOP CDM folder both sides load for the peer comparison")
    args = parser.parse_args()

    RESULTS_DIR.mkdir(exist_ok=True)
    if args.peer_python:
        # Its own processes and figures file (bench/results/peer_duckcdm.json): the peer never runs in this
        # environment, and the OMOP folder is not the benchmark's extract.
        subprocess.run([sys.executable, str(BENCH_DIR / "peer_duckcdm.py"), "--extract", str(args.peer_extract),
                        "--peer-python", args.peer_python], check=True)
    runs = []
    for patients in sorted(args.patients):
        figures = benchmark(patients, args.format, args.seed, args.memory_limit, args.keep_database, args.engine)
        print_figures(figures)
        text = json.dumps(figures, indent=2)
        (RESULTS_DIR / "latest.json").write_text(text)
        (RESULTS_DIR / f"{args.format.replace('.', '_')}_{patients}.json").write_text(text)
        runs.append(figures)
    if len(runs) > 1:
        table = scaling(runs[0], runs[-1])
        print_scaling(table)
        (RESULTS_DIR / "scaling.json").write_text(json.dumps(table, indent=2))
    failed = [f for f in runs if f["failures"]]
    for figures in failed:
        print(f"\nTHE {figures['patients']:,}-PATIENT RUN FAILED (figures above cover the steps that ran):",
              *figures["failures"], sep="\n")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
