"""The benchmark's report building (bench/run_benchmark.py): steps to stages, the engine each stage records, memory
attributed by time window, the side-by-side table of the DuckDB and Spark runs, finding the Spark JVM, and the report
of a benchmark that did not finish. No Java: the figures are built from known windows and samples, the engines and
an interrupted run from a real (tiny) Dagster job's events."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest
from bench.process_memory import descendants, process_cpu_seconds, process_pss
from bench.run_benchmark import (NOT_RECORDED, BenchmarkStopped, Measured, RssSampler, add_spark_jobs, failed_steps,
                                 java_descendants, main, print_figures, process_rss, report, run_figures,
                                 run_interrupted, side_by_side,
                                 stage_engine, stage_figures, step_engines, step_figures, step_windows, stop_signals,
                                 unfinished_steps)

GB = 10**9


def test_stage_engine_names_what_the_steps_record_and_never_assumes():
    engines = {"phenotypes": {"spark"}, "cohort_a": {"spark"}, "cohort_b": {"duckdb"}}
    assert stage_engine(["phenotypes"], engines) == "spark"
    assert stage_engine(["cohort_a", "cohort_b"], engines) == "duckdb+spark"
    assert stage_engine(["cohort_a", "cohort_a_data_quality"], engines) == f"spark (1 of 2 steps {NOT_RECORDED})"
    assert stage_engine(["load_extract"], engines) == NOT_RECORDED


def test_step_engines_reads_the_materialisations_metadata_of_a_real_run():
    @dg.asset
    def on_spark() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"engine": "spark"})

    @dg.asset
    def silent() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 3})

    @dg.multi_asset_check(specs=[dg.AssetCheckSpec("on_duckdb", asset="silent")])
    def checked_on_duckdb():  # as a data-quality step records its suite's engine (checks.engine_checked_on)
        yield dg.AssetCheckResult(asset_key="silent", check_name="on_duckdb", passed=True,
                                  metadata={"engine": "duckdb"})

    with dg.instance_for_test() as instance:
        result = dg.materialize([on_spark, silent, checked_on_duckdb], instance=instance)
        assert result.success
        assert step_engines(instance, result.run_id) == {"on_spark": {"spark"}, "checked_on_duckdb": {"duckdb"}}


def sampler_with(samples: list[tuple[float, int, int, int]],
                 cpu_samples: list[tuple[float, float, float, float]] = ()) -> RssSampler:
    sampler = RssSampler()  # never started: the samples are the test's
    sampler.samples = samples
    sampler.cpu_samples = list(cpu_samples)
    return sampler


def test_stage_figures_sum_step_seconds_and_attribute_peaks_by_window():
    windows = {
        "load_extract": (0.0, 10.0),
        "phenotypes": (10.0, 14.0),
        "cohort_leg_cramps": (14.0, 16.0),
        "cohort_thiazide_vs_ccb": (16.0, 19.0),
        "staging_person_data_quality": (19.0, 20.0),
        "published_database": (20.0, 20.5),
    }
    engines = {"phenotypes": {"spark"}, "cohort_leg_cramps": {"spark"}, "cohort_thiazide_vs_ccb": {"spark"}}
    samples = [(1.0, 2 * GB, 0, 2 * GB), (5.0, 3 * GB, 0, 4 * GB),        # ingest: this process 3 GB, its tree 4
               (11.0, 1 * GB, 4 * GB, 5 * GB), (13.0, 1 * GB, 3 * GB, 4 * GB),  # phenotypes: JVM peak 4 GB
               (15.0, 1 * GB, 2 * GB, 3 * GB), (18.0, 2 * GB, 5 * GB, 7 * GB),  # cohorts: JVM peak 5 GB
               (19.5, 1 * GB, 1 * GB, 2 * GB), (20.2, 1 * GB, 1 * GB, 2 * GB)]
    # Cumulative CPU seconds (this process, the JVM, the other processes below), sampled at the steps' edges and
    # between them: a step's CPU is the difference across its window.
    cpu_samples = [(0.0, 1.0, 0.0, 0.0), (10.0, 9.0, 0.0, 0.5), (14.0, 10.0, 6.0, 0.5), (16.0, 10.5, 8.0, 0.5),
                   (17.5, 10.6, 9.0, 0.5), (19.0, 11.0, 11.0, 0.5), (20.0, 11.5, 11.0, 3.5), (20.5, 11.6, 11.0, 3.5)]
    figures = stage_figures(windows, engines, sampler_with(samples, cpu_samples), total_rows=1000)
    assert list(figures) == ["ingest", "phenotypes", "cohorts", "data quality", "publish"]
    assert figures["ingest"] == {"seconds": 10.0, "peak_rss_gb": 3.0, "jvm_peak_rss_gb": 0.0, "tree_peak_pss_gb": 4.0,
                                 "python_cpu_seconds": 8.0, "jvm_cpu_seconds": 0.0, "other_cpu_seconds": 0.5,
                                 "rows_per_second": 100,
                                 "engine": NOT_RECORDED, "steps": 1}
    assert (figures["phenotypes"]["python_cpu_seconds"], figures["phenotypes"]["jvm_cpu_seconds"]) == (1.0, 6.0)
    # Two steps: (14, 16) and (16, 19), the sample inside the second (17.5) changes nothing.
    assert (figures["cohorts"]["python_cpu_seconds"], figures["cohorts"]["jvm_cpu_seconds"]) == (1.0, 5.0)
    assert figures["data quality"]["other_cpu_seconds"] == 3.0
    steps = step_figures(windows, sampler_with(samples, cpu_samples))
    assert list(steps) == list(windows)
    assert steps["cohort_thiazide_vs_ccb"] == {"started_at": 16.0, "seconds": 3.0, "python_cpu_seconds": 0.5,
                                               "jvm_cpu_seconds": 3.0, "other_cpu_seconds": 0.0}
    # A window between samples takes the last sample at or before each edge.
    assert sampler_with([], cpu_samples).cpu_between(15.0, 18.0) == {
        "python_cpu_seconds": 0.6, "jvm_cpu_seconds": 3.0, "other_cpu_seconds": 0.0}
    assert figures["phenotypes"]["jvm_peak_rss_gb"] == 4.0
    assert figures["phenotypes"]["engine"] == "spark"
    assert figures["cohorts"]["seconds"] == 5.0  # two steps, summed
    assert figures["cohorts"]["jvm_peak_rss_gb"] == 5.0
    assert figures["cohorts"]["peak_rss_gb"] == 2.0
    assert figures["cohorts"]["tree_peak_pss_gb"] == 7.0
    assert figures["cohorts"]["rows_per_second"] == 200
    assert figures["cohorts"]["engine"] == "spark"
    assert figures["data quality"]["engine"] == NOT_RECORDED
    assert figures["publish"]["seconds"] == 0.5


def test_side_by_side_pairs_stages_in_order_and_divides_spark_by_duckdb():
    duck = {"ingest": {"seconds": 10.0, "engine": NOT_RECORDED, "jvm_peak_rss_gb": 0.0},
            "phenotypes": {"seconds": 2.0, "engine": "duckdb", "jvm_peak_rss_gb": 0.0},
            "publish": {"seconds": 0.0, "engine": NOT_RECORDED, "jvm_peak_rss_gb": 0.0}}
    spark = {"phenotypes": {"seconds": 50.0, "engine": "spark", "jvm_peak_rss_gb": 3.7},
             "ingest": {"seconds": 12.0, "engine": NOT_RECORDED, "jvm_peak_rss_gb": 1.5},
             "publish": {"seconds": 1.0, "engine": NOT_RECORDED, "jvm_peak_rss_gb": 3.0},
             "statistics": {"seconds": 30.0, "engine": "spark", "jvm_peak_rss_gb": 3.9}}
    rows = side_by_side(duck, spark)
    assert [row["stage"] for row in rows] == ["ingest", "phenotypes", "statistics", "publish"]
    by_stage = {row["stage"]: row for row in rows}
    assert by_stage["phenotypes"]["spark_over_duckdb"] == 25.0
    assert by_stage["phenotypes"]["duckdb_engine"] == "duckdb"
    assert by_stage["phenotypes"]["spark_run_engine"] == "spark"
    assert by_stage["phenotypes"]["spark_run_jvm_peak_rss_gb"] == 3.7
    assert by_stage["ingest"]["spark_over_duckdb"] == 1.2
    assert by_stage["statistics"]["duckdb_seconds"] is None
    assert by_stage["statistics"]["spark_over_duckdb"] is None  # no DuckDB figure to divide by
    assert by_stage["publish"]["spark_over_duckdb"] is None  # DuckDB's 0 s: no ratio
    assert by_stage["ingest"]["duckdb_cpu_seconds"] is None  # not measured: no figure, never a 0


def test_side_by_side_gives_each_runs_cpu_over_all_its_processes_and_the_spark_runs_jobs():
    duck = {"cohorts": {"seconds": 4.0, "engine": "duckdb", "jvm_peak_rss_gb": 0.0, "python_cpu_seconds": 3.5,
                        "jvm_cpu_seconds": 0.0, "other_cpu_seconds": 0.25}}
    spark = {"cohorts": {"seconds": 60.0, "engine": "spark", "jvm_peak_rss_gb": 2.5, "python_cpu_seconds": 6.0,
                         "jvm_cpu_seconds": 40.0, "other_cpu_seconds": 0.0, "spark_jobs": 120}}
    [row] = side_by_side(duck, spark)
    assert (row["duckdb_cpu_seconds"], row["spark_run_cpu_seconds"]) == (3.75, 46.0)
    assert (row["spark_run_jvm_cpu_seconds"], row["spark_run_spark_jobs"]) == (40.0, 120)


def test_spark_jobs_are_counted_per_step_and_stage_by_their_submission_times():
    run = {"steps": {"phenotypes": {"started_at": 100.0, "seconds": 10.0},
                     "cohort_a": {"started_at": 111.0, "seconds": 4.0},
                     "cohort_b": {"started_at": 115.0, "seconds": 5.0},
                     "staging_person_data_quality": {"started_at": 121.0, "seconds": 1.0}},
           "stages": {"phenotypes": {}, "cohorts": {}, "data quality": {}}}
    # Two jobs before the first step (the run's setup), two between phenotypes and cohort_a (the first as
    # phenotypes ends), one as cohort_a ends and cohort_b starts: counted once, in cohort_b.
    submitted = [98.0, 99.5, 100.0, 104.2, 110.0, 110.5, 111.2, 113.0, 114.9, 115.0, 119.9, 121.5]
    # Spark stages (submission time, their tasks' CPU seconds): one before the steps, one in each cohort step.
    stages = [(99.0, 5.0), (100.5, 0.25), (104.2, 1.0), (113.0, 2.0), (115.0, 0.5)]
    add_spark_jobs(run, submitted, started_in_run=12, stages=stages)
    assert [of_step["spark_jobs"] for of_step in run["steps"].values()] == [2, 3, 2, 1]
    assert {stage: of_stage["spark_jobs"] for stage, of_stage in run["stages"].items()} == {
        "phenotypes": 2, "cohorts": 5, "data quality": 1}
    assert (run["spark_jobs"], run["spark_jobs_between_steps"]) == (12, 4)
    assert [of_step["spark_task_cpu_seconds"] for of_step in run["steps"].values()] == [1.25, 2.0, 0.5, 0.0]
    assert run["stages"]["cohorts"]["spark_task_cpu_seconds"] == 2.5 and run["spark_task_cpu_seconds"] == 8.75


def test_process_cpu_seconds_counts_a_childs_cpu_and_moves_it_to_the_parent_once_reaped():
    """The statistics workers end inside a run: their CPU must stay in the tree's figure (in their parent's reaped
    children's) after they are gone."""
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.6\n"
                              "while time.process_time() < end: pass\ninput()"], stdin=subprocess.PIPE, text=True)
    reaped_before = process_cpu_seconds(reaped_children=True) - process_cpu_seconds()
    try:
        deadline = time.time() + 120  # the machine may be loaded: CPU time, not wall time, is what is awaited
        while process_cpu_seconds(child.pid) < 0.6 and time.time() < deadline:
            time.sleep(0.05)
        assert process_cpu_seconds(child.pid) >= 0.6
    finally:
        child.communicate("")
    assert process_cpu_seconds(child.pid) == 0.0  # gone
    assert process_cpu_seconds(reaped_children=True) - process_cpu_seconds() - reaped_before >= 0.6


