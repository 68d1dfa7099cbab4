"""Model fits in worker processes, results in the order they were asked for.

A study's screening analyses (every exposure against the unexposed, again for each sensitivity variant and each
negative control) are independent fits on per-person frames the parent builds. `FitPool.ordered` hands each task (a
picklable value carrying only the columns its fit reads) to a worker process and yields the results in the order of
the tasks, so a study publishes the same rows in the same order with 1 worker or many: each fit is the same code on
the same frame, and nothing random is drawn outside the task (sampling uses the study's seed inside the task).

`workers`: how many processes fit at once (the `studies` resource's `statistics_workers`; by default the machine's
cores, or 1 for a study population under MIN_PERSONS_FOR_WORKERS persons: `workers_for`); 1 fits in this process,
one task after another, as before workers existed. With more, the parent builds the next frames while workers fit,
keeping at most 2 tasks per worker in flight (a frame per task is held at once).

Workers come from a fork server (Python's `forkserver` start method; `spawn` where there is none, i.e. Windows),
not from forking the run's process: that process has threads (DuckDB's, Dagster's log capture, the event-log
writer), and a fork copies whatever lock one of them holds at that instant, locked forever in the child (the reason
Python 3.14 made forkserver the default on Linux). The server is a fresh interpreter started once per run process; it
imports the fitting module once (`set_forkserver_preload`), so each worker forked from it starts in milliseconds
with pandas, lifelines and the estimators already imported. Starting the server costs one import of those modules
(about 2 CPU s), paid only by a study that fits with more than one worker.

Inside a pool (the `with` block, in this process and in every worker) the BLAS libraries numpy and scipy call use
one thread (BLAS_THREADS, threadpoolctl). The fits are matrix products of a few dozen columns: OpenBLAS's threads
spin while they wait for work, and beside a worker pool or other processes on the cores that spinning was most of
the CPU (one Cox fit of 190,000 rows: 0.6 CPU s with one thread, 12.8 with two at load 15). One thread also makes
the numbers independent of the machine's core count: a product split over threads sums in another order, which
moved published numbers by up to 1.3e-13 relative (docs/statistics.md, "Performance").
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

Task = TypeVar("Task")
Result = TypeVar("Result")

# Tasks queued per worker beyond the one it is fitting: enough that no worker waits for the parent, few enough that
# the frames waiting in the queue stay a small multiple of one.
TASKS_IN_FLIGHT_PER_WORKER = 2
# BLAS threads per fitting process (module docstring).
BLAS_THREADS = 1


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


# A study population smaller than this is fitted in the run's process unless the run asks for workers: its fits are
# few and quick (at 100 persons most models are decided by their counts, not fitted), while the fork server's start
# (an import of pandas, lifelines and the estimators, about 2 CPU s) comes before the first result, with the parent
# waiting. Measured (session 12, load 14-17, every study of a generated extract analysed with 1 and with 2 workers):
# at 99 persons the fork server and its workers took 4.7 CPU s where fitting in the run's process added 2.1 to it;
# at 946 persons the fits moved to the workers were about 3 CPU s, at 2,856 persons about 33.
MIN_PERSONS_FOR_WORKERS = 1_000


def workers_for(persons: int, workers: int | None = None) -> int:
    """The processes that fit a study population of `persons`: `workers` when the run sets it, else 1 below
    MIN_PERSONS_FOR_WORKERS persons and the machine's cores from there."""
    if workers is not None:
        return workers
    return 1 if persons < MIN_PERSONS_FOR_WORKERS else default_workers()


class FitPool:
    """`with FitPool(workers) as pool: for result in pool.ordered(function, tasks): ...`; the processes start at the
    first task and stop when the block ends. `function` must be a module-level function (it is pickled by name).
    While the block lasts, this process's BLAS libraries use BLAS_THREADS, as the workers' do."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"statistics workers must be at least 1, not {self.workers}")
        self._executor: ProcessPoolExecutor | None = None
        self._blas_limits: threadpool_limits | None = None

    def __enter__(self) -> FitPool:
        self._blas_limits = threadpool_limits(limits=BLAS_THREADS, user_api="blas")
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self._blas_limits is not None:
            self._blas_limits.restore_original_limits()
            self._blas_limits = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _started(self, module: str) -> ProcessPoolExecutor:
        if self._executor is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([module])  # no effect once this process's server has started
            else:  # pragma: no cover - Windows
                context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_limit_blas_threads)
        return self._executor

    def ordered(self, function: Callable[[Task], Result], tasks: Iterable[Task]) -> Iterator[Result]:
        """`function(task)` for each task, in the order of `tasks`; an error in a task is raised here, at its turn."""
        if self.workers == 1:
            for task in tasks:
                yield function(task)
            return
        executor = self._started(function.__module__)
        pending: deque[Future] = deque()
        for task in tasks:
            pending.append(executor.submit(_with_warnings, function, task))
            if len(pending) >= self.workers * TASKS_IN_FLIGHT_PER_WORKER:
                yield _warned_here(pending.popleft().result())
        while pending:
            yield _warned_here(pending.popleft().result())


def _limit_blas_threads() -> None:
    """A worker's start: its BLAS libraries use BLAS_THREADS for the rest of its life."""
    threadpool_limits(limits=BLAS_THREADS, user_api="blas")


def _with_warnings(function: Callable[[Task], Result], task: Task) -> tuple[Result, list[tuple]]:
    """In a worker: `function(task)` and the warnings it let pass (a fit keeps the ones that judge it:
    estimability.caught_fit_warnings). They go back to the run's process, whose logging and filters handle them as
    when fitting there; a worker's own stderr bypasses the run's captured logs."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        result = function(task)
    return result, [(str(r.message), r.category, r.filename, r.lineno) for r in records]


def _warned_here(outcome: tuple[Result, list[tuple]]) -> Result:
    result, passed = outcome
    for message, category, filename, lineno in passed:
        warnings.warn_explicit(message, category, filename, lineno)
    return result


SERIAL = FitPool(1)  # the default of the analysis functions: fit in this process


@dataclass(frozen=True)
class PackedFrame:
    """A per-person frame as a task carries it to a worker: each integer column in the narrowest integer type that
    holds its values (0/1 flags in one byte, follow-up days in two), which is exact, and `unpacked()` gives the frame
    back with its own types, so the fit computes on the same values of the same types as without packing. A
    task's frame is pickled in this process, queued and unpickled in the worker: at a million persons the
    follow-up, outcome, death and exposure columns take 13 bytes per person packed (their index included) instead
    of 40."""

    frame: pd.DataFrame
    dtypes: dict[str, np.dtype]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> PackedFrame:
        narrowed = {name: pd.to_numeric(frame[name], downcast="integer") for name, dtype in frame.dtypes.items()
                    if isinstance(dtype, np.dtype) and dtype.kind in "iu" and dtype.itemsize > 1}
        return cls(frame.assign(**narrowed) if narrowed else frame, dict(frame.dtypes))

    def unpacked(self) -> pd.DataFrame:
        return self.frame.astype(self.dtypes)

    def __len__(self) -> int:
        return len(self.frame)
