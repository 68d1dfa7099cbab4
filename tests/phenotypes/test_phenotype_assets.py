"""The Dagster assets: one per phenotype, valid in a Definitions with stub staging assets, and materialisable."""

# No `from __future__ import annotations` here: Dagster reads the `context` annotation when the asset is defined.
import dagster as dg
import duckdb

from pipelines.extract_spec import TABLES
from pipelines.phenotypes import phenotype_library
from pipelines.phenotypes.assets import PHENOTYPE_ASSET_KEYS, phenotype_assets, phenotypes_multi_asset
from tests.support.phenotype_staging import create_staging_tables, insert_rows
from pipelines.warehouse import Warehouse


@dg.multi_asset(specs=[dg.AssetSpec(["staging", table.name]) for table in TABLES])
def stub_staging(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Stands in for the ingest: empty staging tables plus one cramp, one quinine fill and one low sodium."""
    with warehouse.connect(context.run_id) as con:
        create_staging_tables(con)
        insert_rows(con, "condition_occurrence", [
            {"condition_occurrence_id": "c1", "person_id": "p1", "condition_vocabulary": "ICD10CM",
             "condition_code": "G47.62", "condition_start_date": "2020-01-01"}])
        insert_rows(con, "drug_exposure", [
            {"drug_exposure_id": "d1", "person_id": "p1", "drug_vocabulary": "RxNorm", "drug_code": "9071",
             "drug_exposure_start_date": "2020-02-01", "drug_exposure_end_date": "2020-03-01"}])
        insert_rows(con, "measurement", [
            {"measurement_id": "m1", "person_id": "p2", "measurement_vocabulary": "LOINC",
             "measurement_code": "2951-2", "measurement_date": "2020-01-01", "value_as_number": 131,
             "unit": "mmol/L"},
            {"measurement_id": "m2", "person_id": "p2", "measurement_vocabulary": "LOINC",
             "measurement_code": "2951-2", "measurement_date": "2020-02-01", "value_as_number": 133,
             "unit": "mmol/L"}])
    for table in TABLES:
        yield dg.MaterializeResult(asset_key=["staging", table.name])


def definitions(tmp_path) -> dg.Definitions:
    return dg.Definitions(
        assets=[stub_staging, *phenotype_assets],
        resources={"warehouse": Warehouse(database_path=str(tmp_path / "leg_cramps.duckdb"))},
    )


def test_one_asset_per_phenotype():
    library = phenotype_library()
    assert set(PHENOTYPE_ASSET_KEYS) == {dg.AssetKey(["phenotype", p]) for p in library.ids}
    for key in PHENOTYPE_ASSET_KEYS:
        spec = phenotypes_multi_asset.specs_by_key[key]
        assert spec.group_name == "phenotypes"
        assert spec.metadata["version"] == library[key.path[-1]].definition.version


def test_dependencies_on_staging_and_on_other_phenotypes():
    deps = {key: {dep.asset_key for dep in spec.deps} for key, spec in phenotypes_multi_asset.specs_by_key.items()}
    assert deps[dg.AssetKey(["phenotype", "leg_cramps"])] == {
        dg.AssetKey(["staging", "condition_occurrence"]), dg.AssetKey(["staging", "visit_occurrence"])}
    assert deps[dg.AssetKey(["phenotype", "statins"])] == {dg.AssetKey(["staging", "drug_exposure"])}
    assert deps[dg.AssetKey(["phenotype", "abi_low"])] == {dg.AssetKey(["staging", "measurement"])}
    assert deps[dg.AssetKey(["phenotype", "quinine_start"])] == {
        dg.AssetKey(["staging", "drug_exposure"]), dg.AssetKey(["phenotype", "malaria_or_babesiosis"])}
    assert deps[dg.AssetKey(["phenotype", "claudication_with_borderline_or_normal_abi"])] == {
        dg.AssetKey(["phenotype", "intermittent_claudication"]), dg.AssetKey(["phenotype", "abi_lowest_0_91_to_1_30"])}


def test_definitions_with_stub_staging_assets_validate(tmp_path):
    dg.Definitions.validate_loadable(definitions(tmp_path))


def test_materialize_reports_rows_persons_and_version(tmp_path):
    defs = definitions(tmp_path)
    result = dg.materialize([stub_staging, *phenotype_assets], resources=defs.resources)
    assert result.success
    metadata = {event.asset_key: event.materialization.metadata
                for event in result.get_asset_materialization_events()}
    assert set(PHENOTYPE_ASSET_KEYS) <= set(metadata)

    cramps = metadata[dg.AssetKey(["phenotype", "leg_cramps"])]
    assert (cramps["dagster/row_count"].value, cramps["person_count"].value, cramps["version"].value) == (1, 1, 3)
    sodium = metadata[dg.AssetKey(["phenotype", "hyponatremia_lab"])]
    assert (sodium["dagster/row_count"].value, sodium["person_count"].value) == (2, 1)

    # The phenotype tables are in the run's build file.
    build_file = Warehouse(database_path=str(tmp_path / "leg_cramps.duckdb")).build_path(result.run_id)
    with duckdb.connect(str(build_file), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM phenotype.person_summary").fetchone()[0] == 2 + 1 + 2  # + quinine, + leg_cramps_leg_specific and leg_cramps_with_other_muscle_spasm (G47.62)


def test_selecting_one_phenotype_reports_only_that_one(tmp_path):
    defs = definitions(tmp_path)
    result = dg.materialize([stub_staging, *phenotype_assets], resources=defs.resources,
                            selection=[dg.AssetKey(["staging", t.name]) for t in TABLES]
                            + [dg.AssetKey(["phenotype", "quinine_start"])])
    assert result.success
    reported = {event.asset_key for event in result.get_asset_materialization_events()
                if event.asset_key.path[0] == "phenotype"}
    assert reported == {dg.AssetKey(["phenotype", "quinine_start"])}
