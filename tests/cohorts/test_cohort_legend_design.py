"""LEGEND's new-user design on hand-made fills: monotherapy at index (combination products and same-day starts of
both classes left out, each counted in its own attrition step), hypertension in the year before index, and the
washout against both classes' ingredients, combination products included."""

from __future__ import annotations

import pytest

from pipelines.cohorts import build_study
from tests.support.hand_cohort import D, HandExtract, make_study, population

THIAZIDE = "thiazide_or_thiazide_like_diuretics"
DHP = "dihydropyridine_calcium_channel_blockers"
LEGEND_INDEX = {"rule": "new_user", "target": THIAZIDE, "comparator": DHP, "washout_days": 365,
                "indication": {"phenotype": "hypertension", "lookback_days": 365},
                "exclude_combination_products": True,
                "combination_partners": ["ace_inhibitors", "angiotensin_receptor_blockers"]}


def product_fill(hand: HandExtract, person_id: str, classes: list[str], start: str, end: str, code: str) -> None:
    """One record of a product whose code counts for every class in `classes` (a combination product counts for
    each of its ingredients' classes): one staging row, one phenotype event per class, same day and code."""
    hand.fill(person_id, classes[0], start, end, code=code)
    for phenotype_id in classes[1:]:
        hand.events.append((person_id, phenotype_id, D(start), "drug_exposure", "ATC", code, D(end)))


def extract() -> HandExtract:
    hand = HandExtract()
    for pid in ("MONO_T", "MONO_C", "COMBO", "COMBO_BOTH", "BOTH", "NO_HTN", "HTN_AFTER", "HTN_ON_INDEX", "HTN_365",
                "HTN_366", "WASH_COMBO", "NONUSER"):
        hand.person(pid)
    hand.fill("MONO_T", THIAZIDE, "2016-06-01", "2016-06-30", code="C03AA03")
    hand.event("MONO_T", "hypertension", "2016-01-10")
    hand.fill("MONO_C", DHP, "2016-06-01", "2016-06-30", code="C08CA01")
    hand.event("MONO_C", "hypertension", "2015-09-01")
    # Lisinopril + hydrochlorothiazide: a thiazide product that also counts for ACE inhibitors.
    product_fill(hand, "COMBO", [THIAZIDE, "ace_inhibitors"], "2016-06-01", "2016-06-30", "C09BA03")
    hand.event("COMBO", "hypertension", "2016-01-10")
    # Valsartan + amlodipine + hydrochlorothiazide: one product of both study classes.
    product_fill(hand, "COMBO_BOTH", [THIAZIDE, DHP, "angiotensin_receptor_blockers"], "2016-06-01", "2016-06-30",
                 "C09DX01")
    hand.event("COMBO_BOTH", "hypertension", "2016-01-10")
    # Two plain products, one of each class, on the same day.
    hand.fill("BOTH", THIAZIDE, "2016-06-01", "2016-06-30", code="C03BA04")
    hand.fill("BOTH", DHP, "2016-06-01", "2016-06-30", code="C08CA05")
    hand.event("BOTH", "hypertension", "2016-01-10")
    hand.fill("NO_HTN", THIAZIDE, "2016-06-01", "2016-06-30", code="C03AA03")
    hand.event("NO_HTN", "hypertension", "2014-06-01")          # two years before index
    hand.fill("HTN_AFTER", DHP, "2016-06-01", "2016-06-30", code="C08CA01")
    hand.event("HTN_AFTER", "hypertension", "2016-06-02")       # the day after index: not an indication
    hand.fill("HTN_ON_INDEX", DHP, "2016-06-01", "2016-06-30", code="C08CA01")
    hand.event("HTN_ON_INDEX", "hypertension", "2016-06-01")
    hand.fill("HTN_365", THIAZIDE, "2016-06-01", "2016-06-30", code="C03AA03")
    hand.event("HTN_365", "hypertension", "2015-06-02")         # 365 days before index
    hand.fill("HTN_366", THIAZIDE, "2016-06-01", "2016-06-30", code="C03AA03")
    hand.event("HTN_366", "hypertension", "2015-06-01")         # 366 days before index
    # Valsartan + amlodipine before the study period (a DHP combination product), then a plain thiazide: not new.
    product_fill(hand, "WASH_COMBO", [DHP, "angiotensin_receptor_blockers"], "2014-10-01", "2014-12-31", "C09DB01")
    hand.fill("WASH_COMBO", THIAZIDE, "2015-06-01", "2015-06-30", code="C03AA03")
    hand.event("WASH_COMBO", "hypertension", "2015-03-01")
    hand.event("NONUSER", "hypertension", "2016-01-10")
    return hand


def removed_per_step(con) -> dict[str, int]:
    return dict(con.execute("SELECT step_code, persons_removed FROM results.attrition WHERE study_id = 'test_study' "
                            "ORDER BY step_order").fetchall())


def test_legend_design_keeps_monotherapy_starters_with_hypertension_in_the_prior_year():
    con = extract().connect()
    build_study(con, make_study(index=LEGEND_INDEX))
    assert {pid: row["treatment"] for pid, row in population(con).items()} == {
        "MONO_T": 1, "MONO_C": 0, "HTN_ON_INDEX": 0, "HTN_365": 1}
    assert removed_per_step(con) == {
        "in_extract": 0, "no_observation_in_study_period": 0, "no_new_use_in_study_period": 1,
        "combination_product_at_index": 2, "started_both_on_index": 1, "insufficient_prior_observation": 0,
        "use_in_washout": 1, "no_indication_in_lookback": 3, "age_out_of_range": 0, "died_before_index": 0,
        "outcome_before_time_at_risk": 0, "no_time_at_risk": 0}


def test_without_the_study_options_combination_starters_stay_and_one_product_of_both_classes_is_a_double_start():
    con = extract().connect()
    plain = {key: value for key, value in LEGEND_INDEX.items()
             if key not in ("indication", "exclude_combination_products", "combination_partners")}
    build_study(con, make_study(index=plain))
    assert set(population(con)) == {"MONO_T", "MONO_C", "COMBO", "NO_HTN", "HTN_AFTER", "HTN_ON_INDEX", "HTN_365",
                                    "HTN_366"}
    removed = removed_per_step(con)
    assert "combination_product_at_index" not in removed and "no_indication_in_lookback" not in removed
    assert (removed["started_both_on_index"], removed["use_in_washout"]) == (2, 1)


@pytest.mark.parametrize("change, message", [
    ({"indication": {"phenotype": "statins"}}, "indication must be a condition phenotype"),
    ({"combination_partners": [DHP]}, "is the target or comparator"),
    ({"combination_partners": ["hypertension"]}, "not a drug"),
    ({"exclude_combination_products": False}, "needs exclude_combination_products: true"),
    ({"indication": {"phenotype": "hypertension", "lookback_days": 400}}, "exceeds prior_observation_days"),
])
def test_a_wrong_legend_option_is_a_study_definition_error(change, message):
    with pytest.raises(ValueError, match=message):
        make_study(index={**LEGEND_INDEX, **change})