def finished_run(windows: dict[str, tuple[float, float]], engines: dict[str, set[str]], sampler: RssSampler,
                 total_rows: int) -> dict:
    """A finished run's figures as measure_run fills them (run_figures' parts, from known windows and samples)."""
    start, end = min(s for s, _ in windows.values()), max(e for _, e in windows.values())
    return {"engine_setting": "x", "load_average_before": [1.0, 1.0, 1.0], "total_seconds": end - start,
            "peak_rss_gb": 1.0, "jvm_peak_rss_gb": 2.0, "tree_peak_pss_gb": 3.0, **sampler.cpu_between(start, end),
            "load_average_after": [1.0, 1.0, 1.0], "stages": stage_figures(windows, engines, sampler, total_rows),
            "steps": step_figures(windows, sampler), "slowest_steps": {}, "success": True, "failed_steps": {},
            "failures": []}


def test_a_finished_spark_benchmark_reports_and_prints_both_runs_side_by_side(capsys):
    """The whole report of `--engine spark` as a finished benchmark writes and prints it: both runs per stage and
    per step, the Spark run's CPU, JVM and jobs, the Spark ingest line, complete."""
    duck_windows = {"load_extract": (0.0, 2.0), "phenotypes": (2.0, 3.0), "cohort_a": (3.0, 4.0)}
    spark_windows = {"load_extract": (10.0, 30.0), "phenotypes": (30.0, 50.0), "cohort_a": (50.0, 90.0)}
    cpu_samples = [(0.0, 0.0, 0.0, 0.0), (2.0, 1.5, 0.0, 0.0), (3.0, 2.0, 0.0, 0.0), (4.0, 3.0, 0.0, 0.25),
                   (10.0, 3.5, 1.0, 0.25), (30.0, 5.0, 15.0, 0.25), (50.0, 6.0, 30.0, 0.25), (90.0, 8.0, 60.0, 0.25)]
    sampler = sampler_with([(1.0, GB, 0, GB), (40.0, GB, 2 * GB, 3 * GB), (60.0, GB, 2.5 * GB, 3 * GB)],
                           cpu_samples)
    measured = Measured(1000, "csv", "5GB", rows_per_table={"person": 1000, "visit_occurrence": 9000},
                        duckdb_load_seconds=1.0, staging_scan_seconds=0.1)
    measured.duckdb_run.update(finished_run(duck_windows, {"phenotypes": {"duckdb"}, "cohort_a": {"duckdb"}},
                                            sampler, 10_000))
    run = finished_run(spark_windows, {key: {"spark"} for key in spark_windows}, sampler, 10_000)
    add_spark_jobs(run, [11.0, 31.0, 32.0, 51.0, 52.0, 53.0], started_in_run=6)
    measured.spark = {"load_average_before_session": [1.0, 1.0, 1.0], "session_start_seconds": 5.0,
                      "session_settings": {"spark.master": "local[2]"}, "session_start_cpu": sampler.cpu_between(4, 10),
                      "jvm_rss_after_start_gb": 0.5, "run": run, "ingest_on_spark": {"in_run": True}}
    figures = report(measured)
    print_figures(figures)
    printed = capsys.readouterr().out
    assert figures["complete"] is True and json.loads(json.dumps(figures)) == figures
    assert list(figures["steps"]) == list(duck_windows)
    [_, phenotypes, cohorts] = figures["spark"]["side_by_side"]
    assert (phenotypes["spark_over_duckdb"], phenotypes["spark_run_spark_jobs"]) == (20.0, 2)
    assert (cohorts["spark_run_cpu_seconds"], cohorts["spark_run_jvm_cpu_seconds"]) == (32.0, 30.0)
    assert re.search(r"^cohorts +1\.0 +1\.2  duckdb +40\.0 +32\.0 +30\.0 +3  spark +40\.0 +2\.50$", printed, re.M)
    assert re.search(r"^cohort_a +1\.0 +1\.2 +40\.0 +32\.0 +30\.0 +0\.0 +3$", printed, re.M)
    assert re.search(r"^whole study +80\.0 +63\.5 +59\.0 +6 ", printed, re.M)
    assert "session start 5.0 s apart, 1.5 CPU s" in printed
    assert "ingest: on Spark inside the run" in printed and "FAILED" not in printed


