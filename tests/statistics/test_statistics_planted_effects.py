"""The whole chain on a generated extract: planted hazard ratios lie inside the published 95% intervals.

Exposures whose planted effect passes partly through another planted cause are left out of the exact check:
the generator lowers magnesium in diuretic users and hypomagnesemia has its own effect, so a diuretic's total
effect is larger than its direct planted hazard ratio (docs/statistics.md).
"""

from __future__ import annotations

import duckdb
import pytest

from pipelines.cohorts import build_all_studies, load_studies
from pipelines.ingest.loader import load_extract
from pipelines.phenotypes import run_phenotypes
from pipelines.statistics.study_analysis import analyse_study

# 40,000 generated patients through ingest, phenotypes, cohorts and the screening models: an end-to-end run.
pytestmark = pytest.mark.slow

NO_MEDIATION = ["long_acting_beta2_agonists", "potassium_sparing_diuretics", "peripheral_arterial_disease",
                "hypomagnesemia_lab"]
NULLS = ["calcium_channel_blockers", "ace_inhibitors", "beta_blockers", "hypothyroidism"]


@pytest.fixture(scope="module")
def screening_analysis(generated_extract):
    folder, truth = generated_extract(40_000, 5, defect_rate=0.0)
    con = duckdb.connect()
    load_extract(con, folder)
    run_phenotypes(con)
    build_all_studies(con)
    study = load_studies()["leg_cramps"]
    keep = set(NO_MEDIATION + NULLS + ["thiazide_diuretics", "loop_diuretics", "statins"])
    study = study.model_copy(update={"exposures": [e for e in study.exposures if e.phenotype in keep]})
    yield truth, analyse_study(con, study)
    con.close()


@pytest.fixture(scope="module")
def screening(screening_analysis):
    truth, analysis = screening_analysis
    return truth, {exposure: result for exposure, _, result in analysis.results if result.method.startswith("Cox")}


@pytest.mark.parametrize("exposure", NO_MEDIATION)
def test_planted_hazard_ratio_lies_in_the_cox_interval(screening, exposure):
    truth, cox = screening
    planted = next(e["hazard_ratio"] for e in truth["effects"] if e["exposure"] == exposure)
    result = cox[exposure]
    assert result.ci_lower <= planted <= result.ci_upper, (exposure, planted, result.estimate)
    assert result.ci_lower > 1.0  # and the effect is detected


@pytest.mark.parametrize("exposure", NULLS)
def test_null_exposures_are_not_significant(screening, exposure):
    _, cox = screening
    result = cox[exposure]
    assert result.ci_lower <= 1.0 <= result.ci_upper, (exposure, result.estimate, result.ci_lower, result.ci_upper)


def test_mediated_diuretic_effects_are_at_least_their_direct_effect(screening):
    truth, cox = screening
    for exposure in ("thiazide_diuretics", "loop_diuretics"):
        planted = next(e["hazard_ratio"] for e in truth["effects"] if e["exposure"] == exposure)
        assert cox[exposure].ci_upper >= planted and cox[exposure].ci_lower > 1.0, exposure


def test_each_result_row_is_identified_and_the_group_rates_add_up_to_the_rate_ratio(screening_analysis):
    """Study, exposure, outcome, method and estimand identify a row: the two groups' incidence rates are two
    estimands, each with its counts on its own side, and those counts are the rate ratio's."""
    _, analysis = screening_analysis
    rows = [(exposure, outcome, r.method, r.estimand) for exposure, outcome, r in analysis.results]
    assert len(rows) == len(set(rows))
    for exposure in {exposure for exposure, _, _ in analysis.results}:
        by_estimand = {r.estimand: r for e, _, r in analysis.results if e == exposure}
        exposed = by_estimand["incidence rate per 1,000 person-years, exposed"]
        unexposed = by_estimand["incidence rate per 1,000 person-years, unexposed"]
        ratio = by_estimand["incidence rate ratio, exposed vs unexposed"]
        assert exposed.n_unexposed is None and unexposed.n_exposed is None
        assert (exposed.n_exposed, exposed.events_exposed, exposed.person_years_exposed) == (
            ratio.n_exposed, ratio.events_exposed, ratio.person_years_exposed)
        assert (unexposed.n_unexposed, unexposed.events_unexposed, unexposed.person_years_unexposed) == (
            ratio.n_unexposed, ratio.events_unexposed, ratio.person_years_unexposed)
        assert ratio.estimate == pytest.approx(exposed.estimate / unexposed.estimate, rel=1e-12)
