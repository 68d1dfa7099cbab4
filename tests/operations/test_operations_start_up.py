"""The command line's start-up path: `legcramp-run --check`, and a run refusing a broken extract, answer before
Dagster, Great Expectations, the statistics libraries or the code location are imported (docs/performance.md).
Each case runs in a fresh interpreter, so `sys.modules` shows exactly what the path imported."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
# What the start-up path must not import: each costs seconds to a minute on a loaded machine.
HEAVY_MODULES = ("dagster", "great_expectations", "pipelines.definitions", "pipelines.statistics", "sklearn",
                 "lifelines", "matplotlib", "simple_icd_10_cm")

PROBE = f"""
import json, sys
from pipelines.run import main
code = main(sys.argv[1:])
heavy = {HEAVY_MODULES!r}
print(json.dumps({{"exit": code, "imported": sorted(h for h in heavy if h in sys.modules)}}))
"""


def run_main(*arguments: str) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "GX_ANALYTICS_ENABLED": "false"}
    completed = subprocess.run([sys.executable, "-c", PROBE, *arguments], capture_output=True, text=True, env=env,
                               cwd=REPOSITORY, timeout=600)
    return json.loads(completed.stdout.strip().splitlines()[-1]), completed.stderr


@pytest.fixture(scope="module")
def small_extract(generated_extract):
    return generated_extract(100, 1).path


def test_check_imports_no_dagster(small_extract):
    outcome, _ = run_main("--check", "--extract", str(small_extract))
    assert outcome == {"exit": 0, "imported": []}


def test_run_refuses_a_broken_layout_before_starting_dagster(small_extract, tmp_path):
    extract = shutil.copytree(small_extract, tmp_path / "extract")
    person = extract / "person.csv"
    lines = person.read_text().splitlines(keepends=True)
    person.write_text(lines[0].replace("person_id", "patient_ref", 1) + "".join(lines[1:]))
    database = tmp_path / "site.duckdb"

    outcome, stderr = run_main("--extract", str(extract), "--db", str(database))

    assert outcome == {"exit": 1, "imported": []}
    assert "extract check failed" in stderr and "person.csv lacks person_id for the canonical layout" in stderr
    assert "no run was started; the published database was not changed." in stderr
    assert not database.exists()


def test_definitions_module_builds_the_code_location_only_on_demand():
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    probe = ("import json, sys, pipelines.definitions as d; "
             "print(json.dumps(['defs' in dir(d), sorted(m for m in sys.modules if m.startswith('pipelines.'))]))")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                               cwd=REPOSITORY, timeout=600, check=True)
    listed, imported = json.loads(completed.stdout.strip().splitlines()[-1])
    assert listed  # Dagster's `-m pipelines.definitions` finds `defs` through dir()
    assert imported == ["pipelines.definitions"]
