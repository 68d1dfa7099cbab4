"""What the session fixtures of tests/conftest.py build once per test run and share between pytest-xdist workers."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def shared_session_dir(tmp_path_factory) -> Path:
    """A folder shared by every pytest-xdist worker of this run (the session's own base folder without xdist):
    where session fixtures keep what one worker builds and the others reuse."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(folder: Path, build: Callable[[Path], T]) -> T:
    """`build(folder)` run by one process only, whichever worker asks first; later callers (other workers, later
    tests) wait for it and get the pickled result. A build that raised leaves no result: the next caller starts
    again on an empty folder."""
    from filelock import FileLock

    done = folder.with_name(folder.name + ".result.pickle")
    with FileLock(str(folder.with_name(folder.name + ".lock"))):
        if not done.exists():
            if folder.exists():
                shutil.rmtree(folder)
            result = build(folder)
            partial = done.with_suffix(".partial")
            partial.write_bytes(pickle.dumps(result))
            partial.rename(done)
    return pickle.loads(done.read_bytes())