def test_java_descendants_finds_a_java_grandchild_and_reads_its_memory(tmp_path):
    """pyspark starts the JVM through spark-submit's shell script: the java process may be a grandchild."""
    java = tmp_path / "java"
    java.symlink_to("/bin/sleep")  # a process whose name is "java"
    shell = subprocess.Popen(["/bin/sh", "-c", f"{java} 30; true"])
    found: list[int] = []
    try:
        deadline = time.time() + 10
        while not found and time.time() < deadline:
            found = java_descendants(os.getpid())
            time.sleep(0.05)
        assert len(found) == 1
        assert found[0] != shell.pid  # the shell itself is not java
        with open(f"/proc/{found[0]}/stat") as stat:
            assert int(stat.read().rsplit(")", 1)[1].split()[1]) == shell.pid  # its parent is the shell
        assert process_rss(found[0]) > 0
    finally:
        for pid in found:  # the grandchild first: killing the shell would orphan it
            os.kill(pid, signal.SIGKILL)
        shell.kill()
        shell.wait()
    assert java_descendants(os.getpid()) == []
    assert process_rss(found[0]) == 0  # gone: no /proc entry


# ---------------------------------------------------------------------------------------------------------------
# A benchmark that does not finish writes what it measured, "complete": false, and why
# ---------------------------------------------------------------------------------------------------------------

