"""Cohort SQL on hand-built staging.* and phenotype.* tables: attrition and every edge case of the index rules,
windows, washouts and time at risk (`HandExtract` and `make_study` are in tests/support/hand_cohort.py)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import duckdb
import pytest

from pipelines import extract_spec as spec
from pipelines.cohorts import build_study
from pipelines.cohorts.build import CohortBuildError
from tests.support.cohort_reference import (
    PersonRecord,
    person_records_from_frames,
    reference_attrition,
    reference_population,
)
from pipelines.cohorts.study import StudyDefinition
from pipelines.ingest.loader import create_empty_staging_table
from tests.support.hand_cohort import NEW_USER, HandExtract, make_study, population

D = date.fromisoformat


def removed_by_step(con: duckdb.DuckDBPyConnection, study_id: str = "test_study") -> dict[str, int]:
    return dict(con.execute("SELECT step_code, persons_removed FROM results.attrition WHERE study_id = ? "
                            "ORDER BY step_order", [study_id]).fetchall())


def exclusion_of(extract: HandExtract, study: StudyDefinition, person_id: str) -> str | None:
    """The step a person fails, read from the eligibility model through attrition: rebuild with only them."""
    con = extract.connect()
    build_study(con, study)
    if person_id in population(con, study.id):
        return None
    removed = {code: n for code, n in removed_by_step(con, study.id).items() if n}
    others = len(extract.persons) - 1
    assert others == 0, "exclusion_of expects a one-person extract"
    [(code, _)] = removed.items()
    return code


# ---------------------------------------------------------------------------------------------------------------
# Attrition
# ---------------------------------------------------------------------------------------------------------------

def test_attrition_counts_every_first_visit_step_in_order():
    extract = (
        HandExtract()
        .person("in1", visits=["2016-01-01"])
        .person("in2", visits=["2016-01-01"])
        .person("no_observation", observation=[("2023-01-01", "2024-12-31")], visits=["2023-06-01"])
        .person("no_visit", visits=[])
        .person("inpatient_only", visits=["2016-01-01"], visit_type="inpatient")
        .person("short_prior", observation=[("2016-01-01", "2022-12-31")], visits=["2016-06-01"])
        .person("child", year_of_birth=2005, visits=["2016-01-01"])
        .person("dead", visits=["2016-01-01"], death="2015-06-01")
        .person("prior_cramps", visits=["2016-01-01"])
        .event("prior_cramps", "leg_cramps", "2014-01-01")
        .person("died_on_index", visits=["2016-01-01"], death="2016-01-01")
    )
    con = extract.connect()
    build = build_study(con, make_study())
    rows = con.execute("SELECT step_order, step_code, persons_before, persons_removed, persons_after "
                       "FROM results.attrition ORDER BY step_order").fetchall()
    assert rows == [
        (1, "in_extract", 10, 0, 10),
        (2, "no_observation_in_study_period", 10, 1, 9),
        (3, "no_visit_in_study_period", 9, 2, 7),
        (4, "insufficient_prior_observation", 7, 1, 6),
        (5, "age_out_of_range", 6, 1, 5),
        (6, "died_before_index", 5, 1, 4),
        (7, "outcome_before_time_at_risk", 4, 1, 3),
        (8, "no_time_at_risk", 3, 1, 2),
    ]
    assert build.cohort_size == 2 and set(population(con)) == {"in1", "in2"}

    # The reference implementation, fed the same tables as pandas frames, agrees.
    frames = {name: con.execute(f"SELECT * FROM staging.{name}").df()
              for name in ("person", "observation_period", "visit_occurrence", "death")}
    outcomes = con.execute("SELECT person_id, event_date FROM phenotype.events "
                           "WHERE phenotype_id = 'leg_cramps'").df()
    records = person_records_from_frames(frames["person"], frames["observation_period"], frames["visit_occurrence"],
                                         frames["death"], outcomes)
    assert reference_attrition(make_study(), records) == [
        (code, before, after, removed) for _, code, before, removed, after in rows]


def test_attrition_matches_the_independent_reference_on_random_persons():
    rng = random.Random(7)
    extract = HandExtract()
    records = []
    for n in range(500):
        pid = f"P{n}"
        periods = []
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            start = D("2011-01-01") + timedelta(days=rng.randrange(0, 4500))
            periods.append((start, start + timedelta(days=rng.randrange(-5, 2500))))
        visits = sorted(D("2013-01-01") + timedelta(days=rng.randrange(0, 4000)) for _ in range(rng.randrange(0, 4)))
        visit_types = [rng.choice(["outpatient", "outpatient", "inpatient"]) for _ in visits]
        death = D("2014-01-01") + timedelta(days=rng.randrange(0, 4000)) if rng.random() < 0.2 else None
        if visits and rng.random() < 0.1:
            death = visits[0]  # died on the day of their first visit: no time at risk
        yob = rng.randrange(1925, 2010)
        record = PersonRecord(pid, yob, None, periods, list(zip(visits, visit_types)), death)
        extract.persons.append((pid, yob, None, rng.choice("FMU")))
        extract.observation_periods += [(f"{pid}-{i}", pid, s, e) for i, (s, e) in enumerate(periods)]
        extract.visits += [(f"{pid}-v{i}", pid, t, v) for i, (v, t) in enumerate(zip(visits, visit_types))]
        if death:
            extract.deaths.append((pid, death))
        for _ in range(rng.choice([0, 0, 1, 2])):
            day = D("2013-01-01") + timedelta(days=rng.randrange(0, 4000))
            record.outcome_dates.append(day)
            extract.events.append((pid, "leg_cramps", day, "condition_occurrence", "ICD10CM", "R25.2", None))
        fill_starts = {drug: [D("2013-01-01") + timedelta(days=rng.randrange(0, 4000))
                              for _ in range(rng.choice([0, 0, 1, 2]))]
                       for drug in ("thiazide_diuretics", "calcium_channel_blockers")}
        if rng.random() < 0.05:  # starts both drugs on one day
            day = D("2015-01-01") + timedelta(days=rng.randrange(0, 2900))
            for starts in fill_starts.values():
                starts.append(day)
        for drug, starts in fill_starts.items():
            for start in sorted(set(starts)):
                end = start + timedelta(days=rng.choice([0, 29, 89]))
                record.fills.setdefault(drug, []).append((start, end))
                extract.drugs.append((f"{pid}-{drug}-{start}", pid, "ATC", drug[:5], start, end))
                extract.events.append((pid, drug, start, "drug_exposure", "ATC", drug[:5], end))
        records.append(record)

    studies = [
        make_study(),
        make_study(id="new_users", index=NEW_USER, age_at_index={"min": 40, "max": 80}),
        make_study(id="washout_days", index={"rule": "first_visit"}, prior_observation_days=0,
                   outcome={"phenotype": "leg_cramps", "washout": {"lookback_days": 180}},
                   time_at_risk={"max_days": 400}),
    ]
    con = extract.connect()
    for study in studies:
        build_study(con, study)
        published = con.execute("SELECT step_code, persons_before, persons_after, persons_removed FROM "
                                "results.attrition WHERE study_id = ? ORDER BY step_order", [study.id]).fetchall()
        assert published == reference_attrition(study, records), study.id
        expected = {pid: r for pid, r in reference_population(study, records).items() if r.exclusion_reason is None}
        rows = population(con, study.id)
        assert set(rows) == set(expected) and len(rows) > 10
        for pid, row in rows.items():
            assert (row["index_date"], row["followup_end"], row["outcome_date"], row["treatment"]) == (
                expected[pid].index_date, expected[pid].followup_end, expected[pid].outcome_date,
                expected[pid].treatment), pid


# ---------------------------------------------------------------------------------------------------------------
# Edge cases of the study population
# ---------------------------------------------------------------------------------------------------------------

def test_observation_starting_after_the_study_end_removes_the_person_first():
    extract = HandExtract().person("late", observation=[("2023-01-01", "2025-12-31")], visits=["2023-06-01"])
    assert exclusion_of(extract, make_study(), "late") == "no_observation_in_study_period"


@pytest.mark.parametrize("outcome_day, washout, expected_exclusion, expected_outcome", [
    ("2016-03-01", "any_time_prior", "outcome_before_time_at_risk", None),  # on index: prior, washed out
    ("2016-03-01", "none", None, None),                                    # on index, no washout: not counted
    ("2016-03-02", "any_time_prior", None, "2016-03-02"),                  # first day at risk: counted
    ("2014-01-01", {"lookback_days": 365}, None, None),                    # before the washout window: kept
    ("2015-03-01", {"lookback_days": 366}, "outcome_before_time_at_risk", None),  # index - 366 is inside
])
def test_outcome_on_the_index_date_is_prior_never_an_outcome(outcome_day, washout, expected_exclusion,
                                                             expected_outcome):
    extract = HandExtract().person("p", visits=["2016-03-01"]).event("p", "leg_cramps", outcome_day)
    study = make_study(outcome={"phenotype": "leg_cramps", "washout": washout})
    con = extract.connect()
    build_study(con, study)
    rows = population(con)
    if expected_exclusion:
        assert rows == {} and removed_by_step(con)[expected_exclusion] == 1
    else:
        assert rows["p"]["outcome_date"] == (D(expected_outcome) if expected_outcome else None)
        assert rows["p"]["outcome_flag"] is (expected_outcome is not None)


def test_followup_days_stop_at_the_first_outcome():
    extract = (HandExtract().person("p", visits=["2016-03-01"])
               .event("p", "leg_cramps", "2016-03-11").event("p", "leg_cramps", "2017-01-01"))
    con = extract.connect()
    build_study(con, make_study())
    row = population(con)["p"]
    # At risk 2016-03-02 .. 2016-03-11: 10 days; followup_end stays the end of the time at risk.
    assert (row["outcome_date"], row["followup_days"], row["followup_end"]) == (
        D("2016-03-11"), 10, D("2022-12-31"))


def test_outcome_at_index_counts_when_time_at_risk_starts_on_the_index_date():
    extract = HandExtract().person("p", visits=["2016-03-01"]).event("p", "leg_cramps", "2016-03-01")
    con = extract.connect()
    build_study(con, make_study(time_at_risk={"start_offset_days": 0}))
    assert population(con)["p"]["outcome_date"] == D("2016-03-01")


def test_death_before_index_and_on_index():
    before = HandExtract().person("p", visits=["2016-03-01"], death="2016-02-29")
    assert exclusion_of(before, make_study(), "p") == "died_before_index"
    on_index = HandExtract().person("p", visits=["2016-03-01"], death="2016-03-01")
    assert exclusion_of(on_index, make_study(), "p") == "no_time_at_risk"
    next_day = HandExtract().person("p", visits=["2016-03-01"], death="2016-03-02")
    con = next_day.connect()
    build_study(con, make_study())
    row = population(con)["p"]
    assert (row["followup_end"], row["followup_days"], row["death_date"]) == (D("2016-03-02"), 1, D("2016-03-02"))


def test_followup_ends_at_the_earliest_of_observation_end_death_study_end_and_max_days():
    extract = (HandExtract()
               .person("obs_end", visits=["2016-03-01"], observation=[("2010-01-01", "2018-05-31")])
               .person("death", visits=["2016-03-01"], death="2017-01-15")
               .person("study_end", visits=["2016-03-01"], observation=[("2010-01-01", "2030-01-01")]))
    con = extract.connect()
    build_study(con, make_study())
    rows = population(con)
    assert rows["obs_end"]["followup_end"] == D("2018-05-31")
    assert rows["death"]["followup_end"] == D("2017-01-15")
    assert rows["study_end"]["followup_end"] == D("2022-12-31")
    assert rows["study_end"]["time_at_risk_start"] == D("2016-03-02")
    assert rows["study_end"]["followup_days"] == (D("2022-12-31") - D("2016-03-02")).days + 1
    build_study(con, make_study(time_at_risk={"max_days": 30}))
    assert population(con)["study_end"]["followup_end"] == D("2016-03-31")


def test_first_visit_is_the_first_with_enough_prior_observation_in_the_same_period():
    extract = HandExtract().person(
        "p", observation=[("2014-06-01", "2022-12-31")], visits=["2015-02-01", "2015-06-01", "2015-07-01"])
    con = extract.connect()
    build_study(con, make_study())
    # 2015-06-01 - 2014-06-01 = 365 days of prior observation: exactly enough.
    assert population(con)["p"]["index_date"] == D("2015-06-01")


def test_prior_observation_does_not_count_across_a_gap_between_periods():
    extract = HandExtract().person(
        "p", observation=[("2012-01-01", "2015-06-30"), ("2015-07-02", "2022-12-31")], visits=["2015-09-01"])
    assert exclusion_of(extract, make_study(), "p") == "insufficient_prior_observation"


@pytest.mark.parametrize("periods", [
    [("2014-01-01", "2015-06-30"), ("2015-03-01", "2018-12-31")],                              # overlapping
    [("2014-01-01", "2015-06-30"), ("2015-07-01", "2018-12-31")],                              # back to back
    [("2015-03-01", "2018-12-31"), ("2014-01-01", "2015-04-01"), ("2014-02-01", "2014-03-01")],  # nested, unsorted
])
def test_overlapping_or_adjacent_observation_periods_are_merged(periods):
    extract = HandExtract().person("p", observation=periods, visits=["2015-09-01"])
    con = extract.connect()
    build_study(con, make_study())
    row = population(con)["p"]
    assert (row["index_date"], row["observation_start"], row["observation_end"]) == (
        D("2015-09-01"), D("2014-01-01"), D("2018-12-31"))
    assert row["followup_end"] == D("2018-12-31")


def test_age_uses_the_birth_date_when_present_else_the_year():
    extract = (HandExtract()
               .person("birthday_tomorrow", year_of_birth=1998, birth_date="1998-03-02", visits=["2016-03-01"])
               .person("birthday_today", year_of_birth=1998, birth_date="1998-03-01", visits=["2016-03-01"])
               .person("year_only", year_of_birth=1998, visits=["2016-03-01"]))
    con = extract.connect()
    build_study(con, make_study())
    rows = population(con)
    assert "birthday_tomorrow" not in rows  # 17 years old
    assert rows["birthday_today"]["age_at_index"] == 18 and rows["year_only"]["age_at_index"] == 18


# ---------------------------------------------------------------------------------------------------------------
# Windows of exposures and covariates
# ---------------------------------------------------------------------------------------------------------------

def test_lookback_window_boundary_days():
    index = D("2016-03-01")
    extract = HandExtract()
    offsets = {"day_365_before": -365, "day_366_before": -366, "index_day": 0, "day_after": 1}
    for pid, offset in offsets.items():
        extract.person(pid, visits=[str(index)]).event(pid, "hypokalemia_lab", str(index + timedelta(days=offset)))
    con = extract.connect()
    build_study(con, make_study(exposures=[{"phenotype": "hypokalemia_lab", "window": {"lookback_days": 365}}]))
    rows = population(con)
    present = {pid: rows[pid]["hypokalemia_lab"] for pid in offsets}
    assert present == {"day_365_before": True, "day_366_before": False, "index_day": True, "day_after": False}
    # The first date on the window's terms: in the window when present; the day acquired after index otherwise.
    assert rows["day_after"]["hypokalemia_lab_first_date"] == D("2016-03-02")
    assert rows["day_366_before"]["hypokalemia_lab_first_date"] is None
    assert rows["day_365_before"]["hypokalemia_lab_first_date"] == D("2015-03-02")


def test_any_time_prior_counts_the_index_day_and_keeps_the_first_date_after_index():
    extract = (HandExtract()
               .person("long_ago", visits=["2016-03-01"]).event("long_ago", "hypothyroidism", "2001-01-01")
               .person("on_index", visits=["2016-03-01"]).event("on_index", "hypothyroidism", "2016-03-01")
               .person("later", visits=["2016-03-01"]).event("later", "hypothyroidism", "2019-05-05")
               .person("never", visits=["2016-03-01"]))
    con = extract.connect()
    build_study(con, make_study(covariates=["hypothyroidism"]))
    rows = population(con)
    assert {p: r["hypothyroidism"] for p, r in rows.items()} == {
        "long_ago": True, "on_index": True, "later": False, "never": False}
    assert rows["later"]["hypothyroidism_first_date"] == D("2019-05-05")
    assert rows["never"]["hypothyroidism_first_date"] is None


def test_events_before_the_phenotype_rule_is_met_do_not_count():
    extract = (HandExtract().person("p", visits=["2016-03-01"])
               .event("p", "hypothyroidism", "2015-01-01").event("p", "hypothyroidism", "2017-01-01")
               .summary_first_date("p", "hypothyroidism", "2017-01-01"))
    con = extract.connect()
    build_study(con, make_study(covariates=["hypothyroidism"]))
    row = population(con)["p"]
    assert row["hypothyroidism"] is False and row["hypothyroidism_first_date"] == D("2017-01-01")


def test_current_use_follows_the_days_of_supply():
    extract = HandExtract()
    # A 30-day fill 2016-02-01..2016-03-01 (end = start + days_supply - 1, as staging stores it).
    for pid, index in {"last_day_of_supply": "2016-03-01", "day_after_supply": "2016-03-02",
                       "fill_on_index": "2016-02-01", "before_fill": "2016-01-31"}.items():
        extract.person(pid, visits=[index]).fill(pid, "statins", "2016-02-01", "2016-03-01")
    extract.fill("day_after_supply", "statins", "2016-04-01", "2016-04-30")
    con = extract.connect()
    build_study(con, make_study(exposures=[{"phenotype": "statins", "window": "current_use"}]))
    rows = population(con)
    assert {p: r["statins"] for p, r in rows.items()} == {
        "last_day_of_supply": True, "day_after_supply": False, "fill_on_index": True, "before_fill": False}
    assert rows["day_after_supply"]["statins_first_date"] == D("2016-04-01")  # the next fill after index
    assert rows["before_fill"]["statins_first_date"] == D("2016-02-01")
    assert rows["last_day_of_supply"]["statins_first_date"] == D("2016-02-01")


def test_current_use_takes_the_supply_of_the_matching_fill_only():
    # Same person and day, another drug with a long supply: it must not lend its supply to the statin fill.
    extract = (HandExtract().person("p", visits=["2016-03-01"])
               .fill("p", "statins", "2016-02-01", "2016-02-10", code="C10AA05"))
    extract.drugs.append(("other", "p", "ATC", "C08CA01", D("2016-02-01"), D("2016-12-31")))
    con = extract.connect()
    build = build_study(con, make_study(exposures=[{"phenotype": "statins", "window": "current_use"}]))
    assert population(con)["p"]["statins"] is False and not any("supply" in w for w in build.warnings)


def test_fill_without_an_end_date_is_one_day_of_supply_and_a_warning():
    extract = HandExtract().person("p", visits=["2016-03-01"])
    extract.events.append(("p", "statins", D("2016-02-01"), "drug_exposure", "ATC", "C10AA05", None))
    con = extract.connect()
    build = build_study(con, make_study(exposures=[{"phenotype": "statins", "window": "current_use"}]))
    assert population(con)["p"]["statins"] is False
    assert any("1 drug fills" in w for w in build.warnings)


# ---------------------------------------------------------------------------------------------------------------
# New-user design
# ---------------------------------------------------------------------------------------------------------------

def test_new_user_index_treatment_and_exclusions():
    thiazide, ccb = "thiazide_diuretics", "calcium_channel_blockers"
    extract = (
        HandExtract()
        .person("target").fill("target", thiazide, "2016-03-01", "2016-03-30")
        .fill("target", ccb, "2016-05-01", "2016-05-30")
        .person("comparator").fill("comparator", ccb, "2016-03-01", "2016-03-30")
        .person("both_same_day").fill("both_same_day", thiazide, "2016-03-01", "2016-03-30")
        .fill("both_same_day", ccb, "2016-03-01", "2016-03-30")
        .person("start_on_first_observation_day", observation=[("2016-03-01", "2022-12-31")])
        .fill("start_on_first_observation_day", thiazide, "2016-03-01", "2016-03-30")
        # A comparator fill from before the study period whose supply reaches index - 365: use in the washout.
        .person("washout_hit").fill("washout_hit", ccb, "2014-12-01", "2015-03-02")
        .fill("washout_hit", thiazide, "2016-03-01", "2016-03-30")
        # The same with supply ending index - 366: outside the washout.
        .person("washout_clear").fill("washout_clear", ccb, "2014-01-01", "2015-03-01")
        .fill("washout_clear", thiazide, "2016-03-01", "2016-03-30")
        .person("earlier_fill_in_period").fill("earlier_fill_in_period", thiazide, "2015-06-01", "2015-06-30")
        .fill("earlier_fill_in_period", ccb, "2016-03-01", "2016-03-30")
        .person("fill_before_period_only").fill("fill_before_period_only", ccb, "2014-06-01", "2014-06-30")
    )
    con = extract.connect()
    build_study(con, make_study(index=NEW_USER))
    rows = population(con)
    assert {p: (r["index_date"], r["treatment"]) for p, r in rows.items()} == {
        "target": (D("2016-03-01"), 1),
        "comparator": (D("2016-03-01"), 0),
        "washout_clear": (D("2016-03-01"), 1),
        "earlier_fill_in_period": (D("2015-06-01"), 1),
    }
    assert removed_by_step(con) == {
        "in_extract": 0, "no_observation_in_study_period": 0, "no_new_use_in_study_period": 1,
        "started_both_on_index": 1, "insufficient_prior_observation": 1, "use_in_washout": 1,
        "age_out_of_range": 0, "died_before_index": 0, "outcome_before_time_at_risk": 0, "no_time_at_risk": 0}
    # Target and comparator are recorded as current use; a later start of the other drug is kept for censoring.
    assert rows["target"]["thiazide_diuretics"] is True and rows["target"]["calcium_channel_blockers"] is False
    assert rows["target"]["calcium_channel_blockers_first_date"] == D("2016-05-01")
    definitions = dict(con.execute("SELECT cohort_name, cohort_definition_id FROM cohort.cohort_definition").fetchall())
    members = con.execute(
        "SELECT d.cohort_name, list(c.subject_id ORDER BY c.subject_id) FROM cohort.cohort c JOIN "
        "cohort.cohort_definition d USING (cohort_definition_id) GROUP BY 1").fetchall()
    assert dict(members) == {
        "test_study: study population": ["comparator", "earlier_fill_in_period", "target", "washout_clear"],
        "test_study: target (new users of thiazide_diuretics)": ["earlier_fill_in_period", "target", "washout_clear"],
        "test_study: comparator (new users of calcium_channel_blockers)": ["comparator"],
    }
    assert len(definitions) == 4  # with the (empty) outcome cohort


def test_drug_start_on_the_first_day_of_observation_has_no_prior_observation():
    extract = (HandExtract().person("p", observation=[("2016-03-01", "2022-12-31")])
               .fill("p", "thiazide_diuretics", "2016-03-01", "2016-03-30"))
    assert exclusion_of(extract, make_study(index=NEW_USER), "p") == "insufficient_prior_observation"
    assert exclusion_of(extract, make_study(index={**NEW_USER, "washout_days": 0}, prior_observation_days=1),
                        "p") == "insufficient_prior_observation"
    # Only a design that asks for no prior observation (and so no washout) keeps it.
    assert exclusion_of(extract, make_study(index={**NEW_USER, "washout_days": 0}, prior_observation_days=0),
                        "p") is None


# ---------------------------------------------------------------------------------------------------------------
# Output tables
# ---------------------------------------------------------------------------------------------------------------

def test_cohort_tables_hold_population_exposure_and_outcome_cohorts():
    extract = (HandExtract()
               .person("a", visits=["2016-03-01"]).event("a", "peripheral_arterial_disease", "2015-01-01")
               .event("a", "leg_cramps", "2017-04-04")
               .person("b", visits=["2016-03-01"]))
    con = extract.connect()
    build_study(con, make_study(exposures=["peripheral_arterial_disease"], covariates=["hypothyroidism"]))
    cohorts = con.execute(
        "SELECT d.kind, d.phenotype_id, c.subject_id, c.cohort_start_date, c.cohort_end_date FROM cohort.cohort c "
        "JOIN cohort.cohort_definition d USING (cohort_definition_id) ORDER BY 1, 3").fetchall()
    assert cohorts == [
        ("exposure", "peripheral_arterial_disease", "a", D("2016-03-01"), D("2022-12-31")),
        ("outcome", "leg_cramps", "a", D("2017-04-04"), D("2017-04-04")),
        ("study_population", None, "a", D("2016-03-01"), D("2022-12-31")),
        ("study_population", None, "b", D("2016-03-01"), D("2022-12-31")),
    ]
    variables = con.execute("SELECT variable, role, window_kind FROM cohort.study_variables ORDER BY 1").fetchall()
    assert variables == [("hypothyroidism", "covariate", "any_time_prior"),
                         ("peripheral_arterial_disease", "exposure", "any_time_prior")]


def test_rebuilding_a_study_replaces_only_its_rows_and_columns_of_other_studies_stay_null():
    extract = HandExtract().person("a", visits=["2016-03-01"]).event("a", "statins", "2016-02-01")
    con = extract.connect()
    build_study(con, make_study(id="one", covariates=["hypothyroidism"]))
    build_study(con, make_study(id="two", covariates=["osteoarthritis"]))
    build_study(con, make_study(id="one", covariates=["hypothyroidism"]))
    counts = dict(con.execute("SELECT study_id, count(*) FROM cohort.study_population GROUP BY 1").fetchall())
    assert counts == {"one": 1, "two": 1}
    assert population(con, "one")["a"]["osteoarthritis"] is None  # not recorded by study one
    assert population(con, "two")["a"]["osteoarthritis"] is False
    assert con.execute("SELECT count(DISTINCT study_id) FROM results.table1").fetchone()[0] == 2


def test_missing_phenotype_tables_give_a_clear_error():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    for table in spec.TABLES:
        create_empty_staging_table(con, table)
    with pytest.raises(CohortBuildError, match="phenotype.events, phenotype.person_summary"):
        build_study(con, make_study())


def test_a_failed_rebuild_leaves_the_previous_rows(monkeypatch):
    import pipelines.cohorts.build as build_module

    extract = HandExtract().person("a", visits=["2016-03-01"]).person("b", visits=["2016-03-01"])
    con = extract.connect()
    build_study(con, make_study())

    def broken_table1(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(build_module, "build_table1", broken_table1)
    with pytest.raises(RuntimeError, match="boom"):
        build_study(con, make_study())
    assert set(population(con)) == {"a", "b"}
    assert con.execute("SELECT count(*) FROM results.table1").fetchone()[0] > 0
    assert con.execute("SELECT count(*) FROM results.attrition").fetchone()[0] == 8


def test_reference_from_a_synthetic_truth_table_matches_the_sql():
    import pandas as pd

    from tests.support.cohort_reference import person_records_from_truth

    extract = (HandExtract()
               .person("kept", year_of_birth=1950, visits=["2016-03-01"])
               .person("prior_cramp", year_of_birth=1950, visits=["2016-03-01"])
               .event("prior_cramp", "leg_cramps", "2015-05-05")
               .person("dead", year_of_birth=1950, visits=["2016-03-01"], death="2016-01-01")
               .person("young", year_of_birth=2005, visits=["2016-03-01"]))
    con = extract.connect()
    build_study(con, make_study())
    truth = pd.DataFrame({
        "person_id": ["kept", "prior_cramp", "dead", "young"],
        "year_of_birth": [1950, 1950, 1950, 2005],
        "death_date": [None, None, pd.Timestamp("2016-01-01"), None],
        "leg_cramps_date": [None, pd.Timestamp("2015-05-05"), None, None],
    })
    records = person_records_from_truth(make_study(), truth,
                                        con.sql("SELECT * FROM staging.observation_period").df(),
                                        con.sql("SELECT * FROM staging.visit_occurrence").df())
    published = con.execute("SELECT step_code, persons_before, persons_after, persons_removed FROM results.attrition "
                            "ORDER BY step_order").fetchall()
    assert reference_attrition(make_study(), records) == published
