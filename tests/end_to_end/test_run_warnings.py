"""The run summary of `legcramp-run` ends with the warnings the run's assets recorded: a clinical table the
extract does not ship (with the phenotypes it takes away) and a study period no observation overlaps, so a run that
finds nothing says why on the command line, not only in the Dagster log (issue: real OMOP extracts)."""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines.ingest.assets import build_staging_asset
from pipelines.ingest.resources import ExtractSource
from pipelines.phenotypes.loader import phenotype_library
from pipelines.run import run_warnings
from pipelines.warehouse import Warehouse
from tests.support.hand_omop import synthea27nj_copy

TABLES = ("PERSON", "OBSERVATION_PERIOD", "VISIT_OCCURRENCE", "CONDITION_OCCURRENCE", "DRUG_EXPOSURE",
          "PROCEDURE_OCCURRENCE", "CONCEPT", "CONCEPT_RELATIONSHIP")  # no MEASUREMENT, no DEATH


def test_absent_tables_are_among_the_run_warnings(tmp_path, dagster_instance):
    extract = synthea27nj_copy(tmp_path / "extract", TABLES)
    result = dg.materialize(
        [build_staging_asset(phenotype_library().code_vocabularies())],
        resources={"extract": ExtractSource(folder=str(extract)),
                   "warehouse": Warehouse(database_path=str(tmp_path / "published.duckdb"))},
        instance=dagster_instance,
    )
    assert result.success
    warnings = run_warnings(result)
    [measurement] = [w for w in warnings if w.startswith("the extract ships no measurement table")]
    assert "hyponatremia_lab" in measurement
    assert any(w.startswith("the extract ships no death table") and "censored at death" in w for w in warnings)
    assert not any("condition_occurrence table" in w for w in warnings)


def test_a_cohort_assets_warnings_are_listed_once_each(dagster_instance):
    @dg.asset
    def cohort_like() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"warnings": dg.MetadataValue.md(
            "- leg_cramps: no person's observation overlaps the study period\n- second\n- second")})

    @dg.asset
    def quiet() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 3})

    result = dg.materialize([cohort_like, quiet], instance=dagster_instance)
    assert run_warnings(result) == ["leg_cramps: no person's observation overlaps the study period", "second"]


@pytest.mark.slow
def test_fail_on_empty_exits_2_when_no_study_published_an_estimate(tmp_path, capsys, monkeypatch):
    from pipelines.run import NO_ESTIMATE_WARNING, main
    from tests.support.paths import REPO_ROOT
    from tests.support.planted_rejects import FIXTURE_MAX_REJECT_SHARE, write_fixture

    extract = write_fixture(tmp_path / "extract")  # 3 persons: no study can estimate anything
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    database = tmp_path / "study.duckdb"
    arguments = ["--extract", str(extract), "--db", str(database), "--max-reject-share", str(FIXTURE_MAX_REJECT_SHARE)]
    assert main([*arguments, "--fail-on-empty"]) == 2
    out = capsys.readouterr().out
    assert f"WARNING: {NO_ESTIMATE_WARNING}" in out and database.exists()  # published, and said so
