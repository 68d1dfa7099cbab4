"""A study's notes say each thing once: an exposure nobody takes is noted once, with the analyses it applies to,
not again for every sensitivity analysis that reruns the exposures' analyses (the run log printed one warning per
note: 197 on one extract)."""

from __future__ import annotations

from pipelines.cohorts import build_study
from pipelines.statistics.study_analysis import analyse_study, notes_once
from tests.support.hand_cohort import HandExtract, make_study

OUTCOME_VARIANTS = [
    {"id": "outcome_leg_specific", "replace": "leg_cramps", "variant": "leg_cramps_leg_specific",
     "description": "leg-specific codes only"},
    {"id": "outcome_two_records", "replace": "leg_cramps", "variant": "leg_cramps_two_records",
     "description": "two records on different days"},
]


def test_an_exposure_nobody_takes_is_noted_once_with_the_analyses_it_applies_to():
    hand = HandExtract()
    for n in range(10):
        hand.person(f"E{n}", visits=["2016-06-01"]).fill(f"E{n}", "statins", "2016-05-01", "2016-08-31")
        hand.person(f"U{n}", visits=["2016-06-01"])
    for pid in ("E0", "E1", "U0", "U1"):
        hand.event(pid, "leg_cramps", "2018-01-01").event(pid, "leg_cramps_leg_specific", "2018-01-01")
    con = hand.connect()
    study = make_study(exposures=[{"phenotype": "statins", "window": "current_use"},
                                  {"phenotype": "beta_blockers", "window": "current_use"}],  # filled by nobody
                       sensitivity_analyses=OUTCOME_VARIANTS)
    build_study(con, study)

    analysis = analyse_study(con, study, workers=1)

    nobody = [note for note in analysis.notes if "beta_blockers: nobody is exposed" in note]
    assert nobody == [
        "beta_blockers: nobody is exposed; no estimate. Check that the exposure's phenotype resolves in this extract "
        "(the load_extract warnings name the phenotypes the extract's codes cannot reach). Applies to the main "
        "analyses and sensitivity analyses outcome_leg_specific, outcome_two_records."]
    # Each sensitivity analysis keeps its own notes (its rows are published apart).
    for sensitivity_id, variant in analysis.sensitivity.items():
        assert [note for note in variant.notes if "beta_blockers: nobody" in note] == [
            f"sensitivity analysis {sensitivity_id}: beta_blockers: nobody is exposed; no estimate. Check that the "
            "exposure's phenotype resolves in this extract (the load_extract warnings name the phenotypes the "
            "extract's codes cannot reach)"]


def test_notes_once_keeps_order_and_says_where_a_note_applies():
    main = ["a: nobody is exposed; no estimate.", "left out of the outcome models: x"]
    by_sensitivity = {
        "s1": ["sensitivity analysis s1: left out the persons who had v1", "sensitivity analysis s1: a: nobody is "
               "exposed; no estimate.", "sensitivity analysis s1: b: Cox HR: not estimable (no events)"],
        "s2": ["sensitivity analysis s2: a: nobody is exposed; no estimate.",
               "sensitivity analysis s2: b: Cox HR: not estimable (no events)"],
    }
    assert notes_once(main, by_sensitivity) == [
        "a: nobody is exposed; no estimate. Applies to the main analyses and sensitivity analyses s1, s2.",
        "left out of the outcome models: x",
        "sensitivity analysis s1: left out the persons who had v1",
        "b: Cox HR: not estimable (no events). Applies to sensitivity analyses s1, s2.",
    ]
    assert notes_once(main, {}) == main
    assert notes_once(["a"], {"s1": ["sensitivity analysis s1: a"]}) == [
        "a. Applies to the main analyses and sensitivity analysis s1."]
