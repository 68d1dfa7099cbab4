"""Every bundled study of a generated extract analysed and published as the statistics asset publishes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from pipelines.cohorts import load_studies
from pipelines.statistics.assets import publish_study_results
from pipelines.statistics.study_analysis import analyse_study


def publish_every_study(study_database: Path, folder: Path, workers: int | None = None) -> tuple[Path, dict, dict]:
    """A copy of `study_database` (the session's shared cohort build) in `folder` with every study analysed (by
    `workers` statistics processes, as `analyse_study`) and published; returns (the copy's path, the studies by id,
    each study's analysis by id)."""
    database = folder / "study.duckdb"
    shutil.copy(study_database, database)
    studies = load_studies()
    analyses = {}
    with duckdb.connect(str(database)) as con:
        for study in studies.values():
            analyses[study.id] = analyse_study(con, study, workers=workers)
            publish_study_results(con, study, analyses[study.id])
    return database, studies, analyses
