"""What analysts and operators see around publishing: a reader holding the published database open during a run,
and a run killed with SIGKILL part-way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from pipelines.run import run_study
from tests.support.paths import REPO_ROOT
from tests.support.planted_rejects import FIXTURE_MAX_REJECT_SHARE, write_fixture

PYTHON = sys.executable
# The generated extract of these tests: small, because a study run has ~15 s of fixed cost and these tests are
# about files and processes, not scale.
PATIENTS = 200

# An analyst in another process: opens the published database read-only once, then answers each line on stdin
# with the person count and a fingerprint of staging.person, as JSON.
ANALYST = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("ready", flush=True)
for _ in sys.stdin:
    persons, fingerprint = con.execute("SELECT count(*), sum(hash(person_id)) FROM staging.person").fetchone()
    tables = con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0]
    print(json.dumps([persons, str(fingerprint), tables]), flush=True)
"""


@pytest.fixture(scope="module")
def small_extract(generated_extract):
    # Seed 7: smaller extracts with some seeds hit a ZeroDivisionError in the sequence-symmetry step (reported).
    return generated_extract(PATIENTS, 7).path


def _ask(analyst: subprocess.Popen) -> list:
    analyst.stdin.write("?\n")
    analyst.stdin.flush()
    return json.loads(analyst.stdout.readline())


@pytest.mark.slow
def test_a_reader_keeps_its_version_during_a_run_and_new_readers_see_the_new_one(
        tmp_path, dagster_instance, small_extract):
    database = tmp_path / "published" / "study.duckdb"
    assert run_study(write_fixture(tmp_path / "old_extract"), database, instance=dagster_instance,
                     max_reject_share=FIXTURE_MAX_REJECT_SHARE).success

    analyst = subprocess.Popen([PYTHON, "-c", ANALYST, str(database)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert analyst.stdout.readline().strip() == "ready"
        old_version = _ask(analyst)
        assert old_version[0] == 3

        # The run goes on in a thread while the analyst keeps querying the file it opened.
        outcome = {}
        run = threading.Thread(target=lambda: outcome.update(
            result=run_study(small_extract, database, instance=dagster_instance)))
        run.start()
        answers_during_run = []
        deadline = time.monotonic() + 240
        while run.is_alive() and time.monotonic() < deadline:
            answers_during_run.append(_ask(analyst))
            time.sleep(0.5)
        run.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not run.is_alive(), "the run did not finish within 4 minutes"

        assert outcome["result"].success
        assert len(answers_during_run) > 3
        assert all(answer == old_version for answer in answers_during_run)
        assert _ask(analyst) == old_version, "the held connection must keep reading the version it opened"
    finally:
        analyst.stdin.close()
        analyst.wait(timeout=30)

    # A connection opened now (in a fresh process, as a new analyst would) reads the new version.
    fresh = subprocess.run([PYTHON, "-c", ANALYST, str(database)], input="?\n", capture_output=True, text=True,
                           timeout=60, check=True)
    new_version = json.loads(fresh.stdout.splitlines()[1])
    assert new_version[0] == PATIENTS and new_version != old_version

    # The analysts' example queries run on the new version (blocks that attach other files excepted).
    queries = re.findall(r"```sql\n(.*?)```", (REPO_ROOT / "docs" / "example_queries.md").read_text(), re.S)
    assert queries
    with duckdb.connect(str(database), read_only=True) as con:
        for query in queries:
            if "ATTACH" not in query:
                con.execute(query).fetchall()


@pytest.mark.slow
def test_a_killed_run_leaves_the_published_database_byte_identical_and_the_next_run_succeeds(
        tmp_path, small_extract):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1",
           "GX_ANALYTICS_ENABLED": "false"}
    database = tmp_path / "published" / "study.duckdb"
    # What is published before does not matter to this test, only that not one byte of it changes.
    database.parent.mkdir()
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE published_before AS SELECT 42 AS answer")
    before = database.read_bytes()
    command = [PYTHON, "-m", "pipelines.run", "--extract", str(small_extract), "--db", str(database)]

    run = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        builds = database.parent / ".runs"
        deadline = time.monotonic() + 120
        while not list(builds.glob("*/*.duckdb")) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.poll() is None, "the run ended before its build file appeared"
        assert list(builds.glob("*/*.duckdb")), "no build file appeared within 2 minutes"
        time.sleep(1)  # let it write into the build file
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the run and anything it started
        run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL
    assert database.read_bytes() == before

    # The next run removes the killed run's build folder and lock, and publishes its own version.
    next_run = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert next_run.returncode == 0, next_run.stderr[-3000:]
    assert not list(builds.iterdir()), "what the killed run left under .runs/ must have been removed"
    assert f"patients loaded:    {PATIENTS}" in next_run.stdout
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.person").fetchone()[0] == PATIENTS
