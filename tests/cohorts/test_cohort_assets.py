"""The cohort assets in a real Dagster run: stub staging and phenotype assets write a hand-built extract into the
run's DuckDB build file, then every bundled study's multi-asset builds from it.

No `from __future__ import annotations`: Dagster needs the real annotation of `context`."""

import dagster as dg
import duckdb

from pipelines.cohorts.assets import assets as cohort_assets
from pipelines.cohorts.assets import attrition_key, cohort_key, table1_key, upstream_keys
from pipelines.cohorts.settings import StudySettings
from pipelines.cohorts.study import load_studies
from pipelines.warehouse import Warehouse
from tests.support.hand_cohort import HandExtract


def hand_extract() -> HandExtract:
    extract = HandExtract()
    for n in range(60):
        pid = f"P{n}"
        extract.person(pid, year_of_birth=1940 + n // 2, sex="FM"[n % 2], visits=["2016-03-01"])
        drug = "thiazide_diuretics" if n % 3 else "calcium_channel_blockers"
        extract.fill(pid, drug, "2016-02-20", "2016-03-20")
        # The same plain product counts for the new-user study's class (LEGEND's), and its indication is recorded.
        legend_class = "thiazide_or_thiazide_like_diuretics" if n % 3 else "dihydropyridine_calcium_channel_blockers"
        extract.events.append((pid, legend_class, *extract.events[-1][2:]))
        extract.event(pid, "hypertension", "2015-11-01")
        if n % 4 == 0:
            extract.event(pid, "leg_cramps", "2018-06-01")
        if n % 5 == 0:
            extract.event(pid, "hypothyroidism", "2012-01-01")
    return extract


def stub_upstream_asset() -> dg.AssetsDefinition:
    keys = {key for study in load_studies().values() for key in upstream_keys(study)}

    @dg.multi_asset(specs=[dg.AssetSpec(key) for key in sorted(keys, key=lambda k: k.path)], name="stub_upstream")
    def stub_upstream(context: dg.AssetExecutionContext, warehouse: Warehouse):
        with warehouse.connect(context.run_id) as con:
            hand_extract().write(con)
        for key in keys:
            yield dg.MaterializeResult(asset_key=key)

    return stub_upstream


def test_study_assets_materialise_in_a_real_run(tmp_path):
    stub = stub_upstream_asset()
    warehouse = Warehouse(database_path=str(tmp_path / "study.duckdb"))
    defs = dg.Definitions(assets=[stub, *cohort_assets], resources={"warehouse": warehouse, "studies": StudySettings()})
    assert defs.resolve_asset_graph().get_all_asset_keys() >= {cohort_key("leg_cramps"), table1_key("thiazide_vs_ccb")}

    result = dg.materialize([stub, *cohort_assets], resources={"warehouse": warehouse, "studies": StudySettings()})
    assert result.success

    events = {tuple(e.asset_key.path): e.materialization.metadata for e in result.get_asset_materialization_events()}
    for study_id in ("leg_cramps", "thiazide_vs_ccb"):
        for key in (cohort_key(study_id), attrition_key(study_id), table1_key(study_id)):
            assert tuple(key.path) in events
    cohort = events[("cohort", "leg_cramps")]
    # The outcome count waits for the statistics stage's cross-table rule (results.outcome_counts).
    assert cohort["cohort_size"].value == 60 and "outcome_count" not in cohort
    assert "| 1 | persons in the extract | 60 | 0 | 60 |" in cohort["attrition"].value
    table1 = events[("results", "table1", "leg_cramps")]["table1"].value
    assert table1.startswith("|  | overall | exposed | unexposed | SMD |")
    assert "| n | 60 | 40 | 20 |  |" in table1
    new_users = events[("cohort", "thiazide_vs_ccb")]
    assert new_users["cohort_size"].value == 60 and new_users["design"].value == "new_user"
    assert "phenotypes with no persons" in new_users["warnings"].value  # most stub phenotypes are empty

    con = duckdb.connect(str(warehouse.build_path(result.run_id)), read_only=True)
    sizes = dict(con.execute("SELECT study_id, count(*) FROM cohort.study_population GROUP BY 1").fetchall())
    treatments = dict(con.execute("SELECT treatment, count(*) FROM cohort.study_population "
                                  "WHERE study_id = 'thiazide_vs_ccb' GROUP BY 1").fetchall())
    con.close()
    assert sizes == {"leg_cramps": 60, "thiazide_vs_ccb": 60} and treatments == {1: 40, 0: 20}
