"""Shared test fixtures."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import NamedTuple

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

from tests.support.paths import REPO_ROOT
from tests.support.shared_fixtures import build_once, shared_session_dir


class GeneratedExtract(NamedTuple):
    path: Path
    truth: dict


@pytest.fixture
def dagster_instance(tmp_path):
    """A real, persistent Dagster instance in a temporary DAGSTER_HOME configured by the repository's dagster.yaml
    (telemetry off, run concurrency, retries, monitoring). instance_for_test writes its own dagster.yaml into the
    folder, so the project's settings go in as its overrides."""
    import dagster as dg
    import yaml

    home = tmp_path / "dagster_home"
    home.mkdir()
    project_settings = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides=project_settings, temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture(scope="session")
def generated_extract(tmp_path_factory):
    """`generated_extract(patients, seed, **options)`: a synthetic extract made by pipelines.synthetic, generated
    once per test run for each set of arguments and shared by every test (and every xdist worker) that asks for the
    same one.

    Returns a `GeneratedExtract` (the folder and the generator's ground truth). The folder is shared: tests only
    read it; a test that changes files works on a copy (`shutil.copytree(extract.path, tmp_path / "extract")`).
    """
    from pipelines.synthetic import generate_extract

    defaults = {name: p.default for name, p in inspect.signature(generate_extract).parameters.items()}
    root = shared_session_dir(tmp_path_factory)
    made: dict[tuple, GeneratedExtract] = {}

    def generated(patients: int, seed: int, **options) -> GeneratedExtract:
        # An option given at its default value asks for the same extract as leaving it out.
        settings = (patients, seed, tuple(sorted((k, v) for k, v in options.items() if defaults[k] != v)))
        if settings not in made:
            name = "_".join(["generated", str(patients), str(seed), *(f"{k}-{v}" for k, v in settings[2])])
            folder = root / name / "extract"
            folder.parent.mkdir(exist_ok=True)
            truth = build_once(folder, lambda out: generate_extract(out, patients, seed=seed, progress=False,
                                                                    **options))
            made[settings] = GeneratedExtract(folder, truth)
        return made[settings]

    return generated


@pytest.fixture(scope="session")
def study_database(generated_extract, tmp_path_factory):
    """`study_database(patients, seed, **options)`: the DuckDB file of `generated_extract(patients, seed, **options)`
    after ingest, phenotypes and the cohort build of every study (pipelines' own functions, as a run calls them),
    built once per test run for all workers.

    The file is shared: read it with `duckdb.connect(path, read_only=True)`, or copy it before writing
    (`shutil.copy(study_database(300, 1), tmp_path / "study.duckdb")`; a copy costs milliseconds, a build seconds).
    """
    import duckdb

    from pipelines.cohorts import build_all_studies
    from pipelines.ingest.loader import load_extract
    from pipelines.phenotypes import run_phenotypes

    made: dict[Path, Path] = {}

    def built(patients: int, seed: int, **options) -> Path:
        extract = generated_extract(patients, seed, **options).path
        if extract not in made:
            def build(folder: Path) -> Path:
                folder.mkdir()
                database = folder / "study.duckdb"
                with duckdb.connect(str(database)) as con:
                    load_extract(con, extract)
                    run_phenotypes(con)
                    build_all_studies(con)
                return database

            made[extract] = build_once(extract.parent / "study_database", build)
        return made[extract]

    return built


@pytest.fixture(scope="session")
def published_every_study(study_database):
    """`published_every_study(patients, seed, **options)`: a copy of `study_database(patients, seed, **options)` with
    every bundled study analysed in this process (one statistics worker) and published as the statistics asset
    publishes it (tests/support/published_studies.py), built once per test run for all workers.

    Returns (the database's path, the studies by id, each study's analysis by id after publishing). Shared like
    `study_database`: read the file with `read_only=True` or copy it before writing; do not change the analyses.
    """
    from tests.support.published_studies import publish_every_study

    made: dict[Path, tuple[Path, dict, dict]] = {}

    def published(patients: int, seed: int, **options) -> tuple[Path, dict, dict]:
        database = study_database(patients, seed, **options)
        if database not in made:
            def build(folder: Path) -> tuple[Path, dict, dict]:
                folder.mkdir()
                return publish_every_study(database, folder, workers=1)

            made[database] = build_once(database.parent.with_name("published_every_study"), build)
        return made[database]

    return published