def test_a_run_stopped_by_a_signal_reports_its_finished_steps_and_the_one_it_stopped():
    """The signal reaches Dagster's handler inside a step (as Ctrl-C or SIGTERM does during a study run): the run
    ends as interrupted, and its event log gives the finished step's window and the stopped step's time."""
    @dg.asset
    def quick() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"engine": "duckdb"})

    @dg.asset(deps=[quick])
    def slow() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # interrupted at once: Dagster raises in the step when the signal arrives

    with stop_signals(), dg.instance_for_test() as instance:  # stop_signals: as the benchmark runs
        started = time.time()
        result = dg.materialize([quick, slow], instance=instance, raise_on_error=False)
        ended = time.time()
        assert ended - started < 25 and not result.success
        assert run_interrupted(instance, result.run_id)
        assert list(step_windows(instance, result.run_id)) == ["quick"]
        unfinished = unfinished_steps(instance, result.run_id, ended)
        figures = run_figures(instance, result.run_id, started, ended, RssSampler(), total_rows=10)
    assert list(unfinished) == ["slow"] and re.fullmatch(r"running for \d+ s when stopped", unfinished["slow"])
    assert figures["complete"] is False and figures["success"] is False
    assert figures["unfinished_steps"] == unfinished
    assert "total_seconds" not in figures and figures["seconds_until_stopped"] >= 0
    assert figures["stages"]["other"]["steps"] == 1 and figures["stages"]["other"]["engine"] == "duckdb"
    assert list(figures["slowest_steps"]) == ["quick"]


