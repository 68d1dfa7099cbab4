"""Death as a competing risk (pipelines/statistics/competing_risks.py): the Aalen-Johansen cumulative incidence at
the horizon, by hand on a tiny cohort and against lifelines, and in a study built on a hand-written extract whose
deaths come from staging.death (tests/support/hand_cohort.py)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter

from pipelines.cohorts import build_study
from pipelines.statistics.competing_risks import aalen_johansen_at, cumulative_incidence_at_horizon
from pipelines.statistics.risks import risks_at_horizon
from pipelines.statistics.study_analysis import analyse_study
from tests.support.hand_cohort import HandExtract, make_study

# One group of 7 (day, what happened): cramp 2, death 3, cramp 4, censored 5, death 6, cramp 8, censored 9.
#   day 2: 7 at risk, 1 cramp   F = 1/7                      free of both: 6/7
#   day 3: 6 at risk, 1 death                                free of both: 6/7 x 5/6 = 5/7
#   day 4: 5 at risk, 1 cramp   F = 1/7 + 5/7 x 1/5 = 2/7    free of both: 5/7 x 4/5 = 4/7
#   day 6: 3 at risk, 1 death                                free of both: 4/7 x 2/3 = 8/21
#   day 8: 2 at risk, 1 cramp   F = 2/7 + 8/21 x 1/2 = 10/21
# Kaplan-Meier with death censored: 6/7 x 4/5 x 1/2 = 12/35 free of cramps, a risk of 23/35 = 0.657 > 10/21 = 0.476.
DAYS = [2, 3, 4, 5, 6, 8, 9]
CRAMP = [1, 0, 1, 0, 0, 1, 0]
DEATH = [0, 1, 0, 0, 1, 0, 0]


def test_cumulative_incidence_by_hand_is_below_one_minus_kaplan_meier():
    incidence, variance, events = aalen_johansen_at(np.array(DAYS), np.array(CRAMP), np.array(DEATH), 8)
    assert incidence == pytest.approx(10 / 21, abs=1e-12)
    assert events == 3
    # The delta-method variance by hand (module docstring), terms at days 2, 3, 4, 6, 8 (n, d, d1, S(t-), F(t)):
    terms = [(7, 1, 1, 1, 1 / 7), (6, 1, 0, 6 / 7, 1 / 7), (5, 1, 1, 5 / 7, 2 / 7), (3, 1, 0, 4 / 7, 2 / 7),
             (2, 1, 1, 8 / 21, 10 / 21)]
    by_hand = sum((10 / 21 - f) ** 2 * d / (n * (n - d)) + s ** 2 * d1 * (n - d1) / n ** 3
                  - 2 * (10 / 21 - f) * s * d1 / n ** 2 for n, d, d1, s, f in terms)
    assert variance == pytest.approx(by_hand, rel=1e-12)
    # The same person-level data through the study-level functions: exposed = this group, unexposed = it shifted.
    frame = pd.DataFrame({"exposure": [1] * 7 + [0] * 7, "outcome": CRAMP + CRAMP, "death": DEATH + DEATH,
                          "followup_days": DAYS + [d + 1 for d in DAYS]})
    aj = {r.analysis_id: r for r in cumulative_incidence_at_horizon(frame, 8)[::-1]}  # the exposed risk row last
    km = {r.estimand: r for r in risks_at_horizon(frame, 8)}
    assert aj["aj_risk"].estimate == pytest.approx(10 / 21)
    assert km["risk at 8 days, exposed"].estimate == pytest.approx(23 / 35)
    assert aj["aj_risk"].estimate < km["risk at 8 days, exposed"].estimate


def test_cumulative_incidence_and_variance_equal_lifelines_aalen_johansen():
    rng = np.random.default_rng(11)
    n = 300
    durations = rng.uniform(0, 10, n)  # no ties: lifelines jitters tied times
    kind = rng.choice([0, 1, 2], size=n, p=[0.3, 0.4, 0.3])  # censored, cramp, death
    fitter = AalenJohansenFitter().fit(durations, kind, event_of_interest=1)
    horizon = 6.0
    expected_incidence = fitter.cumulative_density_.loc[:horizon].iloc[-1, 0]
    expected_variance = fitter.variance_.loc[:horizon].iloc[-1]
    incidence, variance, _ = aalen_johansen_at(durations, kind == 1, kind == 2, horizon)
    assert incidence == pytest.approx(expected_incidence, rel=1e-10)
    assert variance == pytest.approx(expected_variance, rel=1e-8)


def test_a_study_reads_deaths_from_the_extract_and_publishes_the_aalen_johansen_rows():
    """120 persons per arm followed from 2016-01-05; in each arm 30 cramps over the first 300 days and, among the
    exposed only, 40 deaths in the first 200 days: the exposed's Kaplan-Meier risk is above their cumulative
    incidence, the unexposed's (no deaths) equal to it."""
    index = date(2016, 1, 4)
    extract = HandExtract()
    for arm in ("exp", "unexp"):
        for i in range(120):
            person = f"{arm}{i:03d}"
            died = arm == "exp" and 30 <= i < 70
            extract.person(person, year_of_birth=1940 + i % 30, sex="F" if i % 2 else "M", visits=[str(index)],
                           death=str(index + timedelta(days=5 * (i - 29))) if died else None)
            if arm == "exp":
                extract.event(person, "diabetes_mellitus", "2015-06-01")
            if i < 30:
                extract.event(person, "leg_cramps", str(index + timedelta(days=10 * (i + 1))))
    con = extract.connect()
    study = make_study(exposures=["diabetes_mellitus"])
    build_study(con, study)
    rows = {(r.analysis_id, r.estimand.rsplit(", ", 1)[-1]): r for exposure, _, r in analyse_study(con, study).results}
    aj_exposed, km_exposed = rows[("aj_risk", "exposed")], rows[("km_risk", "exposed")]
    aj_unexposed, km_unexposed = rows[("aj_risk", "unexposed")], rows[("km_risk", "unexposed")]
    # Unexposed: no deaths, 30 cramps among 120 by day 300, nobody censored before: 30/120 both ways.
    assert aj_unexposed.estimate == pytest.approx(0.25) and km_unexposed.estimate == pytest.approx(0.25)
    # Exposed: the 40 deaths (days 5-200) leave fewer at risk; censored at death, KM inflates the later cramps.
    # Cramps on days 10, 20, ..., 300 among persons who all survive to them: AJ counts each as 1/120.
    assert aj_exposed.estimate == pytest.approx(30 / 120)
    assert km_exposed.estimate > aj_exposed.estimate + 0.05
    assert aj_exposed.events_exposed == 30
    difference = [r for (analysis_id, _), r in rows.items() if analysis_id == "aj_risk_difference"]
    assert difference[0].estimate == pytest.approx(0.0, abs=1e-12)
