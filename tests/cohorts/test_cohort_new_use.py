"""New-use exposures in a screening study: new users of a drug against non-users, prevalent and recent past users
left out of that comparison (hand-made fills)."""

from __future__ import annotations

import pytest

from pipelines.cohorts import build_study
from pipelines.statistics.study_analysis import analyse_study
from tests.support.hand_cohort import HandExtract, make_study, population

NEW_USE = {"phenotype": "statins", "window": "current_use",
           "new_use": {"washout_days": 365, "started_within_days": 365}}


def extract() -> HandExtract:
    hand = HandExtract()
    for pid in "NPROU":
        hand.person(pid, visits=["2016-06-01"])
    hand.person("W", observation=[("2015-06-01", "2022-12-31")], visits=["2016-06-01"])
    hand.fill("N", "statins", "2016-03-01", "2016-08-31")   # first fill 92 days before index, still on it: new user
    hand.fill("P", "statins", "2014-01-01", "2016-12-31")   # on it since 2014: prevalent
    hand.fill("R", "statins", "2015-09-01", "2015-10-01")   # stopped 8 months before index: recent past user
    hand.fill("O", "statins", "2012-01-01", "2012-02-01")   # stopped years before: a non-user at index
    hand.fill("W", "statins", "2016-01-01", "2016-12-31")   # started 214 days into observation: not a known start
    hand.event("O", "leg_cramps", "2018-01-01")
    return hand


@pytest.mark.parametrize("reference, expected", [
    (NEW_USE, {"N": True, "P": None, "R": None, "O": False, "U": False, "W": None}),
    ({"phenotype": "statins", "window": "current_use"},
     {"N": True, "P": True, "R": False, "O": False, "U": False, "W": True}),
])
def test_new_use_keeps_new_users_and_non_users_only(reference, expected):
    con = extract().connect()
    build_study(con, make_study(exposures=[reference]))
    assert {pid: row["statins"] for pid, row in population(con).items()} == expected


def test_the_statistics_leave_out_persons_outside_the_new_use_comparison():
    con = extract().connect()
    study = make_study(exposures=[NEW_USE])
    build_study(con, study)
    [crude] = [r for _, _, r in analyse_study(con, study).results if r.analysis_id == "crude_irr"]
    assert (crude.n_exposed, crude.n_unexposed, crude.events_exposed, crude.events_unexposed) == (1, 2, 0, 1)


def test_new_use_needs_a_current_use_exposure():
    with pytest.raises(ValueError, match="new_use needs window current_use"):
        make_study(exposures=[{**NEW_USE, "window": "any_time_prior"}])
    with pytest.raises(ValueError, match="new_use applies to the exposures"):
        make_study(covariates=[NEW_USE])
