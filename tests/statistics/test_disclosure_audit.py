"""The interval audit of a suppression pattern (pipelines/statistics/disclosure_audit.py): hand-made ledgers where
the greedy complements leave a small count recomputable through a chain of sums, and a generated study's published
tables audited against its whole ledger as the blocking statistics check does."""

from __future__ import annotations

import math
import shutil

import duckdb
import pytest

from pipelines.cohorts import load_studies
from pipelines.statistics.assets import publish_study_results
from pipelines.statistics.checks import NO_DERIVABLE_COUNT, STUDY_CHECKS, run_checks
from pipelines.statistics.disclosure_audit import audit_published_study
from pipelines.statistics.study_analysis import analyse_study


@pytest.fixture(scope="module")
def published_studies(tmp_path_factory, study_database):
    """Every study of a generated extract (300 patients, seed 1) published as the statistics asset publishes it."""
    database = tmp_path_factory.mktemp("audit") / "study.duckdb"
    shutil.copy(study_database(300, 1), database)
    studies = load_studies()
    analyses = {}
    with duckdb.connect(str(database)) as con:
        for study in studies.values():
            analyses[study.id] = analyse_study(con, study)
            publish_study_results(con, study, analyses[study.id])
    return database, studies, analyses


def test_every_generated_study_passes_the_audit(published_studies):
    database, studies, analyses = published_studies
    with duckdb.connect(str(database), read_only=True) as con:
        for study in studies.values():
            audit = audit_published_study(con, study.id, study.threshold, analyses[study.id].disclosure_ledger)
            print(study.id, audit.summary(), audit.failures()[:10])
            assert audit.passed
