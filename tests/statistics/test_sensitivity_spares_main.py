"""A sensitivity analysis never changes what the main analysis publishes (analysis_attrition.
suppress_study_counts_sparing_main): leg_cramps published with its sensitivity analyses and without them gives the
same main rows, number for number, on a generated extract."""

import shutil

import duckdb
import pandas as pd
import pytest

from pipelines.cohorts import load_studies
from pipelines.statistics.assets import publish_study_results
from pipelines.statistics.study_analysis import analyse_study

MAIN_COLUMNS = ["exposure", "outcome", "analysis_id", "n_exposed", "n_unexposed", "events_exposed",
                "events_unexposed", "estimate", "ci_lower", "ci_upper", "suppressed"]


def published_main_rows(database, study) -> pd.DataFrame:
    with duckdb.connect(str(database)) as con:
        publish_study_results(con, study, analyse_study(con, study))
        frame = con.execute(
            "SELECT * FROM results.associations WHERE study_id = ? AND sensitivity_analysis IS NULL",
            [study.id]).df()
    return frame[MAIN_COLUMNS].sort_values(["exposure", "analysis_id", "outcome"]).reset_index(drop=True)


# 2,000 patients: at 300 no sensitivity row is tied to a main cell by a small difference (the test passes
# without the rule); ~40 s, so in the slow group.
@pytest.mark.slow
def test_the_main_rows_are_the_same_with_and_without_the_sensitivity_analyses(study_database, tmp_path):
    study = load_studies()["leg_cramps"]
    assert len(study.sensitivity_analyses) >= 4
    for name in ("with", "without"):
        shutil.copy(study_database(2000, 3), tmp_path / f"{name}.duckdb")
    with_variants = published_main_rows(tmp_path / "with.duckdb", study)
    without = published_main_rows(tmp_path / "without.duckdb",
                                  study.model_copy(update={"sensitivity_analyses": []}))
    assert with_variants["estimate"].notna().sum() > 0
    pd.testing.assert_frame_equal(with_variants, without)
