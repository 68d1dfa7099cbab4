"""Benchmark the whole study on a synthetic extract of N patients and print one table of figures.

    python bench/run_benchmark.py --patients 1000000 [--format csv|parquet] [--memory-limit 6GB]
    python bench/run_benchmark.py --patients 100000 1000000     # also: how each stage scales with N
    python bench/run_benchmark.py --patients 100000 --engine spark  # also: the same study job on local Spark
    python bench/run_benchmark.py --patients 1000000 --peer-python /tmp/peer-venv/bin/python   # also: the duckcdm peer
    make bench N=1000000
    make bench N="100000 1000000"

It generates the extract once (bench/data/<format>_<N>/, reused afterwards), runs the study job through Dagster's
execution API against a throw-away instance, and reports per stage (ingest, phenotypes, cohorts, statistics, data
quality, publish) the wall time, the peak memory during the stage (the resident memory of this process, and the
proportional set size of the whole process tree: the statistics stage fits in worker processes below this one,
bench/process_memory.py) and rows per second,
next to two reference figures measured in the same run on the same files:
- DuckDB's plain load: CREATE TABLE ... AS SELECT * FROM read_csv/read_parquet for every file, nothing else;
- one full scan of the staging tables (every column read once).
Figures go to bench/results/latest.json (and bench/results/<format>_<N>.json); with two or more sizes, the
scaling of each stage (time ratio over size ratio, 1.0 = linear) is printed and written to
bench/results/scaling.json.

With --engine spark the same study job then runs again with `engine: spark` (run_study, as `make run ENGINE=spark`)
on a local Spark session started beforehand, so its start is reported apart; both runs' per-stage and per-step
tables are printed side by side, each stage with the engine its materialisations and check results record
(metadata `engine`; "not recorded" where a stage's steps record none). The Spark JVM's resident memory (every java
process under this one, read from /proc) is sampled beside this process's, and the CPU seconds of this process, the
JVM and the other processes below (the statistics workers) likewise, so each stage and step has its CPU seconds
(what a shared machine's load changes far less than wall time); the Spark run's steps also have their Spark jobs
and the CPU seconds of those jobs' tasks (from the session's status store). When a run ingests on DuckDB (an
extract the Spark ingest does not take), the Spark ingest (pipelines/ingest/spark_loader.py load_extract_on_spark)
is timed on the same files in the same session afterwards, as a separate line. Local mode on the run's two cores
(pipelines/engine/session.py), not a cluster (docs/scaling.md).

A benchmark that does not finish still writes its report: stopped by Ctrl-C or SIGTERM, its study run interrupted, or
one of its parts failing, it writes what it had measured (the plain load, the finished steps of a run per stage,
the steps running when it stopped and for how long, the steps that had failed by themselves with their error) marked `"complete": false`, with `why_incomplete` (what stopped
it, and what it was measuring). A finished one says `"complete": true`.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.* when run as a script

from bench.process_memory import (descendants, java_descendants, process_cpu_seconds, process_rss,  # noqa: E402
                                  tree_pss)
from pipelines import extract_spec as spec  # noqa: E402
from pipelines.ingest.loader import find_table_file  # noqa: E402
from pipelines.operations.stop_signals import StopSignalWatcher  # noqa: E402
from pipelines.run import failure_messages, run_study  # noqa: E402
from pipelines.sql_quoting import quote_identifier, quote_literal  # noqa: E402

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
    """Samples memory and CPU time every 50 ms, so peaks and CPU seconds can be attributed to stages and steps by
    time: the resident memory of this process, that of the Spark JVM below it when there is one, and the PSS of the
    whole process tree (this process and every process below it: the statistics workers and their fork server, the
    JVM; bench/process_memory.py), the memory the run holds; the CPU seconds used so far by this process, by the JVM
    and by every other process below (CPU_KINDS)."""

    def __init__(self) -> None:
        # (time, this process RSS, java processes under it RSS, process tree PSS)
        self.samples: list[tuple[float, int, int, int]] = []
        # (time, CPU seconds of this process, of the java processes, of every other process below it)
        self.cpu_samples: list[tuple[float, float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current_rss() -> int:
        return process_rss()

    # The tree's PSS is read once a second, the RSS figures every 50 ms: reading smaps_rollup walks a process's page
    # tables under its memory-map lock, which the run's own page faults need too. Read every 50 ms it cost the
    # measured run (200,000 patients, quiet, session 13) 56 s of system CPU and 10% of its wall time; once a second,
    # 6 s and 3%.
    TREE_EVERY_SECONDS = 1.0

    def _run(self) -> None:
        me, below, next_lookup, next_tree, tree = os.getpid(), {}, 0.0, 0.0, 0
        while not self._stop.is_set():
            now = time.time()
            if now >= next_lookup:  # workers and the JVM come and go with their pools and sessions
                below, next_lookup = descendants(me), now + 0.5
            if now >= next_tree:
                tree, next_tree = tree_pss(me, below), now + self.TREE_EVERY_SECONDS
            jvms = [pid for pid, name in below.items() if name == "java"]
            self.samples.append((now, process_rss(), sum(process_rss(pid) for pid in jvms), tree))
            # This thread's own reading of /proc is the benchmark's, not the run's: left out of this process's CPU.
            own = process_cpu_seconds(me) - time.thread_time()
            # Processes that ended count in their parent's figure once it waited for them (reaped_children).
            others = process_cpu_seconds(me, reaped_children=True) - process_cpu_seconds(me) + sum(
                process_cpu_seconds(pid, reaped_children=True) for pid, name in below.items() if name != "java")
            self.cpu_samples.append((now, own, sum(process_cpu_seconds(pid) for pid in jvms), others))
            time.sleep(0.05)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float, jvm: bool = False, tree: bool = False) -> int:
        """The peak in [start, end] of this process's RSS, or the JVM's (`jvm`), or the process tree's PSS (`tree`)."""
        column = 3 if tree else 2 if jvm else 1
        inside = [sample[column] for sample in self.samples if start <= sample[0] <= end]
        return max(inside, default=0)

    def peak(self, jvm: bool = False) -> int:
        return max((sample[2 if jvm else 1] for sample in self.samples), default=0)

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds used in [start, end] by this process, the JVM and the other processes below it (CPU_KINDS):
        the difference between the last samples at or before `end` and `start` (the first sample when none is)."""
        if not self.cpu_samples:
            return dict.fromkeys(CPU_KINDS, 0.0)
        times = [sample[0] for sample in self.cpu_samples]

        def at(moment: float) -> tuple[float, ...]:
            return self.cpu_samples[max(bisect.bisect_right(times, moment) - 1, 0)][1:]

        return {kind: round(max(later - earlier, 0.0), 2)
                for kind, earlier, later in zip(CPU_KINDS, at(start), at(end))}


# The CPU seconds the benchmark reports, by whom: this process (Python: Dagster, the stages' driving code, DuckDB's
# threads), the Spark JVM, and every other process below this one (the statistics workers and their fork server).
CPU_KINDS = ("python_cpu_seconds", "jvm_cpu_seconds", "other_cpu_seconds")


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


def extract_settings(folder: Path) -> tuple[int, str]:
    """The patients and file format a generated extract was made with (its _manifest.json)."""
    manifest = json.loads((folder / "_manifest.json").read_text())
    return int(manifest["patients"]), str(manifest["format"])


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
    # The close writes the last checkpoint: the study's ingest pays for its own, so the reference does too.
    con.close()
    elapsed = time.time() - started
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


def _step_events(instance: dg.DagsterInstance, run_id: str):
    """(log entry, Dagster event) of every event of the run that belongs to a step, in the order they were stored."""
    for entry in instance.all_logs(run_id):
        if entry.dagster_event is not None and entry.step_key:
            yield entry, entry.dagster_event


def step_windows(instance: dg.DagsterInstance, run_id: str,
                 signalled_at: float | None = None) -> dict[str, tuple[float, float]]:
    """The (start, end) wall-clock window of every step of the run that ended (succeeded, or failed by itself), by
    step key, in the order they started; a step the benchmark's stop interrupted is in `unfinished_steps`
    (`signalled_at`: when a stop signal arrived; a step failing after it failed from it, e.g. DuckDB's "Query
    interrupted")."""
    starts: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}
    for entry, event in _step_events(instance, run_id):
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in starts:
            if not _interrupted(event, entry.timestamp, signalled_at):
                windows[entry.step_key] = (starts[entry.step_key], entry.timestamp)
    return windows


