"""A person's follow-up, outcome and competing death when follow-up also ends the day before a censoring date
(study_analysis.FollowUp: the population's dates converted to day numbers once, every exposure censored from them)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from pipelines.statistics.study_analysis import FollowUp, day_numbers

START = date(2020, 1, 2)


def days(last: date) -> int:
    return (last - START).days + 1


# person: (followup_end, outcome_flag, outcome_date, death_date, censor_date)
PERSONS = [
    (date(2020, 12, 31), True, date(2020, 3, 1), None, None),  # 0 outcome, not censored
    (date(2020, 12, 31), True, date(2020, 3, 1), None, date(2020, 2, 1)),  # 1 censored before the outcome
    (date(2020, 6, 30), False, None, date(2020, 6, 30), None),  # 2 death ends follow-up
    (date(2020, 6, 30), False, None, date(2020, 6, 30), date(2020, 3, 1)),  # 3 censored before death
    (date(2020, 12, 31), False, None, None, START),  # 4 starts the exposure on the first day at risk: 0 days
    (date(2020, 12, 31), False, date(2020, 3, 1), None, None),  # 5 a date without the flag is no outcome
    (date(2020, 5, 5), True, date(2020, 5, 5), date(2020, 5, 5), None),  # 6 outcome and death the same day
    (date(2020, 12, 31), True, date(2020, 3, 1), None, date(2020, 3, 2)),  # 7 censored the day after the outcome
]


def population() -> pd.DataFrame:
    frame = pd.DataFrame(PERSONS, columns=["followup_end", "outcome_flag", "outcome_date", "death_date", "censor"],
                         index=pd.RangeIndex(10, 10 + len(PERSONS)))
    frame["time_at_risk_start"] = START
    for column in ("followup_end", "outcome_date", "death_date", "censor", "time_at_risk_start"):
        frame[column] = pd.to_datetime(frame[column])  # datetime64 with NaT, as DuckDB's DATE columns arrive
    return frame


def test_follow_up_ends_at_the_outcome_death_or_end_and_a_censoring_date_ends_it_the_day_before():
    people = population()
    followed = FollowUp.of(people).censored_at(day_numbers(people["censor"]))
    assert followed.index.equals(people.index)
    assert followed["outcome"].tolist() == [1, 0, 0, 0, 0, 0, 1, 1]
    assert followed["death"].tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert followed["followup_days"].tolist() == [
        days(date(2020, 3, 1)), days(date(2020, 1, 31)), days(date(2020, 6, 30)), days(date(2020, 2, 29)), 0,
        days(date(2020, 12, 31)), days(date(2020, 5, 5)), days(date(2020, 3, 1))]
    assert followed["followup_days"].dtype == np.int64


def test_without_censoring_every_person_is_followed_to_the_outcome_death_or_end():
    followed = FollowUp.of(population()).censored_at(None)
    assert followed["outcome"].tolist() == [1, 1, 0, 0, 0, 0, 1, 1]
    assert followed["death"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert followed["followup_days"].tolist() == [
        days(date(2020, 3, 1)), days(date(2020, 3, 1)), days(date(2020, 6, 30)), days(date(2020, 6, 30)),
        days(date(2020, 12, 31)), days(date(2020, 12, 31)), days(date(2020, 5, 5)), days(date(2020, 3, 1))]


def test_day_numbers_count_days_since_1970_and_leave_missing_dates_missing():
    numbers = day_numbers(pd.Series(pd.to_datetime(["1970-01-01", None, "2020-01-02"])))
    assert numbers[0] == 0 and np.isnan(numbers[1]) and numbers[2] == (date(2020, 1, 2) - date(1970, 1, 1)).days
