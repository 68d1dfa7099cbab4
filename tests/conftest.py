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


class GeneratedExtract(NamedTuple):
    path: Path
    truth: dict


@pytest.fixture
def dagster_instance(tmp_path):
    """A real, persistent Dagster instance in a temporary DAGSTER_HOME configured by the repository's dagster.yaml."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture(scope="session")
def generated_extract(tmp_path_factory):
    """`generated_extract(patients, seed, **options)`: a synthetic extract made by pipelines.synthetic, generated
    once per session for each set of arguments and shared by every test that asks for the same one.

    Returns a `GeneratedExtract` (the folder and the generator's ground truth). The folder is shared: tests only
    read it; a test that changes files works on a copy (`shutil.copytree(extract.path, tmp_path / "extract")`).
    """
    from pipelines.synthetic import generate_extract

    defaults = {name: p.default for name, p in inspect.signature(generate_extract).parameters.items()}
    made: dict[tuple, GeneratedExtract] = {}

    def generated(patients: int, seed: int, **options) -> GeneratedExtract:
        # An option given at its default value asks for the same extract as leaving it out.
        settings = (patients, seed, tuple(sorted((k, v) for k, v in options.items() if defaults[k] != v)))
        if settings not in made:
            folder = tmp_path_factory.mktemp(f"generated_{patients}_{seed}") / "extract"
            truth = generate_extract(folder, patients, seed=seed, progress=False, **options)
            made[settings] = GeneratedExtract(folder, truth)
        return made[settings]

    return generated
