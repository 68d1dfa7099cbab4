"""Drug eras have one rule (sql/cohorts/exposure_eras.sql: fills joined while the next starts within the grace period
after the supply so far ends, OHDSI drug_era; the era runs on for the grace period after its last supply, Ray 2003)
and two users: the on-treatment end of a new-user design (the first era) and the time-varying current use (every
era). The same hand-made fills go through both, with every value counted by hand, so neither can drift."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest

from pipelines.cohorts import build_study
from pipelines.cohorts.build import model_sql
from tests.support.hand_cohort import NEW_USER, HandExtract, make_study, population

D = date.fromisoformat
THIAZIDE = "thiazide_diuretics"
FIRST_FILL = D("2016-03-01")  # the new-user index date, and day 0 of the first-visit study's time at risk
FOLLOWUP_DAYS = 306           # 2016-03-01 to the end of observation, 2016-12-31
# Fills (start, last day of supply); the grace period is 30 days in both studies.
FILLS = {
    # The second fill starts 29 days after the first supply ends (day 29 -> day 58): one era, supply to day 87.
    "gap_below": [("2016-03-01", "2016-03-30"), ("2016-04-28", "2016-05-27")],
    # Exactly 30 days (day 29 -> day 59): still one era, supply to day 88.
    "gap_at": [("2016-03-01", "2016-03-30"), ("2016-04-29", "2016-05-28")],
    # 31 days (day 29 -> day 60): a new era; the first ends at day 29 + 30 = 59, the second runs days 60 to 119.
    "gap_above": [("2016-03-01", "2016-03-30"), ("2016-04-30", "2016-05-29")],
    # Overlapping fills: days 0-29, 14-73 and 31-40 (inside the one before); the fill of day 93 starts 20 days after
    # the longest supply so far (day 73) though 53 after the last fill's (day 40): one era, supply to day 122.
    "overlapping": [("2016-03-01", "2016-03-30"), ("2016-03-15", "2016-05-13"), ("2016-04-01", "2016-04-10"),
                    ("2016-06-02", "2016-07-01")],
}
# A second drug timed as current use in the same study, for one person: its eras are built in a statement of their
# own (pipelines/cohorts/build.py materialise_eras: one exposure at a time). Days 61-70, era end 70 + 30 = day 100.
STATIN = "statins"
STATIN_FILLS = {"gap_above": [("2016-05-01", "2016-05-10")]}
# By hand: the first era's last day of supply + 30 days, as a date (on treatment) and as exposed rows (current use).
ON_TREATMENT_END = {"gap_below": D("2016-06-26"), "gap_at": D("2016-06-27"), "gap_above": D("2016-04-29"),
                    "overlapping": D("2016-07-31")}
STATIN_ROWS = {"gap_above": [(0, 61, False), (61, 101, True), (101, FOLLOWUP_DAYS, False)],
               **{pid: [(0, FOLLOWUP_DAYS, False)] for pid in FILLS if pid != "gap_above"}}
CURRENT_USE_ROWS = {
    "gap_below": [(0, 118, True), (118, FOLLOWUP_DAYS, False)],
    "gap_at": [(0, 119, True), (119, FOLLOWUP_DAYS, False)],
    "gap_above": [(0, 60, True), (60, 120, True), (120, FOLLOWUP_DAYS, False)],
    "overlapping": [(0, 153, True), (153, FOLLOWUP_DAYS, False)],
}


@pytest.fixture(scope="module")
def built():
    """One extract, two studies: a new-user study of the thiazide (index = the first fill) and a first-visit study
    (visit the day before the first fill, so day 0 at risk is the first fill) timing the thiazide as current use."""
    extract = HandExtract()
    for pid, fills in FILLS.items():
        extract.person(pid, observation=[("2010-01-01", "2016-12-31")], visits=["2016-02-29"])
        for start, end in fills:
            extract.fill(pid, THIAZIDE, start, end)
        for start, end in STATIN_FILLS.get(pid, []):
            extract.fill(pid, STATIN, start, end)
    con = extract.connect()
    new_user = make_study(id="new_user_study", index={**NEW_USER, "grace_days": 30})
    current_use = make_study(id="current_use_study", exposures=[{"phenotype": THIAZIDE, "window": "current_use"},
                                                                        {"phenotype": STATIN, "window": "current_use"}],
                             exposure_time={"mode": "current", "grace_days": 30})
    build_study(con, new_user)
    build_study(con, current_use)
    ends = {pid: row["on_treatment_end"] for pid, row in population(con, "new_user_study").items()}
    index = {pid: row["index_date"] for pid, row in population(con, "new_user_study").items()}
    at_risk = {pid: (row["time_at_risk_start"], row["followup_days"])
               for pid, row in population(con, "current_use_study").items()}
    rows: dict[str, dict[str, list[tuple[int, int, bool]]]] = {THIAZIDE: {}, STATIN: {}}
    for variable, pid, start, stop, exposed in con.execute(
            "SELECT variable, person_id, start_day, stop_day, exposed FROM cohort.time_varying_exposure "
            "WHERE study_id = 'current_use_study' ORDER BY variable, person_id, start_day").fetchall():
        rows[variable].setdefault(pid, []).append((start, stop, exposed))
    return ends, index, at_risk, rows


def test_the_studies_line_up_on_the_first_fill(built):
    _, index, at_risk, _ = built
    assert index == {pid: FIRST_FILL for pid in FILLS}
    assert at_risk == {pid: (FIRST_FILL, FOLLOWUP_DAYS) for pid in FILLS}


def test_on_treatment_ends_with_the_first_era_plus_grace(built):
    ends, _, _, _ = built
    assert ends == ON_TREATMENT_END


def test_current_use_follows_every_era_plus_grace(built):
    _, _, _, rows = built
    assert rows[THIAZIDE] == CURRENT_USE_ROWS


def test_each_exposure_has_its_own_eras(built):
    _, _, _, rows = built
    assert rows[STATIN] == STATIN_ROWS


def test_both_users_end_the_first_era_on_the_same_day(built):
    ends, _, _, rows = built
    first_exposed_until = {pid: FIRST_FILL + timedelta(days=person_rows[0][1] - 1)
                           for pid, person_rows in rows[THIAZIDE].items()}
    assert first_exposed_until == ends


# The rule on its own, on spans written by hand (era_spans as its writers materialise it), every era counted by hand:
# (person_number, variable_number, first_day, last_day, join_within_days, extend_days).
HAND_SPANS = [
    # Person 1, variable 1 (a drug: 30 days to join, 30 of grace). Era 1: days 0-29, the fill of day 10 inside it.
    # Era 2 opens on day 60 (31 days after 29) and covers to day 200, though its later fills end on days 80 and 100.
    # Era 3 opens on day 231 (31 days after 200). Era 4: two fills of day 300 (one era) and one of day 340, exactly
    # 30 days after day 310: it still joins.
    (1, 1, 0, 29, 30, 30), (1, 1, 10, 15, 30, 30),
    (1, 1, 60, 200, 30, 30), (1, 1, 70, 80, 30, 30), (1, 1, 90, 100, 30, 30),
    (1, 1, 231, 240, 30, 30),
    (1, 1, 300, 310, 30, 30), (1, 1, 300, 305, 30, 30), (1, 1, 340, 350, 30, 30),
    # Person 1, variable 2 (risk windows: adjacent windows join, no grace): days 0-41 and 42-83 are one era, 85-126
    # another.
    (1, 2, 85, 126, 1, 0), (1, 2, 42, 83, 1, 0), (1, 2, 0, 41, 1, 0),
    # Person 2, variable 1: one fill before day 0.
    (2, 1, -50, -20, 30, 30),
]
HAND_ERAS = {  # (person_number, variable_number, era): (era_first_day, era_last_day, era_end_day)
    (1, 1, 1): (0, 29, 59), (1, 1, 2): (60, 200, 230), (1, 1, 3): (231, 240, 270), (1, 1, 4): (300, 350, 380),
    (1, 2, 1): (0, 83, 83), (1, 2, 2): (85, 126, 126),
    (2, 1, 1): (-50, -20, 10),
}


def test_the_era_rule_on_hand_spans():
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE era_spans (person_number BIGINT, variable_number BIGINT, first_day BIGINT, "
                "last_day BIGINT, join_within_days INTEGER, extend_days INTEGER)")
    con.executemany("INSERT INTO era_spans VALUES (?, ?, ?, ?, ?, ?)", HAND_SPANS)
    eras = {(person, variable, era): (first, last, end) for person, variable, era, first, last, end in con.execute(
        "SELECT person_number, variable_number, era, era_first_day, era_last_day, era_end_day "
        f"FROM ({model_sql('exposure_eras')})").fetchall()}
    assert eras == HAND_ERAS
