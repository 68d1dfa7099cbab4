"""The session fixtures' build-once rule (tests/support/shared_fixtures.py): concurrent processes, as pytest-xdist
workers are, build a shared input once and all get its result; a failed build is started again from nothing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tests.support.shared_fixtures import build_once


def _slow_build(folder: Path) -> dict:
    import time

    folder.mkdir()
    with (folder.parent / "builds.log").open("a") as log:
        log.write("built\n")
    time.sleep(0.5)  # long enough for every other process to arrive while the first one builds
    (folder / "data.txt").write_text("rows")
    return {"rows": ("a", "b"), "path": folder / "data.txt"}


def _ask(folder: str, results) -> None:
    results.put(build_once(Path(folder), _slow_build))


def test_four_processes_asking_at_once_build_once_and_get_the_same_result(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_ask, args=(str(tmp_path / "input"), results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert (tmp_path / "builds.log").read_text() == "built\n"
    assert answers == [{"rows": ("a", "b"), "path": tmp_path / "input" / "data.txt"}] * 4
    assert build_once(tmp_path / "input", _slow_build) == answers[0]  # and later callers too
    assert (tmp_path / "builds.log").read_text() == "built\n"


def test_a_failed_build_leaves_no_result_and_the_next_caller_starts_again(tmp_path):
    def failing(folder: Path):
        folder.mkdir()
        (folder / "half_written.txt").write_text("x")
        raise RuntimeError("generator crashed")

    with pytest.raises(RuntimeError, match="generator crashed"):
        build_once(tmp_path / "input", failing)
    assert build_once(tmp_path / "input", _slow_build)["rows"] == ("a", "b")
    assert sorted(p.name for p in (tmp_path / "input").iterdir()) == ["data.txt"]
