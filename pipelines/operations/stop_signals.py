"""Ctrl-C (SIGINT) and SIGTERM stop a whole study run, not only the step they land in.

While a Dagster run executes, Dagster's own handler has both signals. When one lands in Python code, the handler
raises Dagster's interrupt in the step and the run ends as interrupted: its other steps do not start, and so
nothing is published. But when it lands while DuckDB runs a query, the query goes on (Dagster's interrupt is not
one DuckDB stops for; measured with DuckDB 2.0 and Dagster 1.13: a query of minutes ran to its end, or until
`interrupt()`), the step then fails with "Query interrupted" (inside a Great Expectations validation, one check
records it as its error and the validation goes on), the interrupt itself is lost, and Dagster goes on with the
run's other steps.

So while a run lasts, `StopSignalWatcher` has every signal also written to a wakeup pipe (`signal.set_wakeup_fd`:
Python writes the signal's number whichever handler runs), and a thread reading the pipe, once a signal came,
- interrupts the query of every open `Warehouse.connect` connection (`warehouse.interrupt_open_connections`), so
  the step in flight ends at once (GX's own connections are not reached: a validation query runs to its end);
- raises Dagster's interrupt flag, the one its handler sets where a step cannot be interrupted at once; a step's
  start raises it as Dagster's interrupt, so no other step runs.
Both again every 0.2 s until the run ends: Dagster may take the flag inside the step that is failing anyway (its
teardown), and a step may start another query. The flag is a private name of Dagster's
(`dagster._utils.interrupts`); tests/operations/test_stop_signals.py fails if Dagster changes it.

`legcramp-run` runs the study under it (pipelines/run.py), and so does the benchmark (bench/run_benchmark.py).
A run launched from the UI runs in Dagster's own run worker process, without it.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from types import FrameType
from typing import Callable

from dagster._utils import interrupts as dagster_interrupts

from pipelines.warehouse import interrupt_open_connections

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_END = 0  # written to the pipe by __exit__: no signal has number 0
_RAISE_AGAIN_SECONDS = 0.2

Handler = Callable[[int, FrameType | None], object]


class StopSignalWatcher:
    """For the `with` block: remembers every SIGINT and SIGTERM (`received`, `stopped_by()`) and, after the first,
    keeps interrupting the warehouse's queries and Dagster's interrupt flag raised, so that a Dagster run inside the
    block stops (the module docstring says how).

    `handler`: installed for both signals while the block runs (e.g. one that raises an exception of the caller's);
    None keeps the handlers there are (Python's KeyboardInterrupt for SIGINT; during a run, Dagster's). Must be
    entered on the main thread (signal handlers and the wakeup fd belong to it)."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.received: list[str] = []
        self.first_at: float | None = None  # when the first stop signal reached the watcher
        self._handler = handler
        self._previous_handlers: dict = {}
        self._previous_wakeup = -1
        self._read, self._write = -1, -1
        self._thread = threading.Thread(target=self._watch, daemon=True, name="stop-signal-watcher")

    def __enter__(self) -> StopSignalWatcher:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # set_wakeup_fd needs it
        if self._handler is not None:
            self._previous_handlers = {signum: signal.signal(signum, self._handler) for signum in STOP_SIGNALS}
        self._previous_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        signal.set_wakeup_fd(self._previous_wakeup)
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        os.write(self._write, bytes([_END]))
        self._thread.join()
        os.close(self._read)
        os.close(self._write)
        dagster_interrupts._received_interrupt["received"] = False  # a stop in this block must not stop a later run

    def stopped_by(self) -> str | None:
        """"stopped by SIGINT" when a stop signal arrived (the first of them), else None. The pipe's byte reaches
        the watcher a moment after the signal: ask after the run, not from the handler."""
        return f"stopped by {self.received[0]}" if self.received else None

    def first_signal(self) -> signal.Signals | None:
        return signal.Signals[self.received[0]] if self.received else None

    def _watch(self) -> None:
        flag = dagster_interrupts._received_interrupt
        while True:
            if select.select([self._read], [], [], _RAISE_AGAIN_SECONDS)[0]:
                for signum in os.read(self._read, 64):
                    if signum == _END:
                        return
                    if signum in STOP_SIGNALS:
                        self.received.append(signal.Signals(signum).name)
                        self.first_at = self.first_at or time.time()
            if self.received:
                flag["received"] = True
                interrupt_open_connections()
