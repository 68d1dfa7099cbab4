"""CPU seconds of one study's statistics, per analysis, on a built study database (issue #21).

    PYTHONPATH=$PWD .venv/bin/python bench/statistics_speed.py DATABASE [--study leg_cramps] [--workers 1]
        [--save RESULTS.pkl] [--compare RESULTS.pkl] [--publish FOLDER] [--cprofile OUT.prof] [--memory-limit 3GB]

DATABASE is a DuckDB file after ingest, phenotypes and the cohort stage (as tests/conftest.py `study_database` builds
it); it is opened read-only. The study is analysed as its statistics asset analyses it (`analyse_study`), and each
part of the analysis is timed (CPU of this process, all its threads, and wall) and its peak memory taken (the PSS of
this process and every process below it, the fork server and the workers included, sampled every 50 ms:
bench/process_memory.py): reading the study population, the main analysis, the time-varying analyses, the
negative-control outcomes and exposures, each sensitivity analysis. With 1 worker (the default) every fit runs in
this process and its CPU is in its part's line; with more, only the wall times say what the pool gained (the workers
are children of the fork server, whose CPU this process does not see), and the workers' CPU is printed at the end
(the fork server's children's, from /proc, summed over the workers seen).

`--publish FOLDER` then copies the database there and times what the asset does after the analysis: publishing
(the disclosure rule), the plots and the reports. `--save` keeps what the analysis publishes (the rows of the main
analysis, the negative controls and each sensitivity analysis, the attrition, the notes, the Kaplan-Meier frame);
`--compare` reads a saved file and prints the largest relative difference of any number and whether everything else
is identical: a change for speed must not move a published number. A measurement, not a test: the figures depend on
the machine and its load, printed beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import math
import os
import pickle
import shutil
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.* when run as a script

from bench.process_memory import descendants, process_cpu_seconds, tree_pss  # noqa: E402
from pipelines.cohorts import load_studies  # noqa: E402
from pipelines.statistics import study_analysis  # noqa: E402
from pipelines.statistics.study_analysis import analyse_study, attrition_frame, results_frame  # noqa: E402

# The parts of study_analysis._analyse_study_population, by the module function each calls (outermost call only).
PARTS = {
    "study_population": lambda args: "read the study population",
    "_analyse_population": lambda args: "main analysis",
    "add_time_varying_analyses": lambda args: "time-varying Cox models",
    "negative_control_estimates": lambda args: "negative-control outcomes",
    "add_negative_control_exposure_estimates": lambda args: "negative-control exposures",
    "analyse_sensitivity": lambda args: f"sensitivity {args[3].id}",
}


class TreeMemory:
    """The PSS of this process and every process below it every 50 ms (`peak_between`), and the CPU seconds of the
    processes seen below it (`children_cpu`: the workers', read from /proc/<pid>/stat while they live)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._children_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            below = descendants(me)
            self.samples.append((time.perf_counter(), tree_pss(me, below)))
            for pid in below:
                cpu = process_cpu_seconds(pid)
                if cpu:  # 0.0: it ended since the lookup, keep what was last read
                    self._children_cpu[pid] = cpu
            time.sleep(0.05)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> int:
        return max((pss for at, pss in self.samples if start <= at <= end), default=0)

    @property
    def children_cpu(self) -> float:
        """CPU seconds of the processes below this one, as last seen (a worker's last 50 ms may be missing)."""
        return sum(self._children_cpu.values())


class PartTimer:
    """CPU and wall seconds per part, from wrappers around the module functions named in PARTS, and the wall-clock
    windows of each part (for its peak memory)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._depth = 0

    def wrap(self, module, name: str, label) -> None:
        original = getattr(module, name)

        def timed(*args, **kwargs):
            if self._depth:  # a part inside another (a sensitivity analysis's own analysis) counts in the outer one
                return original(*args, **kwargs)
            self._depth += 1
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth -= 1
                part = label(args)
                self.cpu[part] += time.process_time() - cpu
                self.wall[part] += time.perf_counter() - wall
                self.windows[part].append((wall, time.perf_counter()))
                # Printed as it ends too, so that a run stopped early still tells what it measured.
                print(f"  done: {part}, CPU {self.cpu[part]:.1f} s, wall {self.wall[part]:.1f} s, load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)

        setattr(module, name, timed)


def published_frames(study_id: str, analysis) -> dict[str, object]:
    """What the analysis hands to publishing, as results_frame and attrition_frame build it."""
    frames = {"main": results_frame(study_id, analysis.results),
              "negative-control outcomes": results_frame(study_id, analysis.negative_control_results),
              "negative-control exposures": results_frame(study_id, analysis.exposure_control_results),
              "attrition": attrition_frame(study_id, analysis),
              "notes": pd.DataFrame({"note": analysis.notes}),
              "kaplan-meier": analysis.km_data if analysis.km_data is not None else pd.DataFrame()}
    for sensitivity_id, variant in analysis.sensitivity.items():
        frames[f"sensitivity {sensitivity_id}"] = results_frame(study_id, variant.results)
        frames[f"sensitivity {sensitivity_id} attrition"] = attrition_frame(study_id, variant)
    return frames


def _relative_difference(a, b) -> float | None:
    """|a - b| / max(|a|, |b|) of two numbers; None when they are not both finite numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return None
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def compare(saved: dict[str, pd.DataFrame], now: dict[str, pd.DataFrame]) -> bool:
    """Print, per frame, whether it is identical to the saved one, else the largest relative difference of a number
    and the cells that differ otherwise; True when every frame is identical bit for bit."""
    identical = True
    for name in sorted(set(saved) | set(now)):
        before, after = saved.get(name), now.get(name)
        if before is None or after is None:
            print(f"  {name}: only {'after' if before is None else 'before'}")
            identical = False
            continue
        if before.shape != after.shape or list(before.columns) != list(after.columns):
            print(f"  {name}: shape {before.shape} -> {after.shape}, columns differ: "
                  f"{sorted(set(before.columns) ^ set(after.columns))}")
            identical = False
            continue
        largest, other = 0.0, []
        for column in before.columns:
            for row, (a, b) in enumerate(zip(before[column].tolist(), after[column].tolist())):
                if a is b or a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b):
                    continue
                difference = _relative_difference(a, b)
                if difference is None:
                    other.append((row, column, a, b))
                else:
                    largest = max(largest, difference)
        if largest == 0.0 and not other:
            print(f"  {name}: identical ({len(after)} rows)")
            continue
        identical = False
        print(f"  {name}: largest relative difference of a number {largest:.2e}; other differing cells: "
              f"{len(other)}{' e.g. ' + repr(other[:3]) if other else ''}")
    return identical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("--study", default="leg_cramps")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--publish", type=Path, help="a folder for a copy of the database to publish into")
    parser.add_argument("--cprofile", type=Path, help="write a cProfile of the analysis here (adds overhead)")
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB's memory_limit (the machine is shared)")
    options = parser.parse_args()
    study = load_studies()[options.study]
    timer = PartTimer()
    for name, label in PARTS.items():
        timer.wrap(study_analysis, name, label)
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    profiler = cProfile.Profile() if options.cprofile else None
    with TreeMemory() as memory:
        cpu, started = time.process_time(), time.perf_counter()
        with duckdb.connect(str(options.database), read_only=True,
                            config={"memory_limit": options.memory_limit}) as con:
            with profiler if profiler else contextlib.nullcontext():
                analysis = analyse_study(con, study, workers=options.workers)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    if profiler:
        profiler.dump_stats(options.cprofile)
    print(f"{study.id} with {options.workers} worker(s): {len(analysis.results)} main rows, "
          f"{sum(len(v.results) for v in analysis.sensitivity.values())} sensitivity rows")
    gb = 1e9
    print(f"{'part':<44} {'CPU s':>8} {'wall s':>8} {'peak GB':>8}")
    for part in timer.cpu:
        peak = max(memory.peak_between(start, end) for start, end in timer.windows[part])
        print(f"{part:<44} {timer.cpu[part]:>8.1f} {timer.wall[part]:>8.1f} {peak / gb:>8.2f}")
    print(f"{'the rest of analyse_study':<44} {cpu - sum(timer.cpu.values()):>8.1f} "
          f"{wall - sum(timer.wall.values()):>8.1f}")
    print(f"{'analyse_study, this process':<44} {cpu:>8.1f} {wall:>8.1f} "
          f"{memory.peak_between(started, started + wall) / gb:>8.2f}")
    print("(peak GB: PSS of this process and every process below it, workers included)")
    if options.workers > 1:
        print(f"{'the workers and their fork server':<44} {memory.children_cpu:>8.1f}   (their CPU is not in the "
              "parts' figures; measure CPU per part with 1 worker)")
    if options.publish:
        publish(options.publish, options.database, study, analysis)
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    frames = published_frames(study.id, analysis)
    if options.save:
        options.save.write_bytes(pickle.dumps(frames))
    if options.compare:
        print(f"against {options.compare}:")
        same = compare(pickle.loads(options.compare.read_bytes()), frames)
        print("identical" if same else "NOT identical")


def publish(folder: Path, database: Path, study, analysis) -> None:
    """Time what the study's asset does after the analysis, on a copy of the database."""
    from pipelines.statistics.assets import publish_study_results
    from pipelines.statistics.report import write_study_plots, write_study_reports

    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "published.duckdb"
    shutil.copy(database, copy)
    outputs = folder / "outputs" / study.id
    with duckdb.connect(str(copy)) as con:
        cpu = time.process_time()
        published = publish_study_results(con, study, analysis)
        print(f"{'publish_study_results':<44} {time.process_time() - cpu:>8.1f}")
        cpu = time.process_time()
        plots = write_study_plots(study, analysis, published, outputs)
        print(f"{'write_study_plots':<44} {time.process_time() - cpu:>8.1f}")
        cpu = time.process_time()
        write_study_reports(con, study, analysis, published, plots, outputs)
        print(f"{'write_study_reports':<44} {time.process_time() - cpu:>8.1f}")

if __name__ == "__main__":
    main()