def test_a_step_that_failed_by_itself_is_reported_with_its_innermost_error_and_a_stopped_one_is_not():
    """A run whose step failed on its own (the 10M run's "No space left on device") and that is then stopped: the
    report names the failed step with the error's innermost message; the step the stop interrupted is unfinished,
    not failed."""
    @dg.asset
    def out_of_disk() -> None:
        try:
            raise OSError("IO Error: Could not write file \"spill.tmp\": No space left on device")
        except OSError as error:
            raise RuntimeError("the cohort build failed") from error

    @dg.asset
    def stopped() -> None:
        time.sleep(1)  # lets out_of_disk fail first (the in-process executor runs one step at a time anyway)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

    with stop_signals(), dg.instance_for_test() as instance:
        started = time.time()
        result = dg.materialize([out_of_disk, stopped], instance=instance, raise_on_error=False)
        ended = time.time()
        failed = failed_steps(instance, result.run_id)
        figures = run_figures(instance, result.run_id, started, ended, RssSampler(), total_rows=10)
    assert failed == {"out_of_disk": 'OSError: IO Error: Could not write file "spill.tmp": No space left on device'}
    assert figures["failed_steps"] == failed and list(figures["unfinished_steps"]) == ["stopped"]


def test_a_run_that_finishes_is_complete_and_not_interrupted():
    @dg.asset
    def only() -> None:
        pass

    with dg.instance_for_test() as instance:
        result = dg.materialize([only], instance=instance)
        now = time.time()
        assert not run_interrupted(instance, result.run_id)
        assert unfinished_steps(instance, result.run_id, now) == {}
        figures = run_figures(instance, result.run_id, now - 1, now, RssSampler(), total_rows=10)
    assert figures["success"] is True and "complete" not in figures


