"""One way to change Great Expectations' behaviour for the length of a block: `ScopedPatch`.

The two GX workarounds (gx_duckdb.py: buffered DuckDB results; gx_configuration_cache.py: an expectation's
configuration built once) replace one attribute of a GX class while a validation runs and restore it afterwards. Blocks
may nest or run at once in threads (the quality runner can validate suites concurrently), so the attribute is
replaced when the first block starts and restored when the LAST one ends, not when any one ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class ScopedPatch:
    """`owner.attribute = replacement` while at least one `with patch.active():` block runs; `on_last_exit` runs
    when the last block ends (after the original is back), e.g. to drop a cache."""

    def __init__(self, owner: type, attribute: str, replacement: Any,
                 on_last_exit: Callable[[], None] | None = None) -> None:
        self.owner, self.attribute, self.replacement = owner, attribute, replacement
        self.original = owner.__dict__[attribute]  # the descriptor itself (a property stays a property)
        self._on_last_exit = on_last_exit
        self._lock = threading.Lock()
        self._active_blocks = 0

    @contextmanager
    def active(self) -> Iterator[None]:
        with self._lock:
            self._active_blocks += 1
            setattr(self.owner, self.attribute, self.replacement)
        try:
            yield
        finally:
            with self._lock:
                self._active_blocks -= 1
                if self._active_blocks == 0:
                    setattr(self.owner, self.attribute, self.original)
                    if self._on_last_exit is not None:
                        self._on_last_exit()
