"""`legcramp-run` with a typo in a study file stops before Dagster is imported, printing the file, the field and
what is wrong (not a traceback once the definitions load). The run reads the repository's studies/ folder, so the
case runs on a copy of the code, phenotypes and studies with the typo, in a fresh interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
HEAVY_MODULES = ("dagster", "great_expectations", "pipelines.definitions", "pipelines.statistics", "lifelines")
PROBE = f"""
import json, sys
from pipelines.run import main
code = main(sys.argv[1:])
print(json.dumps({{"exit": code, "imported": sorted(h for h in {HEAVY_MODULES!r} if h in sys.modules)}}))
"""


def test_a_study_file_typo_stops_the_run_in_seconds_naming_the_file_and_field(generated_extract, tmp_path):
    copy = tmp_path / "repository"
    for folder in ("pipelines", "phenotypes", "studies"):
        shutil.copytree(REPOSITORY / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    study = copy / "studies" / "leg_cramps.yaml"
    text = study.read_text()
    assert "\nprior_observation_days:" in text
    study.write_text(text.replace("\nprior_observation_days:", "\nprior_observaton_days:", 1))
    database = tmp_path / "site.duckdb"

    completed = subprocess.run(
        [sys.executable, "-c", PROBE, "--extract", str(generated_extract(100, 1).path), "--db", str(database)],
        capture_output=True, text=True, cwd=copy, timeout=600,
        env={**os.environ, "PYTHONPATH": str(copy), "GX_ANALYTICS_ENABLED": "false"})

    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {"exit": 1, "imported": []}
    assert completed.stderr.splitlines() == [
        f"study definitions check failed: {study}: invalid study definition:",
        "  - prior_observaton_days: unknown field (check the spelling; docs/studies.md lists the fields)",
        "no run was started; the published database was not changed."]
    assert not database.exists()
