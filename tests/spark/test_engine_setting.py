"""The engine setting of a run (resources.warehouse.config.engine; `legcramp-run --engine`, `make run ENGINE=`):
checked before a run starts, passed from the command line and the Makefile into the run config. No Spark session
starts here (the whole study on Spark is `legcramp-run --engine spark`, docs/scaling.md)."""

from __future__ import annotations

import subprocess

from pipelines.operations.run_config import config_problems, study_run_config
from pipelines.warehouse import Warehouse
from tests.support.paths import REPO_ROOT


def test_the_default_engine_is_duckdb_and_the_run_config_names_spark_only_when_asked(tmp_path):
    assert Warehouse().engine == "duckdb" and not Warehouse().on_spark
    (tmp_path / "extract").mkdir()
    default = study_run_config(tmp_path / "extract", tmp_path / "out" / "leg_cramps.duckdb")
    assert "engine" not in default["resources"]["warehouse"]["config"]
    spark = study_run_config(tmp_path / "extract", tmp_path / "out" / "leg_cramps.duckdb", engine="spark")
    assert spark["resources"]["warehouse"]["config"]["engine"] == "spark"
    assert Warehouse(**spark["resources"]["warehouse"]["config"]).on_spark
    assert config_problems(spark) == []  # Java and pyspark are present where this group runs


def test_an_unknown_engine_is_refused_before_the_run_starts(tmp_path):
    (tmp_path / "extract").mkdir()
    config = study_run_config(tmp_path / "extract", tmp_path / "out" / "leg_cramps.duckdb", engine="postgres")
    assert config_problems(config) == [
        "resources.warehouse.config.engine: 'postgres' is not an engine; one of duckdb, spark"]


def test_make_run_passes_engine_only_when_set():
    def run_command(*arguments: str) -> str:  # what make would run (-n: printed, not run)
        printed = subprocess.run(["make", "-n", "run", "EXTRACT=some/extract", *arguments],
                                 cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
        return [line for line in printed.splitlines() if "legcramp-run" in line][-1]

    # Without ENGINE the command is exactly the DuckDB run's.
    assert run_command().split() == [".venv/bin/legcramp-run", "--extract", "some/extract", "--db",
                                     "build/leg_cramps.duckdb"]
    assert run_command("ENGINE=spark").split()[-2:] == ["--engine", "spark"]
