"""The sequence ratios are suppressed at the small-cell threshold the run uses: a run that raises a study's
threshold (the `studies` resource's overrides) hides the counts that threshold makes small, in a real Dagster run
of the sequence-symmetry asset on a hand-written extract.

No `from __future__ import annotations`: Dagster needs the real annotation of `context`."""

import dagster as dg

from pipelines.cohorts.settings import StudySettings
from pipelines.cohorts.study import load_studies
from pipelines.statistics.assets import (SEQUENCE_SYMMETRY_ID, build_sequence_symmetry_asset,
                                         sequence_symmetry_threshold)
from pipelines.warehouse import Warehouse
from tests.support.hand_cohort import HandExtract

DRUG = "thiazide_diuretics"
INDEX_FIRST, MARKER_FIRST = 15, 13  # both shown at 11, both small at 20


def hand_extract() -> HandExtract:
    extract = HandExtract()
    for n in range(INDEX_FIRST + MARKER_FIRST):
        pid = f"P{n}"
        extract.person(pid, year_of_birth=1950)
        extract.fill(pid, DRUG, "2016-03-01", "2016-04-01")
        extract.event(pid, "leg_cramps", "2016-06-01" if n < INDEX_FIRST else "2016-01-01")
    return extract


def run_sequence_symmetry(tmp_path, settings: StudySettings):
    asset = build_sequence_symmetry_asset(list(load_studies().values()))
    upstream = sorted(asset.dependency_keys, key=lambda key: key.path)

    @dg.multi_asset(specs=[dg.AssetSpec(key) for key in upstream], name="stub_upstream")
    def stub_upstream(context: dg.AssetExecutionContext, warehouse: Warehouse):
        with warehouse.connect(context.run_id) as con:
            hand_extract().write(con)
        for key in upstream:
            yield dg.MaterializeResult(asset_key=key)

    warehouse = Warehouse(database_path=str(tmp_path / "study.duckdb"))
    result = dg.materialize([stub_upstream, asset], resources={"warehouse": warehouse, "studies": settings},
                            raise_on_error=True)
    assert result.success
    with warehouse.connect(result.run_id) as con:
        return con.execute(
            "SELECT events_exposed, events_unexposed, suppressed FROM results.associations "
            "WHERE study_id = ? AND exposure = ? AND outcome = 'leg_cramps' AND method LIKE 'Crude%'",
            [SEQUENCE_SYMMETRY_ID, DRUG]).fetchone()


def test_a_run_that_raises_a_threshold_raises_the_sequence_ratios_threshold():
    studies = list(load_studies().values())
    assert sequence_symmetry_threshold(studies, StudySettings()) == max(study.threshold for study in studies)
    raised = StudySettings(overrides={"leg_cramps": {"small_cell_threshold": 20}})
    assert sequence_symmetry_threshold(studies, raised) == 20


def test_the_sequence_ratios_hide_what_the_run_threshold_makes_small(tmp_path):
    assert run_sequence_symmetry(tmp_path / "file", StudySettings()) == (INDEX_FIRST, MARKER_FIRST, False)
    raised = StudySettings(overrides={"leg_cramps": {"small_cell_threshold": 20}})
    assert run_sequence_symmetry(tmp_path / "raised", raised) == (None, None, True)
