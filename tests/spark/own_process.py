"""Work on DuckDB that only prepares a reference for a comparison goes on in a process of its own while this one drives
Spark (docs/scaling.md, "Proving the results identical"): the Spark side keeps about one of the two cores busy, its
driver waiting for one small job after another, so the DuckDB side takes the other core instead of adding its time
to the group's. A fresh interpreter (`spawn`), as the statistics workers use (pipelines/statistics/workers.py says
why not a fork of a process with threads)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any


@contextmanager
def started_in_own_process(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Future]:
    """`function(*args, **kwargs)` (a module-level function; its arguments and result are pickled) going on in a
    new process while the block runs; the future gives its result. The process ends with the call, not idle until
    the block ends holding its memory beside the Spark session; leaving the block does not wait for it, the future
    does."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        future = executor.submit(function, *args, **kwargs)
        executor.shutdown(wait=False)
        yield future