def test_sigterm_stops_the_benchmark_with_its_name_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(BenchmarkStopped, match="^stopped by SIGTERM$"), stop_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_the_report_of_a_stopped_benchmark_holds_what_was_measured():
    measured = Measured(1000, "csv", "5GB", rows_per_table={"person": 1000, "death": 20},
                        duckdb_load_seconds=2.0)
    measured.duckdb_run.update(
        engine_setting="duckdb", seconds_until_stopped=30.0, peak_rss_gb=1.5, success=False, complete=False,
        stages={"ingest": {"seconds": 12.0, "engine": NOT_RECORDED}},
        unfinished_steps={"phenotypes": "running for 18 s when stopped"}, slowest_steps={"load_extract": 12.0})
    partial = report(measured, "stopped by SIGTERM, while measuring the duckdb run of the study job")
    assert partial["complete"] is False
    assert partial["why_incomplete"] == "stopped by SIGTERM, while measuring the duckdb run of the study job"
    # A stopped run's time is no whole-run time: no ratio is computed from it.
    assert (partial["event_rows"], partial["duckdb_load_seconds"], partial["seconds_until_stopped"]) == (1020, 2.0,
                                                                                                        30.0)
    assert partial["total_seconds"] is None and partial["ratio_to_duckdb_load"] is None
    assert partial["stages"] == {"ingest": {"seconds": 12.0, "engine": NOT_RECORDED}} and partial["ingest_seconds"] == 12
    assert partial["unfinished_steps"] == {"phenotypes": "running for 18 s when stopped"}
    assert partial["staging_scan_seconds"] is None and "spark" not in partial

    # The same run had it finished: no unfinished steps, and a report that says it is complete.
    for key in ("complete", "unfinished_steps", "seconds_until_stopped"):
        del measured.duckdb_run[key]
    measured.duckdb_run.update(total_seconds=30.0, success=True, failures=[])
    measured.staging_scan_seconds = 0.5
    finished = report(measured)
    assert finished["complete"] is True and "why_incomplete" not in finished and "unfinished_steps" not in finished
    assert (finished["total_seconds"], finished["ratio_to_duckdb_load"]) == (30.0, 15.0)


