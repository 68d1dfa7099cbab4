-- Every person in the extract with their index date, time at risk, outcome and the first inclusion criterion they
-- fail (exclusion_reason; NULL = in the study population). The index criteria come from the index model
-- (index_first_visit or index_new_user, materialised as index_dates); the criteria after index are common:
--   age_out_of_range             age at index outside [$min_age, $max_age] (completed years: sql/ages.sql)
--   died_before_index            death_date < index_date (a death on the index date leaves no time at risk)
--   outcome_before_time_at_risk  an outcome event before the time at risk starts, within the washout
--                                ($outcome_washout: any_time_prior, lookback_days = the $outcome_washout_days days
--                                before index, or none). With the default start (index + 1) an outcome on the
--                                index date is prior, never counted.
--   no_time_at_risk              followup_end < time_at_risk_start
-- Time at risk: [index + $tar_start_offset_days, followup_end = earliest of observation period end, death, study end
-- and index + $tar_max_days]. followup_days counts the days at risk up to the first outcome (inclusive) or, without
-- an outcome, up to followup_end.
-- person_number numbers the persons (one number per person_id): the era windows partition by it (exposure_eras.sql),
-- as numbers sort several times faster than names. Without a partition, Spark numbers them in one task (a limit at
-- cluster scale: docs/scaling.md, "What runs on Spark today").
WITH deaths AS (
    SELECT person_id, min(death_date) AS death_date
    FROM staging.death
    GROUP BY person_id
),
persons_with_index AS (
    SELECT p.person_id,
           p.sex,
           i.index_date,
           i.observation_start,
           i.observation_end,
           i.treatment,
           i.exclusion_reason AS index_exclusion_reason,
           d.death_date,
           age_in_years(p.birth_date, p.year_of_birth, i.index_date) AS age_at_index,
           i.index_date + $tar_start_offset_days::INTEGER AS time_at_risk_start,
           least(i.observation_end, d.death_date, $study_end::DATE,
                 i.index_date + $tar_max_days::INTEGER) AS followup_end
    FROM staging.person AS p
    JOIN index_dates AS i ON i.person_id = p.person_id
    LEFT JOIN deaths AS d ON d.person_id = p.person_id
),
outcome_events AS (
    SELECT person_id, event_date
    FROM phenotype_event_dates
    WHERE phenotype_id = $outcome_phenotype
),
-- Both facts about a person's outcome events in one pass over them (Spark plans each read of a CTE anew: a third
-- read of persons_with_index would cost its joins and jobs again).
outcomes AS (
    SELECT p.person_id,
           bool_or($outcome_washout <> 'none'
                   AND o.event_date < p.time_at_risk_start
                   AND ($outcome_washout = 'any_time_prior'
                        OR o.event_date >= p.index_date - $outcome_washout_days::INTEGER))
               AS outcome_before_time_at_risk,
           min(o.event_date) FILTER (WHERE o.event_date BETWEEN p.time_at_risk_start AND p.followup_end)
               AS outcome_date
    FROM persons_with_index AS p
    JOIN outcome_events AS o ON o.person_id = p.person_id
    GROUP BY p.person_id
)
SELECT p.person_id,
       dense_rank() OVER (ORDER BY p.person_id) AS person_number,
       p.index_date,
       p.age_at_index,
       p.sex,
       p.observation_start,
       p.observation_end,
       p.death_date,
       p.time_at_risk_start,
       p.followup_end,
       -- Days at risk until the first outcome, or to followup_end without one (time to event or censoring).
       (date_diff('day', p.time_at_risk_start, least(o.outcome_date, p.followup_end)) + 1)::INTEGER AS followup_days,
       o.outcome_date IS NOT NULL AS outcome_flag,
       o.outcome_date,
       p.treatment,
       CASE
           WHEN p.index_exclusion_reason IS NOT NULL THEN p.index_exclusion_reason
           WHEN p.age_at_index < $min_age::INTEGER OR p.age_at_index > $max_age::INTEGER THEN 'age_out_of_range'
           WHEN p.death_date < p.index_date THEN 'died_before_index'
           WHEN o.outcome_before_time_at_risk THEN 'outcome_before_time_at_risk'
           WHEN p.followup_end < p.time_at_risk_start THEN 'no_time_at_risk'
       END AS exclusion_reason
FROM persons_with_index AS p
LEFT JOIN outcomes AS o ON o.person_id = p.person_id
