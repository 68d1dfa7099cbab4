"""Where a small run's CPU goes: `legcramp-run` in this process, with its CPU seconds per stage and per step.

    python bench/profile_small_run.py --out FIGURES.json [--cprofile STATS] -- <legcramp-run arguments>

Runs `pipelines.run.main(<arguments>)` as the `legcramp-run` command does, in this one process (the study job's
executor runs every step in the run's process), while a thread samples the process's CPU time (user+sys of all its
threads, DuckDB's included) every 20 ms. Afterwards the CPU of each step is the CPU spent inside its window (its
STEP_START to its STEP_SUCCESS/STEP_FAILURE event), and what lies outside the steps is split into imports (Dagster,
the code location's modules), building the definitions, run set-up before the first step, and what follows the
last step (run teardown, the summary). `bench/small_extract.py` runs its whole-study command through this script and
takes these figures as they are (the one place that reads the run's step events).

--cprofile STATS also profiles the run with cProfile on CPU time (the profiler itself roughly doubles the CPU) and
prints the cumulative CPU of the functions that carry fixed costs: Dagster event-log writes, GX validations, Data
Docs rendering, the definitions build.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))


class CpuSampler:
    """(wall time, process CPU time) every `interval` seconds, so CPU can be attributed to wall-clock windows."""

    def __init__(self, interval: float = 0.02) -> None:
        self.samples: list[tuple[float, float]] = []
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), time.process_time()))
            self._stop.wait(self._interval)

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), time.process_time()))

    def cpu_at(self, moment: float) -> float:
        """Process CPU seconds at wall time `moment` (the sample just before it)."""
        import bisect

        index = bisect.bisect_right(self.samples, (moment, float("inf"))) - 1
        return self.samples[max(index, 0)][1]

    def cpu_between(self, start: float, end: float) -> float:
        return self.cpu_at(end) - self.cpu_at(start)


# Functions whose cumulative CPU a --cprofile run prints: (label, file fragment, function name).
FIXED_COST_FUNCTIONS = (
    ("Dagster event-log writes (store_event)", "sql_event_log", "store_event"),
    ("Dagster: handle_new_event", "instance/__init__", "handle_new_event"),
    ("data quality: run_suites", "quality/runner", "run_suites"),
    ("data quality: GX validation (_validate_with_gx)", "quality/runner", "_validate_with_gx"),
    ("data quality: GX context (_gx_context)", "quality/runner", "_gx_context"),
    ("data quality: GX ValidationDefinition.run", "validation_definition", "run"),
    ("data quality: publishable validation results (serialize)", "quality/runner", "serialize"),
    ("data quality: Data Docs build_data_docs", "data_context", "build_data_docs"),
    ("data quality: make_data_docs_offline", "quality/offline_docs", "make_data_docs_offline"),
    ("data quality: record_results", "quality/runner", "record_results"),
    ("definitions: load_definitions", "pipelines/definitions", "load_definitions"),
    ("phenotype library load", "phenotypes/loader", "load_phenotype_library"),
    ("studies load", "cohorts/study", "load_studies"),
    ("studies read (files parsed and checked)", "cohorts/study", "_read_studies"),
    # Dagster's per-input and per-output partition and data-version reads (issue #21): the storage's own calls, so
    # those the run's instance answers from memory (pipelines/operations/run_instance.py) are not counted.
    ("Dagster: site partition exists? (storage query)", "sql_event_log", "has_dynamic_partition"),
    ("Dagster: input data versions (get_latest_tags_by_partition)", "sql_event_log", "get_latest_tags_by_partition"),
    ("Dagster: planned events at run creation", "run_domain", "_log_asset_planned_events"),
    # Dagster's SQLite storage builds an engine per query; the run's storage keeps one per database (issue #21).
    ("Dagster: event-log connections (Dagster's storage)", "sqlite_event_log", "_connect"),
    ("Dagster: event-log connections (the run's storage)", "operations/run_instance", "_connect"),
    ("SQLAlchemy engines built (create_engine)", "sqlalchemy/engine/create", "create_engine"),
    ("data quality: GX context and datasource (kept, _duckdb_validation)", "quality/runner", "_duckdb_validation"),
    ("statistics: figures (write_study_plots)", "statistics/report", "write_study_plots"),
    ("statistics: reports (write_study_reports)", "statistics/report", "write_study_reports"),
    ("statistics: small-cell accounting (suppress_study_counts)", "statistics", "suppress_study_counts"),
    ("statistics: model fitting (analyse_study)", "statistics/study_analysis", "analyse_study"),
)


def cprofile_summary(stats_path: Path) -> tuple[dict[str, float], dict[str, int]]:
    """Cumulative CPU seconds and call counts of FIXED_COST_FUNCTIONS."""
    import pstats

    stats = pstats.Stats(str(stats_path))
    found: dict[str, float] = {}
    calls: dict[str, int] = {}
    for (file, _line, function), (_cc, ncalls, _tt, cumulative, _callers) in stats.stats.items():
        for label, fragment, name in FIXED_COST_FUNCTIONS:
            if function == name and fragment in file and cumulative >= found.get(label, 0.0):
                found[label] = round(cumulative, 2)
                calls[label] = ncalls
    return found, calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the figures go (JSON)")
    parser.add_argument("--cprofile", type=Path, help="also profile with cProfile (CPU time) into this file")
    parser.add_argument("run_arguments", nargs=argparse.REMAINDER, help="-- then the arguments of legcramp-run")
    args = parser.parse_args(argv)
    run_arguments = [a for a in args.run_arguments if a != "--"]

    process_start_cpu = time.process_time()  # the interpreter's own start-up is before this
    with CpuSampler() as sampler:
        started = time.time()
        profiler = None
        if args.cprofile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
        cpu0 = time.process_time()
        import dagster  # noqa: F401  (what every run imports first)
        cpu_dagster = time.process_time()
        import pipelines.run as run
        from pipelines.definitions import load_definitions

        cpu_imports = time.process_time()
        build_started = time.time()
        load_definitions()  # built here once, so the run finds them built and its set-up is measured apart
        build_ended = time.time()
        cpu_definitions = time.process_time()
        exit_code = run.main(run_arguments)
        ended = time.time()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.cprofile))

    import dagster as dg
    from run_benchmark import STAGES, stage_of

    instance = dg.DagsterInstance.get()
    (dagster_run,) = instance.get_runs(limit=1)
    starts, windows, events = {}, {}, defaultdict(int)
    for record in instance.all_logs(dagster_run.run_id):
        event = record.dagster_event
        if event is None:
            continue
        events[event.event_type_value] += 1
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
            windows[event.step_key] = (starts[event.step_key], record.timestamp)
    stage_cpu: dict[str, float] = defaultdict(float)
    stage_wall: dict[str, float] = defaultdict(float)
    step_cpu = {}
    for step_key, (start, end) in windows.items():
        cpu = sampler.cpu_between(start, end)
        step_cpu[step_key] = round(cpu, 2)
        stage_cpu[stage_of(step_key)] += cpu
        stage_wall[stage_of(step_key)] += end - start
    first_step = min(start for start, _ in windows.values()) if windows else ended
    last_step = max(end for _, end in windows.values()) if windows else ended
    in_steps = sum(step_cpu.values())
    figures = {
        "exit": exit_code,
        "run_id": dagster_run.run_id,
        "wall_s": round(ended - started, 2),
        "cpu_s": round(sampler.samples[-1][1] - process_start_cpu, 2),
        "cpu_before_this_script_s": round(process_start_cpu, 2),
        "cpu_s_outside_steps": {
            "import dagster": round(cpu_dagster - cpu0, 2),
            "import pipelines.run and pipelines.definitions": round(cpu_imports - cpu_dagster, 2),
            "build the definitions": round(cpu_definitions - cpu_imports, 2),
            "run set-up (to the first step)": round(sampler.cpu_between(build_ended, first_step), 2),
            "between steps": round(sampler.cpu_between(first_step, last_step) - in_steps, 2),
            "after the last step (teardown, summary)": round(sampler.cpu_between(last_step, ended), 2),
        },
        "definitions_build_wall_s": round(build_ended - build_started, 2),
        "stages_cpu_s": {stage: round(stage_cpu[stage], 2) for stage in [*STAGES, "other"] if stage in stage_cpu},
        "stages_wall_s": {stage: round(stage_wall[stage], 2) for stage in [*STAGES, "other"] if stage in stage_wall},
        "first_step_at": first_step if windows else None,  # bench/small_extract.py: start-up from outside
        "steps": len(windows),
        "steps_cpu_s": dict(sorted(step_cpu.items(), key=lambda item: -item[1])),
        "asset_check_results": events["ASSET_CHECK_EVALUATION"],
        "events": sum(events.values()),
        "events_by_type": dict(sorted(events.items(), key=lambda item: -item[1])),
    }
    if args.cprofile:
        figures["cprofile_cumulative_cpu_s"], figures["cprofile_calls"] = cprofile_summary(args.cprofile)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return exit_code


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    sys.exit(main())