def test_a_failing_part_writes_the_report_with_the_error_and_what_it_was_measuring(generated_extract, tmp_path):
    extract = generated_extract(100, 1).path
    rows = sum(entry["rows"] for entry in json.loads((extract / "_manifest.json").read_text())["files"]
               if entry.get("table"))
    with pytest.raises(SystemExit) as stopped:
        # DuckDB refuses the memory limit in the plain load, the first part after reading the extract.
        main(["--extract", str(extract), "--memory-limit", "lots", "--results-dir", str(tmp_path)])
    assert stopped.value.code == 1
    written = json.loads((tmp_path / "csv_100.json").read_text())
    assert written == json.loads((tmp_path / "latest.json").read_text())
    assert written["complete"] is False and written["patients"] == 100 and written["event_rows"] == rows
    assert written["why_incomplete"].startswith("failed: ")
    assert written["why_incomplete"].endswith(", while measuring DuckDB's plain load")
    assert written["stages"] == {} and written["duckdb_load_seconds"] is None


def test_a_signal_during_a_duckdb_query_stops_the_run_and_the_report_names_it(tmp_path):
    """A signal while a step's warehouse connection runs a query: the watcher (pipelines/operations/stop_signals.py,
    tests/operations/test_stop_signals.py) interrupts the query and no step succeeds after it; the report counts the
    step as stopped, not as a finished step of its stage, and names the signal."""
    from pipelines.warehouse import Warehouse
    from tests.support.dagster_runs import signal_once_the_query_runs

    warehouse = Warehouse(database_path=str(tmp_path / "published.duckdb"))

    @dg.asset
    def querying() -> None:
        with warehouse.connect("run") as con:
            signal_once_the_query_runs(con, signal.SIGTERM)
            con.execute("SELECT sum(a.range * b.range) FROM range(100000) a, range(100000) b").fetchall()

    @dg.asset
    def then_independent() -> None:  # runs after `querying` (in-process steps run one at a time, by key)
        pass

    with stop_signals() as signals, dg.instance_for_test() as instance:
        result = dg.materialize([querying, then_independent], instance=instance, raise_on_error=False)
        assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
        assert run_interrupted(instance, result.run_id)
        assert signals.stopped_by() == "stopped by SIGTERM"
        figures = run_figures(instance, result.run_id, time.time() - 5, time.time(), RssSampler(), total_rows=10)
    # (The next step, when Dagster starts it before the flag is seen, is interrupted as it starts: stopped too.)
    assert figures["stages"] == {} and "querying" in figures["unfinished_steps"]
    assert set(figures["unfinished_steps"]) <= {"querying", "then_independent"}


def test_the_sampled_process_tree_holds_a_child_processes_memory():
    """The statistics stage's workers are processes below the run's: the tree's figure must hold their memory, and
    lose it when they end."""
    script = ("import sys; block = bytearray(500 * 2**20); block[::4096] = b'x' * len(block[::4096]); "
              "print('ready', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"  # its 500 MB are written, so resident
        assert child.pid in descendants(os.getpid())
        alone = process_pss(child.pid)
        assert alone > 500 * 2**20
        with RssSampler() as sampler:
            time.sleep(0.3)
        with_child = sampler.peak_between(0, time.time() + 1, tree=True)
        assert with_child >= process_pss() + alone - 100 * 2**20
    finally:
        child.stdin.close()
        child.wait()
    assert child.pid not in descendants(os.getpid())
    assert process_pss(child.pid) == 0
    with RssSampler() as sampler:
        time.sleep(0.3)
    assert with_child - sampler.peak_between(0, time.time() + 1, tree=True) >= alone - 100 * 2**20
