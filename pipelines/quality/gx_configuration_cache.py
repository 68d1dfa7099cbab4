"""Speed: GX 1.x rebuilds an expectation's configuration on every read; inside a validation it is built once.

``Expectation.configuration`` (GX 1.24.1) is a property that serialises the whole pydantic model
(``self.dict(...)``) and builds a new ``ExpectationConfiguration`` each time it is read, and GX reads it once per
domain or success key of every expectation while it plans and evaluates a validation (``_get_domain_kwargs`` and
``_get_success_kwargs`` read it inside a comprehension over the keys). A staging run read it 10,700 times for 132
expectations, whatever the data size: a third of the CPU under the profiler, about a seventh without it at 100
persons (docs/data_quality.md, *Where the time goes*).

Inside ``expectation_configurations_cached()`` the first read of each expectation object is kept and returned
again. This is safe because nothing changes an expectation while GX validates it: the validator builds a fresh
expectation object from each configuration (``ExpectationConfiguration.to_domain_obj``), reads it and drops it; the
suite's own expectations are only read. The kept objects are released when the last block ends (the cache holds
each expectation, so no id is reused while it is kept).

``tests/quality/test_quality_gx_speed.py`` checks that the cached validation gives the same results
and that GX still rebuilds the configuration outside the block. When GX caches it itself (or stops rebuilding it),
delete this module and its use in ``runner.py``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from great_expectations.expectations.expectation import Expectation

from pipelines.quality.gx_scoped_patch import ScopedPatch

_original_configuration = Expectation.configuration  # the property object
_cache: dict[int, tuple[Any, Any]] = {}  # id(expectation) -> (expectation, its configuration)


def _cached_configuration(self: Expectation):
    kept = _cache.get(id(self))
    if kept is not None and kept[0] is self:
        return kept[1]
    configuration = _original_configuration.fget(self)
    _cache[id(self)] = (self, configuration)
    return configuration


_CACHED_CONFIGURATION = ScopedPatch(Expectation, "configuration", property(_cached_configuration),
                                    on_last_exit=_cache.clear)


def expectation_configurations_cached() -> AbstractContextManager[None]:
    """Inside this block each expectation's configuration is built once (see the module docstring)."""
    return _CACHED_CONFIGURATION.active()
