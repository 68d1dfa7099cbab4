"""What `bench/run_benchmark.py --engine spark` reads from the session (spark_jobs_and_stages, next_spark_job_id),
on the group's real session: every job a step starts is found by its submission time, and the tasks' CPU seconds
of its stages are there. The report building from these figures is tested without Java in
tests/bench/test_run_benchmark.py."""

from __future__ import annotations

import time

import pytest

from bench.run_benchmark import add_spark_jobs, next_spark_job_id, spark_jobs_and_stages

pytestmark = pytest.mark.spark


# Compiled, as the benchmark's session evaluates (the group's queries otherwise run interpreted, tests/spark/
# conftest.py, which makes the ten million rows below take 20 s instead of 1).
def test_the_jobs_and_task_cpu_of_a_window_are_found_by_their_submission_times(compiled_evaluation, spark):
    spark.range(10).count()  # whatever the session ran before: outside the window
    time.sleep(0.05)
    first_job = next_spark_job_id(spark)
    started = time.time()
    # Work on the data: a shuffle (two stages) over ten million rows, then a second, small job.
    spark.range(10_000_000, numPartitions=2).selectExpr("id % 7 AS k", "(id % 1000) * (id % 1000) AS v") \
        .groupBy("k").sum("v").collect()
    spark.range(5).collect()
    ended = time.time()
    jobs_started = next_spark_job_id(spark) - first_job
    assert jobs_started >= 2
    jobs, stages = spark_jobs_and_stages(spark)
    assert jobs == sorted(jobs) and stages == sorted(stages)
    inside = [when for when in jobs if started <= when < ended]
    assert len(inside) == jobs_started  # every job of the window, none before it
    run = {"steps": {"the_step": {"started_at": started, "seconds": ended - started}}, "stages": {}}
    add_spark_jobs(run, jobs, jobs_started, stages)
    assert run["steps"]["the_step"]["spark_jobs"] == jobs_started and run["spark_jobs_between_steps"] == 0
    # Squaring and summing ten million numbers (below 1,000, so no overflow) takes the tasks measurable CPU time; the small job's next to none.
    assert 0 < run["steps"]["the_step"]["spark_task_cpu_seconds"] <= run["spark_task_cpu_seconds"]