def _interrupted(event, timestamp: float | None = None, signalled_at: float | None = None) -> bool:
    """A step failure caused by an interrupt (Ctrl-C or SIGTERM reaching Dagster's handler, or any failure after
    the benchmark received a stop signal at `signalled_at`), not by the step."""
    if event.event_type_value != "STEP_FAILURE":
        return False
    if signalled_at is not None and timestamp is not None and timestamp >= signalled_at:
        return True
    error_source = getattr(event.event_specific_data, "error_source", None)
    return getattr(error_source, "value", None) == "INTERRUPT"


def unfinished_steps(instance: dg.DagsterInstance, run_id: str, stopped_at: float,
                     signalled_at: float | None = None) -> dict[str, str]:
    """The steps that started and did not end by themselves (interrupted, or still running when the benchmark
    stopped), by step key, with how long they had run: "running for N s when stopped"."""
    starts: dict[str, float] = {}
    ended: dict[str, float | None] = {}  # step -> when it was interrupted (None: it ended by itself)
    for entry, event in _step_events(instance, run_id):
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            ended[entry.step_key] = entry.timestamp if _interrupted(event, entry.timestamp, signalled_at) else None
    unfinished = {}
    for step_key, start in starts.items():
        if step_key in ended and ended[step_key] is None:
            continue
        until = ended.get(step_key) or stopped_at
        unfinished[step_key] = f"running for {until - start:.0f} s when stopped"
    return unfinished


def failed_steps(instance: dg.DagsterInstance, run_id: str, signalled_at: float | None = None) -> dict[str, str]:
    """The steps that failed by themselves (not from a stop), by step key, each with its error's innermost message
    (e.g. DuckDB's "No space left on device"): a stopped benchmark's report must say that a step had already failed,
    or its stages read as merely unfinished."""
    failed = {}
    for entry, event in _step_events(instance, run_id):
        if event.event_type_value == "STEP_FAILURE" and not _interrupted(event, entry.timestamp, signalled_at):
            error = getattr(event.event_specific_data, "error", None)
            while error is not None and error.cause is not None:
                error = error.cause
            failed[entry.step_key] = error.message.strip() if error is not None else "failed (no error recorded)"
    return failed


