"""A phenotype added as one YAML file in a subfolder of the library is known to studies, with its domain, and is used
by a study end to end: Dagster materialises the phenotype and the study's cohort from a temporary library."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation when the asset is defined.
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines import paths
from pipelines.cohorts.assets import build_study_asset
from pipelines.cohorts.settings import StudySettings
from pipelines.cohorts.study import StudyDefinitionError, known_phenotype_ids, load_study, phenotype_domains
from pipelines.extract_spec import TABLES
from pipelines.phenotypes import load_phenotype_library, phenotype_library
from pipelines.phenotypes.assets import build_phenotype_assets
from tests.support.phenotype_staging import create_staging_tables, insert_rows
from pipelines.warehouse import Warehouse

NEW_PHENOTYPE = """\
id: myalgia
name: Myalgia
version: 1
domain: condition
description: Myalgia (M79.1x), a phenotype added to a temporary copy of the library.
seed_section: Mimics (test)
codes:
  - vocabulary: ICD10CM
    match: prefix
    codes: [M79.1]
    status: verified
    source: CMS ICD-10-CM tabular
rule:
  type: min_records
  min_records: 1
sources:
  - CMS ICD-10-CM tabular
"""

STUDY = """\
id: myalgia_study
title: Myalgia before leg cramps
study_period: {start: 2019-01-01, end: 2019-12-31}
prior_observation_days: 365
index: {rule: first_visit, visit_types: [outpatient]}
outcome: {phenotype: leg_cramps}
exposures:
  - {phenotype: myalgia, window: any_time_prior}
  - {phenotype: malaria_or_babesiosis, window: any_time_prior}
"""


@pytest.fixture(scope="module")
def library_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("library") / "phenotypes"
    shutil.copytree(paths.PHENOTYPES_DIR, folder)
    (folder / "conditions" / "myalgia.yaml").write_text(NEW_PHENOTYPE)
    return folder


def test_studies_know_every_phenotype_of_the_library_with_its_domain():
    domains = phenotype_domains()
    assert set(domains) == set(phenotype_library().ids)  # no hand-kept list beside the library
    # Once unknown to studies, or known under the wrong domain:
    assert domains["malaria_or_babesiosis"] == "condition"
    assert domains["abi_lowest_0_91_to_1_30"] == "measurement"
    assert domains["claudication_with_borderline_or_normal_abi"] == "composite"
    assert "myalgia" not in known_phenotype_ids()


def test_a_study_naming_the_new_phenotype_loads_only_with_the_library_that_has_it(library_folder, tmp_path):
    path = tmp_path / "myalgia_study.yaml"
    path.write_text(STUDY)
    with pytest.raises(StudyDefinitionError, match="unknown phenotype 'myalgia'"):
        load_study(path)
    study = load_study(path, load_phenotype_library(library_folder))
    assert [v.variable for v in study.variables if v.role == "exposure"] == ["myalgia", "malaria_or_babesiosis"]
    # The domain comes from the file: current_use needs a drug, and myalgia is a condition.
    path.write_text(STUDY.replace("{phenotype: myalgia, window: any_time_prior}",
                                  "{phenotype: myalgia, window: current_use}"))
    with pytest.raises(StudyDefinitionError, match="'myalgia' is a condition phenotype"):
        load_study(path, load_phenotype_library(library_folder))


@dg.multi_asset(specs=[dg.AssetSpec(["staging", table.name]) for table in TABLES])
def hand_staging(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Three persons with an outpatient visit on 2019-06-01: myalgia before it, myalgia after it, and malaria."""
    persons = ("myalgia_before", "myalgia_after", "malaria")
    with warehouse.connect(context.run_id) as con:
        create_staging_tables(con)
        insert_rows(con, "person", [{"person_id": p, "year_of_birth": 1950, "sex": "F"} for p in persons])
        insert_rows(con, "observation_period", [
            {"observation_period_id": f"op_{p}", "person_id": p, "observation_period_start_date": "2010-01-01",
             "observation_period_end_date": "2022-12-31"} for p in persons])
        insert_rows(con, "visit_occurrence", [
            {"visit_occurrence_id": f"v_{p}", "person_id": p, "visit_type": "outpatient",
             "visit_start_date": "2019-06-01"} for p in persons])
        insert_rows(con, "condition_occurrence", [
            {"condition_occurrence_id": "c1", "person_id": "myalgia_before", "condition_vocabulary": "ICD10CM",
             "condition_code": "M79.10", "condition_start_date": "2019-02-01"},
            {"condition_occurrence_id": "c2", "person_id": "myalgia_after", "condition_vocabulary": "ICD10CM",
             "condition_code": "M79.18", "condition_start_date": "2020-02-01"},
            {"condition_occurrence_id": "c3", "person_id": "malaria", "condition_vocabulary": "ICD10CM",
             "condition_code": "B50.9", "condition_start_date": "2018-02-01"}])
    for table in TABLES:
        yield dg.MaterializeResult(asset_key=["staging", table.name])


def test_the_new_phenotype_is_used_in_a_study_end_to_end(library_folder, tmp_path):
    library = load_phenotype_library(library_folder)
    study_path = tmp_path / "myalgia_study.yaml"
    study_path.write_text(STUDY)
    study = load_study(study_path, library)
    study_asset = build_study_asset(study)
    assert dg.AssetKey(["phenotype", "myalgia"]) in {dep.asset_key for spec in study_asset.specs for dep in spec.deps}

    warehouse = Warehouse(database_path=str(tmp_path / "site.duckdb"))
    result = dg.materialize([hand_staging, build_phenotype_assets(library), study_asset],
                            resources={"warehouse": warehouse, "studies": StudySettings()})
    assert result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert {dg.AssetKey(["phenotype", "myalgia"]), dg.AssetKey(["cohort", "myalgia_study"])} <= materialized
    with duckdb.connect(str(warehouse.build_path(result.run_id)), read_only=True) as con:
        rows = con.execute("SELECT person_id, myalgia, malaria_or_babesiosis FROM cohort.study_population "
                           "WHERE study_id = 'myalgia_study' ORDER BY person_id").fetchall()
    assert rows == [("malaria", False, True), ("myalgia_after", False, False), ("myalgia_before", True, False)]
