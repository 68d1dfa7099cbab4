"""A sensitivity analysis that replaces an exposure: the study file's schema, and the variant's columns of
cohort.study_population, recorded in SQL on the replaced exposure's window terms."""

from __future__ import annotations

import pytest

from pipelines.cohorts import build_study
from tests.support.hand_cohort import NEW_USER, HandExtract, make_study, population

MAGNESIUM = {"id": "exposure_magnesium_below_1_46", "replace": "hypomagnesemia_lab",
             "variant": "hypomagnesemia_lab_below_1_46", "description": "magnesium < 1.46 mg/dL"}
EXPOSURES = [{"phenotype": "hypomagnesemia_lab", "window": {"lookback_days": 365}},
             {"phenotype": "statins", "window": "current_use"}]


def test_the_variant_is_recorded_at_index_on_the_window_of_the_exposure_it_replaces():
    hand = HandExtract()
    for pid in ("A", "B", "C", "D"):
        hand.person(pid, visits=["2016-06-01"])
    hand.event("A", "hypomagnesemia_lab", "2016-03-01").event("A", "hypomagnesemia_lab_below_1_46", "2016-03-01")
    # 400 days before index: outside the 365-day window of hypomagnesemia_lab, so not at index in the variant either
    hand.event("B", "hypomagnesemia_lab", "2015-04-28").event("B", "hypomagnesemia_lab_below_1_46", "2015-04-28")
    hand.event("C", "hypomagnesemia_lab", "2016-03-01")  # low on the main cut-off only
    hand.event("D", "hypomagnesemia_lab_below_1_46", "2017-01-01")  # after index: acquired then
    con = hand.connect()
    study = make_study(exposures=EXPOSURES, sensitivity_analyses=[MAGNESIUM])
    build_study(con, study)
    rows = population(con)
    assert {pid: (r["hypomagnesemia_lab"], r["hypomagnesemia_lab_below_1_46"]) for pid, r in rows.items()} == {
        "A": (True, True), "B": (False, False), "C": (True, False), "D": (False, False)}
    assert str(rows["D"]["hypomagnesemia_lab_below_1_46_first_date"]) == "2017-01-01"
    assert con.execute("SELECT variable, role, window_kind, lookback_days FROM cohort.study_variables "
                       "WHERE study_id = 'test_study' AND role = 'exposure_variant'").fetchall() == [
        ("hypomagnesemia_lab_below_1_46", "exposure_variant", "lookback_days", 365)]
    # Not a cohort of its own, and not a row of Table 1: the variant belongs to its sensitivity analysis.
    assert "hypomagnesemia_lab_below_1_46" not in {d.phenotype_id for d in study.cohort_definitions()}
    assert con.execute("SELECT count(*) FROM results.table1 WHERE variable LIKE 'hypomagnesemia_lab_below%'"
                       ).fetchone() == (0,)


@pytest.mark.parametrize("change, study_changes, message", [
    ({}, {"exposures": EXPOSURES[1:], "covariates": [EXPOSURES[0]]},
     "'hypomagnesemia_lab' is not the outcome or an exposure of this study; only the outcome"),
    ({"replace": "statins", "variant": "hypomagnesemia_lab_below_1_46"}, {},
     "'hypomagnesemia_lab_below_1_46' is a measurement phenotype, 'statins' a drug phenotype"),
    ({"replace": "hyponatremia_lab"}, {"exposures": [*EXPOSURES, {"phenotype": "hyponatremia_lab"}]},
     "'hypomagnesemia_lab_below_1_46' names 'hypomagnesemia_lab' as its parent, so it cannot replace "
     "'hyponatremia_lab'"),
    ({"replace": "hyponatremia_lab", "variant": "hypokalemia_lab"},
     {"exposures": [*EXPOSURES, {"phenotype": "hyponatremia_lab"}]},
     "'hypokalemia_lab' is not a variant \\(its file has no variant_of\\)"),
    ({}, {"index": NEW_USER, "exposures": [], "covariates": ["hypomagnesemia_lab"]},
     "not the outcome or an exposure"),
    ({"variant": "hypomagnesemia_lab_below_1_46"},
     {"exposures": [*EXPOSURES, {"phenotype": "hypomagnesemia_lab_below_1_46"}]},
     "the variant 'hypomagnesemia_lab_below_1_46' is also listed in exposures"),
])
def test_a_wrong_exposure_variant_is_a_study_definition_error(change, study_changes, message):
    with pytest.raises(ValueError, match=message):
        make_study(**{"exposures": EXPOSURES, **study_changes}, sensitivity_analyses=[{**MAGNESIUM, **change}])


def test_a_lab_test_studys_finding_cannot_be_replaced():
    with pytest.raises(ValueError, match="an exposure can be replaced in a first_visit study only"):
        make_study(index={"rule": "lab_test", "finding": "hypomagnesemia_lab"}, sensitivity_analyses=[MAGNESIUM])


def test_a_drug_exposure_cannot_be_replaced():
    """A drug exposure adjusts the other drugs' models as co-medication, which a one-exposure variant does not rerun
    (the library has no drug variant: the phenotypes the study may name are given here)."""
    from pipelines.cohorts.study import StudyDefinition
    from tests.support.hand_cohort import BASE_STUDY

    domains = {"leg_cramps": "condition", "statins": "drug", "statins_high_intensity": "drug"}
    data = {**BASE_STUDY, "exposures": [{"phenotype": "statins", "window": "current_use"}],
            "sensitivity_analyses": [{"id": "exposure_high_intensity", "replace": "statins",
                                      "variant": "statins_high_intensity", "description": "high intensity"}]}
    with pytest.raises(ValueError, match="'statins' is a drug exposure \\(current_use\\)"):
        StudyDefinition.model_validate(data, context={"phenotype_domains": domains, "phenotype_parents": {
            "statins_high_intensity": "statins"}})