def run_interrupted(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether the run ended because it was interrupted (Dagster's handler took the Ctrl-C or SIGTERM: an
    interrupted step, or the run's failure reason), rather than finishing or failing by itself."""
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if _interrupted(event):
            return True
        reason = getattr(event.event_specific_data, "failure_reason", None)
        if event.event_type_value == dg.DagsterEventType.RUN_FAILURE.value and getattr(reason, "value", None) == "UNEXPECTED_TERMINATION":
            return True
    return False


def slowest_steps(windows: dict[str, tuple[float, float]], count: int = 10) -> dict[str, float]:
    """Seconds of the `count` slowest steps, slowest first: where to look inside a slow stage."""
    seconds = {step_key: round(end - start, 2) for step_key, (start, end) in windows.items()}
    return dict(sorted(seconds.items(), key=lambda item: -item[1])[:count])


NOT_RECORDED = "not recorded"


def step_engines(instance: dg.DagsterInstance, run_id: str) -> dict[str, set[str]]:
    """The engines each step's materialisations and check results record (metadata "engine":
    Warehouse.engine_metadata, checks.engine_checked_on), by step key, from the run's event log (also of a run that
    was stopped); steps that record none are absent."""
    engines: dict[str, set[str]] = defaultdict(set)
    for event_type in (dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        for entry in instance.all_logs(run_id, of_type=event_type):
            event = entry.dagster_event
            if event is None or not event.step_key:
                continue
            recorded = (event.materialization if event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
                        else event.event_specific_data)
            value = recorded.metadata.get("engine")
            if value is not None:
                engines[event.step_key].add(str(value.value))
    return dict(engines)


def stage_engine(step_keys: list[str], engines: dict[str, set[str]]) -> str:
    """What ran a stage, from its steps' materialisations: the engines they record ("duckdb+spark" if both), with
    how many steps record none; NOT_RECORDED when none does (the bench never assumes an engine)."""
    recorded = sorted(set().union(*(engines.get(key, set()) for key in step_keys)))
    silent = sum(1 for key in step_keys if not engines.get(key))
    if not recorded:
        return NOT_RECORDED
    if silent:
        return f"{'+'.join(recorded)} ({silent} of {len(step_keys)} steps {NOT_RECORDED})"
    return "+".join(recorded)


def step_figures(windows: dict[str, tuple[float, float]], sampler: RssSampler) -> dict[str, dict]:
    """Per finished step, in the order they started: when it started (seconds since the epoch, to find what else
    happened during it, e.g. the Spark jobs it ran), its seconds and the CPU seconds used while it ran (CPU_KINDS):
    where a stage's time goes."""
    return {step_key: {"started_at": round(start, 3), "seconds": round(end - start, 2),
                       **sampler.cpu_between(start, end)}
            for step_key, (start, end) in windows.items()}


def stage_figures(windows: dict[str, tuple[float, float]], engines: dict[str, set[str]], sampler: RssSampler,
                  total_rows: int) -> dict[str, dict]:
    """Per stage (STAGES order, then "other"): the seconds its steps took (summed: the in-process executor runs one
    step at a time), the peak resident memory of this process and of the Spark JVM while they ran, the CPU seconds
    they used (CPU_KINDS), rows per second (every event row of the extract over the stage's seconds) and the engine
    its materialisations record."""
    keys_by_stage: dict[str, list[str]] = defaultdict(list)
    for step_key in windows:
        keys_by_stage[stage_of(step_key)].append(step_key)
    figures = {}
    for stage in [*STAGES, "other"]:
        keys = keys_by_stage.get(stage, [])
        if not keys:
            continue
        spans = [windows[key] for key in keys]
        seconds = sum(end - start for start, end in spans)
        cpu = [sampler.cpu_between(start, end) for start, end in spans]
        figures[stage] = {
            "seconds": round(seconds, 2),
            "peak_rss_gb": round(max(sampler.peak_between(start, end) for start, end in spans) / 1e9, 2),
            "jvm_peak_rss_gb": round(max(sampler.peak_between(start, end, jvm=True) for start, end in spans) / 1e9,
                                     2),
            "tree_peak_pss_gb": round(max(sampler.peak_between(start, end, tree=True) for start, end in spans) / 1e9,
                                      2),
            **{kind: round(sum(of_step[kind] for of_step in cpu), 2) for kind in CPU_KINDS},
            "rows_per_second": round(total_rows / seconds) if seconds else None,
            "engine": stage_engine(keys, engines),
            "steps": len(keys),
        }
    return figures


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages: the benchmark shares the machine, and its figures follow the
    load."""
    return [round(value, 2) for value in os.getloadavg()]


class BenchmarkStopped(BaseException):
    """The benchmark was stopped: a signal (Ctrl-C, SIGTERM) or its study run interrupted. Like KeyboardInterrupt,
    not an Exception, so that no `except Exception` on the way treats it as a failed measurement and goes on."""


class StopSignals(StopSignalWatcher):
    """While the benchmark runs, Ctrl-C (SIGINT) and SIGTERM stop it with its report written.

    Outside a study run the handler raises BenchmarkStopped naming the signal (Python's default for SIGTERM would
    end the process at once). During a run Dagster's own handler has them, and the watcher
    (pipelines/operations/stop_signals.py, as `legcramp-run` uses it) stops the whole run, also when the signal
    landed while DuckDB ran a query, which it does not stop by itself. `received` names the signals."""

    def __init__(self) -> None:
        super().__init__(handler=self._stop)

    @staticmethod
    def _stop(signum: int, _frame) -> None:
        raise BenchmarkStopped(f"stopped by {signal.Signals(signum).name}")


# The benchmark's StopSignals while it runs (main), so a study run can tell a stop from a failure.
_signals: StopSignals | None = None


@contextlib.contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """StopSignals for the benchmark's duration."""
    global _signals
    with StopSignals() as signals:
        _signals = signals
        try:
            yield signals
        finally:
            _signals = None


def _stop_received() -> str | None:
    # The wakeup byte reaches the watcher thread a moment after the signal.
    time.sleep(0.1)
    return _signals.stopped_by() if _signals is not None else None


def measure_run(folder: Path, database: Path, workdir: Path, memory_limit: str | None, sampler: RssSampler,
                total_rows: int, figures: dict, engine: str | None = None) -> dg.ExecuteInProcessResult:
    """Run the whole study job once through run_study (engine None: the run's default, DuckDB) in a throw-away
    Dagster instance, filling `figures` with its figures, per stage and whole. A run that is stopped (or raises)
    still fills them from its event log, with the steps it left unfinished, then BenchmarkStopped (or the error)
    is raised."""
    label = engine or "duckdb"
    home = workdir / f"dagster_home_{label}"
    home.mkdir()
    (home / "dagster.yaml").write_text((BENCH_DIR.parent / "dagster.yaml").read_text())
    options = {"engine": engine} if engine else {}
    figures.update(engine_setting=label, load_average_before=load_average())
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        started = time.time()
        try:
            result = run_study(folder, database, instance=instance, memory_limit=memory_limit,
                               temp_directory=str(workdir / f"spill_{label}"), **options)
        except BaseException:  # stopped or failed outside Dagster's handling: what the run's event log holds
            runs = instance.get_runs(limit=1)
            try:
                figures.update(run_figures(instance, runs[0].run_id if runs else None, started, time.time(),
                                           sampler, total_rows))
            except Exception as error:  # noqa: BLE001 - never hide why the run ended behind a failed log read
                figures["figures_error"] = f"{type(error).__name__}: {error}"
            raise
        figures.update(run_figures(instance, result.run_id, started, time.time(), sampler, total_rows),
                       failures=[] if result.success else failure_messages(result))
        interrupted = run_interrupted(instance, result.run_id)
    stopped = _stop_received()
    if stopped or interrupted:  # the run was stopped (or a query took the signal as a step failure): stop too
        raise BenchmarkStopped(stopped or f"the {label} run of the study job was interrupted")
    return result


def run_figures(instance: dg.DagsterInstance, run_id: str | None, started: float, ended: float,
                sampler: RssSampler, total_rows: int) -> dict:
    """A run's figures from its event log: per stage over its finished steps, the slowest steps, and, when it did
    not finish, the steps it left unfinished (`"complete": false`)."""
    figures: dict = {
        "total_seconds": round(ended - started, 2),
        "peak_rss_gb": round(sampler.peak_between(started, ended) / 1e9, 2),
        "jvm_peak_rss_gb": round(sampler.peak_between(started, ended, jvm=True) / 1e9, 2),
        "tree_peak_pss_gb": round(sampler.peak_between(started, ended, tree=True) / 1e9, 2),
        **sampler.cpu_between(started, ended),
        "load_average_after": load_average(),
    }
    if run_id is None:  # stopped before Dagster created the run
        return {**_stopped(figures), "stages": {}, "slowest_steps": {}, "success": False, "complete": False}
    signalled_at = _signals.first_at if _signals is not None else None
    steps = step_windows(instance, run_id, signalled_at)
    run = instance.get_run_by_id(run_id)
    success = run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    figures.update(stages=stage_figures(steps, step_engines(instance, run_id), sampler, total_rows),
                   steps=step_figures(steps, sampler), slowest_steps=slowest_steps(steps), success=success,
                   failed_steps=failed_steps(instance, run_id, signalled_at))
    unfinished = unfinished_steps(instance, run_id, ended, signalled_at)
    if unfinished or run is None or not run.is_finished:
        figures = {**_stopped(figures), "complete": False, "unfinished_steps": unfinished}
    return figures


def _stopped(figures: dict) -> dict:
    """A stopped run's time is not a whole-run time: `seconds_until_stopped` instead of `total_seconds`, so that no
    ratio or scaling is computed from it."""
    return {("seconds_until_stopped" if key == "total_seconds" else key): value for key, value in figures.items()}


def spark_figures(folder: Path, workdir: Path, memory_limit: str | None, sampler: RssSampler, total_rows: int,
                  duckdb_stages: dict[str, dict], figures: dict, measured: Measured) -> None:
    """The same study job with engine spark, on a local session started first (its start timed apart), and, while
    the run ingests on DuckDB, the Spark ingest of the same files timed in the same session; `figures` is filled as
    they are measured."""
    from pipelines.engine.session import local_spark_session, spark_requirement_missing

    missing = spark_requirement_missing()
    if missing:
        figures["skipped"] = missing
        return
    figures["load_average_before_session"] = load_average()
    measured.doing = "starting the Spark session"
    started = time.time()
    # The session a run starts (pipelines/engine/session.py: local[2], its settings); the run's stages find it
    # active and share it, as every stage of a run does. JOB_RETENTION only keeps the jobs' records for counting.
    spark = local_spark_session(workdir / "spark", settings=JOB_RETENTION)
    figures["session_start_seconds"] = round(time.time() - started, 2)
    figures["session_settings"] = {key: spark.conf.get(key) for key in
                                   ("spark.master", "spark.driver.memory", "spark.sql.shuffle.partitions")}
    time.sleep(2.5)  # the sampler looks for the new JVM every 0.5 s
    figures["session_start_cpu"] = sampler.cpu_between(started, time.time())
    figures["jvm_rss_after_start_gb"] = round(process_rss(max(java_descendants(os.getpid()), default=0)) / 1e9, 2)
    jobs_before = next_spark_job_id(spark)
    try:
        measured.doing = "the spark run of the study job"
        figures["run"] = {}
        try:
            measure_run(folder, workdir / "bench_spark.duckdb", workdir, memory_limit, sampler, total_rows,
                        figures["run"], engine="spark")
        finally:  # also for a run that was stopped or failed: the jobs of the steps it finished
            count_spark_jobs(spark, figures["run"], next_spark_job_id(spark) - jobs_before)
        ingest_engine = figures["run"]["stages"].get("ingest", {}).get("engine", NOT_RECORDED)
        if "spark" in ingest_engine:
            figures["ingest_on_spark"] = {"in_run": True}
        else:
            measured.doing = "the Spark ingest outside the run"
            figures["ingest_on_spark"] = spark_ingest_figures(spark, folder, sampler, total_rows, duckdb_stages)
    finally:
        spark.stop()


# Measurement only: Spark's status store keeps the records of its last 1,000 jobs and stages (spark.ui.retainedJobs,
# retainedStages), fewer than a run starts, and the benchmark counts every job and stage of every step from them
# (spark_jobs_and_stages). The records are small (ids, times, task metrics); the work the run does is the same.
JOB_RETENTION = {"spark.ui.retainedJobs": "1000000", "spark.ui.retainedStages": "1000000"}


def next_spark_job_id(spark) -> int:
    """The id the session's next Spark job will get (the DAG scheduler's counter): jobs started = difference."""
    counter = spark.sparkContext._jsc.sc().dagScheduler().nextJobId()
    return counter if isinstance(counter, int) else counter.get()


def spark_jobs_and_stages(spark) -> tuple[list[float], list[tuple[float, float]]]:
    """From the session's status store: when each job was submitted, and each stage with the CPU seconds its tasks
    used (executorCpuTime: the work on the data, as opposed to the driver's planning and scheduling), both sorted by
    submission time in seconds since the epoch (the JVM's clock is this machine's, as time.time())."""
    to_java = spark.sparkContext._jvm.scala.jdk.javaapi.CollectionConverters.asJava
    store = spark.sparkContext._jsc.sc().statusStore()
    submitted = (job.submissionTime() for job in to_java(store.jobsList(None)))  # None: every status
    jobs = sorted(when.get().getTime() / 1000 for when in submitted if when.isDefined())
    stages = []
    no_quantiles = spark.sparkContext._gateway.new_array(spark.sparkContext._jvm.double, 0)  # null: Spark sorts it
    for stage in to_java(store.stageList(None, False, False, no_quantiles, None)):  # every status, no task details
        when = stage.submissionTime()
        if when.isDefined():
            stages.append((when.get().getTime() / 1000, stage.executorCpuTime() / 1e9))
    return jobs, sorted(stages)


def count_spark_jobs(spark, run: dict, started_in_run: int) -> None:
    """Adds the Spark jobs and task CPU of a run's steps and stages to its figures (add_spark_jobs), from the
    session's records."""
    try:
        jobs, stages = spark_jobs_and_stages(spark)
    except Exception as error:  # noqa: BLE001 - a failed count is reported, and never hides how the run ended
        run["spark_jobs_error"] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        return
    add_spark_jobs(run, jobs, started_in_run, stages)


def add_spark_jobs(run: dict, submitted: list[float], started_in_run: int,
                   stages: list[tuple[float, float]] = ()) -> None:
    """Adds to a run's figures the Spark jobs each step and stage started (`spark_jobs`: the jobs `submitted`,
    sorted submission times, inside the step's window [start, end), so a job at the edge of two counts once) and
    in all (`spark_jobs`: `started_in_run`, the DAG scheduler's count over the run, with those outside every step
    `spark_jobs_between_steps`), and the CPU seconds of the tasks of the Spark stages submitted in each
    (`spark_task_cpu_seconds`, from `stages`: (submission time, task CPU seconds), sorted)."""
    steps = run.get("steps", {})
    stage_times = [when for when, _ in stages]
    for figures in steps.values():
        start, end = figures["started_at"], figures["started_at"] + figures["seconds"]
        figures["spark_jobs"] = bisect.bisect_left(submitted, end) - bisect.bisect_left(submitted, start)
        inside = stages[bisect.bisect_left(stage_times, start):bisect.bisect_left(stage_times, end)]
        figures["spark_task_cpu_seconds"] = round(sum(cpu for _, cpu in inside), 2)
    for stage, figures in run.get("stages", {}).items():
        of_stage = [of_step for key, of_step in steps.items() if stage_of(key) == stage]
        figures["spark_jobs"] = sum(of_step["spark_jobs"] for of_step in of_stage)
        figures["spark_task_cpu_seconds"] = round(sum(of_step["spark_task_cpu_seconds"] for of_step in of_stage), 2)
    run["spark_jobs"] = started_in_run
    run["spark_jobs_between_steps"] = started_in_run - sum(of_step["spark_jobs"] for of_step in steps.values())
    run["spark_task_cpu_seconds"] = round(sum(cpu for _, cpu in stages), 2)


def spark_ingest_figures(spark, folder: Path, sampler: RssSampler, total_rows: int,
                         duckdb_stages: dict[str, dict]) -> dict:
    """load_extract_on_spark on the run's extract, outside the run (the run's ingest did not record Spark): its
    seconds beside the DuckDB run's ingest step. The DuckDB ingest also checks the reject share and writes the
    manifest, which the Spark ingest does not (docs/scaling.md), so the two are close but not the same work."""
    from pipelines.ingest.spark_loader import load_extract_on_spark

    load_before = load_average()
    jobs_before = next_spark_job_id(spark)
    started = time.time()
    try:
        loads = load_extract_on_spark(spark, folder)
    except Exception as error:  # noqa: BLE001 - a failed measurement is reported, not hidden
        return {"in_run": False, "error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    ended = time.time()
    loaded = sum(load.loaded for load in loads.values())
    return {
        "in_run": False,
        "seconds": round(ended - started, 2),
        **sampler.cpu_between(started, ended),
        "spark_jobs": next_spark_job_id(spark) - jobs_before,
        "jvm_peak_rss_gb": round(sampler.peak_between(started, ended, jvm=True) / 1e9, 2),
        "peak_rss_gb": round(sampler.peak_between(started, ended) / 1e9, 2),
        "rows_loaded": loaded,
        "rows_per_second": round(total_rows / (ended - started)),
        "duckdb_ingest_seconds": duckdb_stages.get("ingest", {}).get("seconds"),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


@dataclass
class Measured:
    """What the benchmark of one extract has measured so far, filled in as each part finishes, so that a benchmark
    that is stopped or fails still reports it (`report`)."""

    patients: int
    fmt: str
    memory_limit: str | None
    doing: str = "starting"  # the part being measured: a stopped benchmark's report says what it stopped
    rows_per_table: dict[str, int] | None = None
    duckdb_load_seconds: float | None = None
    duckdb_run: dict = field(default_factory=dict)  # measure_run's figures, filled while the run goes on
    staging_scan_seconds: float | None = None
    spark: dict | None = None  # spark_figures', filled likewise (engine spark only)


def benchmark(measured: Measured, seed: int, keep_database_in: Path | None = None, engine: str = "duckdb",
              extract: Path | None = None) -> None:
    """Generate (or reuse) the extract, or take `extract`, run the whole study once (and with engine spark once
    more on Spark), filling `measured` as each part finishes; `keep_database_in`: a folder to copy the DuckDB run's
    database to."""
    measured.doing = "generating or reading the extract"
    folder = extract or ensure_extract(measured.patients, measured.fmt, seed)
    measured.rows_per_table = event_rows(folder)
    total_rows = sum(measured.rows_per_table.values())
    memory_limit = measured.memory_limit

    with tempfile.TemporaryDirectory(prefix="legcramp-bench-") as tmp, RssSampler() as sampler:
        workdir = Path(tmp)
        database = workdir / "bench.duckdb"
        measured.doing = "DuckDB's plain load"
        measured.duckdb_load_seconds = duckdb_plain_load_seconds(folder, workdir, memory_limit)
        measured.doing = "the duckdb run of the study job"
        result = measure_run(folder, database, workdir, memory_limit, sampler, total_rows, measured.duckdb_run)
        measured.doing = "the staging scan"
        # A failed run publishes nothing: scan its build file instead.
        scanned = database if result.success else next((database.parent / ".runs").glob("*/*.duckdb"), None)
        measured.staging_scan_seconds = staging_scan_seconds(scanned) if scanned else float("nan")
        if keep_database_in is not None:
            shutil.copy(database, keep_database_in / f"bench_{measured.patients}.duckdb")
        if engine == "spark":
            measured.spark = {}
            spark_figures(folder, workdir, memory_limit, sampler, total_rows, measured.duckdb_run["stages"],
                          measured.spark, measured)
    measured.doing = "finished"


def report(measured: Measured, why_incomplete: str | None = None) -> dict:
    """The benchmark's figures as written to bench/results: everything `measured` holds, `"complete": true` when it
    finished, else `"complete": false` with `why_incomplete` (what stopped it, and what it was measuring then). A
    part not measured is absent (or None)."""
    duck = measured.duckdb_run
    rows = measured.rows_per_table
    total_rows = sum(rows.values()) if rows is not None else None
    total_seconds = duck.get("total_seconds")
    load_seconds = measured.duckdb_load_seconds
    stages = duck.get("stages", {})
    spark = measured.spark
    if spark is not None and "run" in spark and "stages" in spark["run"]:
        spark["side_by_side"] = side_by_side(stages, spark["run"]["stages"])
    complete = why_incomplete is None and duck.get("complete", True) and not (
        spark and spark.get("run", {}).get("complete", True) is False)
    figures = {
        "patients": measured.patients,
        "format": measured.fmt,
        "complete": complete,
        **({} if complete else {"why_incomplete": why_incomplete or "a run left steps unfinished"}),
        "event_rows": total_rows,
        "rows_per_table": rows,
        "total_seconds": total_seconds,
        **({"seconds_until_stopped": duck["seconds_until_stopped"]} if "seconds_until_stopped" in duck else {}),
        "duckdb_load_seconds": round(load_seconds, 2) if load_seconds is not None else None,
        "ratio_to_duckdb_load": round(total_seconds / load_seconds, 2) if load_seconds and total_seconds else None,
        "staging_scan_seconds": (round(measured.staging_scan_seconds, 2) if measured.staging_scan_seconds is not None
                                 else None),
        "peak_rss_gb": duck.get("peak_rss_gb"),
        "tree_peak_pss_gb": duck.get("tree_peak_pss_gb"),
        **{kind: duck.get(kind) for kind in CPU_KINDS},
        "stages": stages,
        "steps": duck.get("steps", {}),
        **({"unfinished_steps": duck["unfinished_steps"]} if "unfinished_steps" in duck else {}),
        **({"failed_steps": duck["failed_steps"]} if duck.get("failed_steps") else {}),
        "slowest_steps": duck.get("slowest_steps", {}),
        **{f"{stage.replace(' ', '_')}_seconds": of_stage["seconds"] for stage, of_stage in stages.items()},
        "load_average_before": duck.get("load_average_before"),
        "load_average_after": duck.get("load_average_after"),
        "machine": {"cores": os.cpu_count(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE")
                                                                * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "duckdb": duckdb.__version__},
        "memory_limit": measured.memory_limit,
        "success": duck.get("success", False),
        "failures": duck.get("failures", []),
        **({"spark": spark} if spark is not None else {}),
    }
    return figures


def side_by_side(duckdb_stages: dict[str, dict], spark_stages: dict[str, dict]) -> list[dict]:
    """One row per stage of either run (STAGES order, then "other"): each engine's seconds, CPU seconds (every
    process of the run: CPU_KINDS summed) and recorded engine, Spark's seconds over DuckDB's (None where either is
    missing or DuckDB's is 0), and the Spark run's JVM peak, JVM CPU seconds and Spark jobs."""
    rows = []
    for stage in [*STAGES, "other"]:
        duck, spark = duckdb_stages.get(stage), spark_stages.get(stage)
        if duck is None and spark is None:
            continue
        duck_s = duck["seconds"] if duck else None
        spark_s = spark["seconds"] if spark else None
        rows.append({"stage": stage, "duckdb_seconds": duck_s, "duckdb_cpu_seconds": total_cpu(duck),
                     "duckdb_engine": duck["engine"] if duck else None,
                     "spark_run_seconds": spark_s, "spark_run_cpu_seconds": total_cpu(spark),
                     "spark_run_engine": spark["engine"] if spark else None,
                     "spark_over_duckdb": round(spark_s / duck_s, 1) if duck_s and spark_s is not None else None,
                     "spark_run_jvm_peak_rss_gb": spark["jvm_peak_rss_gb"] if spark else None,
                     "spark_run_jvm_cpu_seconds": spark.get("jvm_cpu_seconds") if spark else None,
                     "spark_run_spark_jobs": spark.get("spark_jobs") if spark else None})
    return rows


def total_cpu(figures: dict | None) -> float | None:
    """The CPU seconds of a stage, step or run by every process of it (CPU_KINDS summed); None where not measured."""
    if not figures or not all(kind in figures for kind in CPU_KINDS):
        return None
    return round(sum(figures[kind] for kind in CPU_KINDS), 2)


def print_figures(figures: dict) -> None:
    print()
    print(f"{'stage':<14}{'seconds':>10}{'peak RSS GB':>13}{'tree PSS GB':>13}{'rows/s':>14}")
    for stage, f in figures["stages"].items():
        print(f"{stage:<14}{f['seconds']:>10.2f}{f['peak_rss_gb']:>13.2f}{f['tree_peak_pss_gb']:>13.2f}"
              f"{(f['rows_per_second'] or 0):>14,}")
    total = figures["total_seconds"]
    print(f"{'whole study':<14}{total:>10.2f}{figures['peak_rss_gb']:>13.2f}{figures['tree_peak_pss_gb']:>13.2f}"
          f"{round(figures['event_rows'] / total):>14,}")
    print("(peak RSS: this process; tree PSS: this process and every process below it, the statistics workers and "
          "the Spark JVM included, shared pages counted once)")
    print(f"{'DuckDB load':<14}{figures['duckdb_load_seconds']:>10.2f}   (plain read_* of the same files; ratio "
          f"{figures['ratio_to_duckdb_load']})")
    print(f"{'staging scan':<14}{figures['staging_scan_seconds']:>10.2f}   (one full scan of staging.*)")
    print(f"{figures['patients']:,} patients, {figures['event_rows']:,} rows, {os.cpu_count()} cores")
    print("slowest steps: " + ", ".join(f"{step} {seconds:.0f} s"
                                        for step, seconds in figures["slowest_steps"].items()))
    if "spark" in figures:
        print_spark_figures(figures["spark"], figures.get("steps", {}))


def _cell(value, width: int, spec: str = ".1f") -> str:
    return f"{value:>{width}{spec}}" if value is not None else f"{'-':>{width}}"


def print_spark_figures(spark: dict, duckdb_steps: dict[str, dict]) -> None:
    if "skipped" in spark:
        print(f"\nSpark run skipped: {spark['skipped']}")
        return
    run = spark["run"]
    start_cpu = spark.get("session_start_cpu", {})
    print(f"\nthe same study job with engine spark ({spark['session_settings']['spark.master']}; session start "
          f"{spark['session_start_seconds']:.1f} s apart, {total_cpu(start_cpu) or 0:.1f} CPU s, JVM "
          f"{spark['jvm_rss_after_start_gb']:.2f} GB after it)")
    print(f"{'stage':<14}{'DuckDB s':>9}{'CPU s':>8}  {'engine':<14}{'Spark run s':>12}{'CPU s':>8}{'JVM CPU':>8}"
          f"{'jobs':>6}  {'engine':<30}{'x':>7}{'JVM GB':>8}")
    for row in spark["side_by_side"]:
        print(f"{row['stage']:<14}{_cell(row['duckdb_seconds'], 9)}{_cell(row['duckdb_cpu_seconds'], 8)}  "
              f"{row['duckdb_engine'] or '-':<14}{_cell(row['spark_run_seconds'], 12)}"
              f"{_cell(row['spark_run_cpu_seconds'], 8)}{_cell(row['spark_run_jvm_cpu_seconds'], 8)}"
              f"{_cell(row['spark_run_spark_jobs'], 6, 'd')}  {row['spark_run_engine'] or '-':<30}"
              f"{_cell(row['spark_over_duckdb'], 7)}{_cell(row['spark_run_jvm_peak_rss_gb'], 8, '.2f')}")
    print(f"{'whole study':<14}{'':>17}  {'':<14}{run['total_seconds']:>12.1f}{_cell(total_cpu(run), 8)}"
          f"{_cell(run.get('jvm_cpu_seconds'), 8)}{_cell(run.get('spark_jobs'), 6, 'd')}   (this process peak "
          f"{run['peak_rss_gb']:.2f} GB, JVM peak {run['jvm_peak_rss_gb']:.2f} GB, tree PSS peak "
          f"{run['tree_peak_pss_gb']:.2f} GB; {run.get('spark_jobs_between_steps')} jobs between steps)")
    print("(CPU s: every process of the run, this one, the JVM and the statistics workers; JVM CPU: the JVM's part)")
    print_steps_side_by_side(duckdb_steps, run.get("steps", {}))
    ingest = spark.get("ingest_on_spark", {})
    if ingest.get("in_run"):
        print("ingest: on Spark inside the run (its materialisations record spark)")
    elif "error" in ingest:
        print(f"ingest on Spark (outside the run): FAILED {ingest['error']}")
    elif ingest:
        print(f"ingest on Spark (outside the run, load_extract_on_spark on the same files): {ingest['seconds']:.1f} s, "
              f"{total_cpu(ingest) or 0:.1f} CPU s ({ingest.get('jvm_cpu_seconds', 0):.1f} JVM), "
              f"{ingest.get('spark_jobs')} Spark jobs, {ingest['rows_per_second']:,} rows/s, JVM peak "
              f"{ingest['jvm_peak_rss_gb']:.2f} GB (DuckDB run's ingest {ingest['duckdb_ingest_seconds']} s)")
    print(f"load average: before the session {spark['load_average_before_session']}, after the Spark run "
          f"{run['load_average_after']}")
    if not run["success"]:
        print("THE SPARK RUN FAILED:", *run["failures"], sep="\n")


def print_steps_side_by_side(duckdb_steps: dict[str, dict], spark_steps: dict[str, dict]) -> None:
    """Every step of either run, the Spark run's order (then the DuckDB run's other steps): seconds and CPU seconds
    on each engine, and the Spark run's JVM CPU seconds and Spark jobs: where a stage's time goes."""
    print(f"\n{'step':<46}{'DuckDB s':>9}{'CPU s':>8}{'Spark s':>9}{'CPU s':>8}{'JVM CPU':>8}{'tasks':>7}{'jobs':>6}")
    for key in [*spark_steps, *(key for key in duckdb_steps if key not in spark_steps)]:
        duck, spark = duckdb_steps.get(key, {}), spark_steps.get(key, {})
        print(f"{key:<46}{_cell(duck.get('seconds'), 9)}{_cell(total_cpu(duck), 8)}{_cell(spark.get('seconds'), 9)}"
              f"{_cell(total_cpu(spark), 8)}{_cell(spark.get('jvm_cpu_seconds'), 8)}"
              f"{_cell(spark.get('spark_task_cpu_seconds'), 7)}{_cell(spark.get('spark_jobs'), 6, 'd')}")
    print("(tasks: the CPU seconds of the Spark tasks, the work on the data, within the JVM's; the rest of the "
          "JVM's is the driver's planning and scheduling of the jobs)")


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


def write_report(figures: dict, results_dir: Path, prefix: str) -> Path:
    """bench/results/latest.json and <prefix>_<patients>.json (the same text)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(figures, indent=2)
    (results_dir / "latest.json").write_text(text)
    path = results_dir / f"{prefix}_{figures['patients']}.json"
    path.write_text(text)
    return path


def why_stopped(error: BaseException, doing: str) -> str:
    """What stopped the benchmark, and what it was measuring then: a stop signal first (a DuckDB query turns one
    into "Query interrupted", which is not the cause)."""
    if (stopped := _stop_received()) is not None:
        what = stopped
    elif isinstance(error, BenchmarkStopped):
        what = str(error)
    elif isinstance(error, KeyboardInterrupt):
        what = "stopped by SIGINT (Ctrl-C)"
    else:
        first_line = (str(error).splitlines() or [""])[0]
        what = f"failed: {type(error).__name__}: {first_line}" if first_line else f"failed: {type(error).__name__}"
    return f"{what}, while measuring {doing}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the leg-cramp study on N synthetic patients.")
    parser.add_argument("--patients", type=int, nargs="+", default=[1_000_000],
                        help="one size, or several (e.g. 100000 1000000) to also report how each stage scales")
    parser.add_argument("--extract", type=Path, help="measure this generated extract (its _manifest.json gives the "
                        "patients, format and rows) instead of generating one; --patients and --format are then "
                        "ignored")
    parser.add_argument("--format", default="csv", choices=["csv", "csv.gz", "parquet"])
    parser.add_argument("--seed", type=int, default=2024)
    # 5GB for DuckDB keeps the whole process (with Python, Dagster and GX) under the 6 GB target.
    parser.add_argument("--memory-limit", default="5GB", help="DuckDB memory limit (default 5GB)")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "spark"],
                        help="spark: also run the study job with engine spark on a local Spark session (pyspark, Java 17)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help=f"where the figures go (default {RESULTS_DIR.relative_to(BENCH_DIR.parent)})")
    parser.add_argument("--peer-python", help="also measure the duckcdm peer (bench/peer_duckcdm.py) with this "
                        "interpreter of its own environment, on --peer-extract")
    parser.add_argument("--peer-extract", type=Path, default=BENCH_DIR.parent.parent / "shared" / "data" / "omop"
                        / "eunomia_gibleed_v5.3", help="the OMOP CDM folder both sides load for the peer comparison")
    args = parser.parse_args(argv)
    if args.extract and not (args.extract / "_manifest.json").is_file():
        parser.error(f"--extract {args.extract}: no _manifest.json there; give an extract made by the generator "
                     "(pipelines.synthetic), whose manifest gives its patients and rows")

    args.results_dir.mkdir(parents=True, exist_ok=True)
    if args.peer_python:
        # Its own processes and figures file (bench/results/peer_duckcdm.json): the peer never runs in this
        # environment, and the OMOP folder is not the benchmark's extract.
        subprocess.run([sys.executable, str(BENCH_DIR / "peer_duckcdm.py"), "--extract", str(args.peer_extract),
                        "--peer-python", args.peer_python], check=True)
    if args.extract:
        patients, args.format = extract_settings(args.extract)
        sizes = [patients]
    else:
        sizes = sorted(args.patients)
    prefix = "spark" if args.engine == "spark" else args.format.replace(".", "_")
    runs = []
    with stop_signals():
        for patients in sizes:
            measured = Measured(patients, args.format, args.memory_limit)
            try:
                benchmark(measured, args.seed, args.results_dir if args.keep_database else None, args.engine,
                          extract=args.extract)
            except BaseException as error:  # stopped or failed: write what was measured, then stop as asked
                why = why_stopped(error, measured.doing)
                path = write_report(report(measured, why), args.results_dir, prefix)
                print(f"\nTHE BENCHMARK DID NOT FINISH ({why}); what it measured is in {path} "
                      '("complete": false)', file=sys.stderr)
                raise SystemExit(130 if isinstance(error, (BenchmarkStopped, KeyboardInterrupt)) else 1) from error
            figures = report(measured)
            write_report(figures, args.results_dir, prefix)
            print_figures(figures)
            runs.append(figures)
    if len(runs) > 1:
        table = scaling(runs[0], runs[-1])
        print_scaling(table)
        (args.results_dir / "scaling.json").write_text(json.dumps(table, indent=2))
    failed = [f for f in runs if f["failures"] or not f.get("spark", {}).get("run", {}).get("success", True)]
    for figures in failed:
        print(f"\nTHE {figures['patients']:,}-PATIENT RUN FAILED (figures above cover the steps that ran):",
              *figures["failures"], sep="\n")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
