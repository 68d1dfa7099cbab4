"""The benchmark's report building (bench/run_benchmark.py): steps to stages, the engine each stage records, memory
attributed by time window, the side-by-side table of the DuckDB and Spark runs, and finding the Spark JVM. No Java:
the figures are built from known windows and samples, the engines from a real (tiny) Dagster job's events."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import dagster as dg
from bench.run_benchmark import (NOT_RECORDED, RssSampler, java_descendants, process_rss, side_by_side, stage_engine,
                                 stage_figures, step_engines)

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

    result = dg.materialize([on_spark, silent])
    assert result.success
    assert step_engines(result) == {"on_spark": {"spark"}}


def sampler_with(samples: list[tuple[float, int, int]]) -> RssSampler:
    sampler = RssSampler()  # never started: the samples are the test's
    sampler.samples = samples
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
    samples = [(1.0, 2 * GB, 0), (5.0, 3 * GB, 0),              # ingest: this process 3 GB, no JVM
               (11.0, 1 * GB, 4 * GB), (13.0, 1 * GB, 3 * GB),  # phenotypes: JVM peak 4 GB
               (15.0, 1 * GB, 2 * GB), (18.0, 2 * GB, 5 * GB),  # cohorts: JVM peak 5 GB
               (19.5, 1 * GB, 1 * GB), (20.2, 1 * GB, 1 * GB)]
    figures = stage_figures(windows, engines, sampler_with(samples), total_rows=1000)
    assert list(figures) == ["ingest", "phenotypes", "cohorts", "data quality", "publish"]
    assert figures["ingest"] == {"seconds": 10.0, "peak_rss_gb": 3.0, "jvm_peak_rss_gb": 0.0, "rows_per_second": 100,
                                 "engine": NOT_RECORDED, "steps": 1}
    assert figures["phenotypes"]["jvm_peak_rss_gb"] == 4.0
    assert figures["phenotypes"]["engine"] == "spark"
    assert figures["cohorts"]["seconds"] == 5.0  # two steps, summed
    assert figures["cohorts"]["jvm_peak_rss_gb"] == 5.0
    assert figures["cohorts"]["peak_rss_gb"] == 2.0
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
