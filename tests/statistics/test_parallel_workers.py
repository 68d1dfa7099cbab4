"""The screening analyses fitted in worker processes publish what the serial path publishes: the same rows in the same
order, bit for bit (pipelines/statistics/workers.py), and a fit the counts already decide is withheld with the reason
a fitted one gets (estimability.decided_before_fitting)."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import duckdb
import pandas as pd
import pytest

from pipelines.cohorts import load_studies
from pipelines.engine.duckdb_engine import DuckDBEngine
from pipelines.engine.fingerprint import table_fingerprint
from pipelines.statistics.assets import publish_study_results
from pipelines.statistics.estimability import MIN_EVENTS_PER_VARIABLE, ModelFit, decided_before_fitting, judged
from pipelines.statistics.results import EstimateResult
from pipelines.statistics.study_analysis import analyse_study, attrition_frame, results_frame
from pipelines.statistics.workers import MIN_PERSONS_FOR_WORKERS, FitPool, default_workers, workers_for

PUBLISHED_TABLES = ("results.associations", "results.analysis_attrition", "results.analysis_covariates",
                    "results.negative_control_estimates")


def task_and_process(task: int) -> tuple[int, int]:
    return task, os.getpid()


def failing_task(task: int) -> int:
    if task == 2:
        raise ValueError("task 2 failed")
    return task


def test_a_pool_of_two_fits_in_other_processes_and_returns_results_in_task_order():
    with FitPool(2) as pool:
        answered = list(pool.ordered(task_and_process, range(12)))
    assert [task for task, _ in answered] == list(range(12))
    assert os.getpid() not in {pid for _, pid in answered}
    with FitPool(1) as pool:  # one worker: this process, as before workers existed
        assert {pid for _, pid in pool.ordered(task_and_process, range(3))} == {os.getpid()}


def test_an_error_in_a_worker_is_raised_in_the_parent_at_its_turn():
    with FitPool(2) as pool:
        answered = pool.ordered(failing_task, range(5))
        assert [next(answered), next(answered)] == [0, 1]
        with pytest.raises(ValueError, match="task 2 failed"):
            next(answered)


def test_a_small_study_population_is_fitted_in_this_process_unless_the_run_sets_the_workers():
    assert workers_for(MIN_PERSONS_FOR_WORKERS - 1) == 1
    assert workers_for(MIN_PERSONS_FOR_WORKERS) == default_workers()
    assert workers_for(99, workers=2) == 2  # statistics_workers as the run sets it
    assert workers_for(5_000, workers=1) == 1


def test_a_pool_needs_a_worker():
    with pytest.raises(ValueError, match="at least 1"):
        FitPool(0)


def _published_with(database, workers: int):
    """Every study's analysis with `workers` processes, published into `database`."""
    analyses = {}
    with duckdb.connect(str(database)) as con:
        for study in load_studies().values():
            analyses[study.id] = analysis = analyse_study(con, study, workers=workers)
            publish_study_results(con, study, analysis)
    return analyses, _fingerprints(database)


def _fingerprints(database) -> dict:
    with duckdb.connect(str(database), read_only=True) as con:
        return {table: table_fingerprint(DuckDBEngine(con), table) for table in PUBLISHED_TABLES}


def _frames(study_id: str, analysis) -> list[pd.DataFrame]:
    """The analysis's rows as results_frame builds them (main, negative controls, each sensitivity analysis) and
    its attrition, in the order produced."""
    return [results_frame(study_id, analysis.results), results_frame(study_id, analysis.negative_control_results),
            results_frame(study_id, analysis.exposure_control_results), attrition_frame(study_id, analysis),
            *(results_frame(study_id, variant.results) for variant in analysis.sensitivity.values())]


def test_one_and_two_workers_publish_identical_results_in_the_same_order(study_database, published_every_study,
                                                                          tmp_path):
    # One worker: the session's shared build (every study analysed in the test process and published).
    serial, _, serial_analyses = published_every_study(300, 1)
    serial_fingerprints = _fingerprints(serial)
    parallel = tmp_path / "parallel.duckdb"
    shutil.copy(study_database(300, 1), parallel)
    parallel_analyses, parallel_fingerprints = _published_with(parallel, 2)

    assert parallel_fingerprints == serial_fingerprints
    assert serial_fingerprints["results.associations"].rows > 100
    for study_id, analysis in serial_analyses.items():
        other = parallel_analyses[study_id]
        assert other.notes == analysis.notes, study_id
        assert list(other.sensitivity) == list(analysis.sensitivity)
        for mine, theirs in zip(_frames(study_id, analysis), _frames(study_id, other), strict=True):
            pd.testing.assert_frame_equal(theirs, mine, check_exact=True)  # same order, same bits
        if analysis.km_data is not None:
            pd.testing.assert_frame_equal(other.km_data, analysis.km_data, check_exact=True)
    with duckdb.connect(str(serial), read_only=True) as con:
        estimable = con.execute("SELECT count(*) FROM results.associations WHERE estimate IS NOT NULL").fetchone()[0]
    assert estimable > 20  # numbers were compared, not only withheld rows


def _cox_counts(events_exposed: int, events_unexposed: int) -> EstimateResult:
    return EstimateResult(method="Cox", estimand="hazard ratio of first outcome, exposed vs unexposed", estimate=None,
                          ci_lower=None, ci_upper=None, p_value=None, covariates=("age", "female"), n_exposed=400,
                          n_unexposed=600, events_exposed=events_exposed, events_unexposed=events_unexposed)


@pytest.mark.parametrize(("events_exposed", "events_unexposed", "parameters", "reason"), [
    (0, 40, 3, "no events among the exposed: the ratio is 0 or infinite"),
    (12, 0, 3, "no events among the unexposed: the ratio is 0 or infinite"),
    (10, 19, 3, f"fewer than {MIN_EVENTS_PER_VARIABLE} events per variable for 3 coefficients (Peduzzi 1995/1996)"),
])
def test_counts_that_decide_the_rule_withhold_the_model_with_the_reason_a_fit_gets(events_exposed, events_unexposed,
                                                                                  parameters, reason):
    unfitted = _cox_counts(events_exposed, events_unexposed)
    fit = ModelFit(parameters, events_exposed + events_unexposed)
    decided = decided_before_fitting(unfitted, fit)
    assert decided is not None and decided.not_estimable_reason == reason
    # What a fitted model with these counts is published as, whatever its estimate (a converged fit, here):
    fitted = replace(unfitted, estimate=1.7, ci_lower=0.9, ci_upper=3.2, p_value=0.1, se_log_estimate=0.32)
    assert judged(fitted, ModelFit(parameters, fit.events, 0.32, 0.35)) == decided


def test_counts_that_leave_the_rule_to_the_fit_decide_nothing():
    assert decided_before_fitting(_cox_counts(10, 20), ModelFit(3, 30)) is None
