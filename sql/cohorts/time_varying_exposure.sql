-- Time-varying exposure over follow-up (studies with exposure_time current; pipelines/cohorts/study.py ExposureTime):
-- for each person of the study population and each exposure analysed this way, the person's time at risk split into
-- counting-process rows (start_day, stop_day] that are exposed or not, the outcome on the last row.
-- Days count from the first day at risk: day 0 is time_at_risk_start, and a row (s, t] holds days s .. t-1, so a
-- person's rows cover (0, followup_days] exactly as followup_days counts them (least(outcome_date, followup_end) -
-- time_at_risk_start + 1), and the outcome, on the last day at risk, ends the last row.
-- A person counts as exposed during each era of the exposure (exposure_eras.sql over time_varying_spans.sql: a drug
-- era plus its grace period, or a finding's joined risk windows; time_varying_person_variables.sql says how each
-- exposure's eras are built). Eras that start before index and reach into follow-up count from day 0.
-- Portable SQL (DuckDB and Spark): day numbers from date_diff('day', ...) only, no date arithmetic.
WITH eras AS (
    -- The eras with their person and exposure, and what the rows need of the follow-up (matched by number).
    SELECT pv.person_id, pv.variable, pv.person_number, pv.variable_number, pv.followup_days, pv.outcome_on_last_day,
           greatest(e.era_first_day, 0) AS exposed_from,
           least(e.era_end_day, pv.followup_days - 1) AS exposed_until
    FROM exposure_eras AS e
    JOIN time_varying_person_variables AS pv
      ON pv.person_number = e.person_number AND pv.variable_number = e.variable_number
),
eras_in_follow_up AS (
    -- A person's eras of one exposure are disjoint, also with their grace (extend_days <= join_within_days in
    -- time_varying_person_variables.sql), so no two start on the same day and the one with no next is the last.
    SELECT person_id, variable, person_number, variable_number, followup_days, outcome_on_last_day,
           exposed_from, exposed_until,
           lag(exposed_until) OVER (PARTITION BY person_number, variable_number ORDER BY exposed_from)
               AS previous_until,
           lead(exposed_from) OVER (PARTITION BY person_number, variable_number ORDER BY exposed_from) IS NULL
               AS is_last
    FROM eras
    WHERE exposed_until >= 0
),
periods AS (
    -- Exposed: each era. Unexposed: before the first era, between eras, after the last (or all follow-up).
    SELECT person_id, variable, followup_days, outcome_on_last_day,
           exposed_from AS start_day, exposed_until + 1 AS stop_day, true AS exposed
    FROM eras_in_follow_up
    UNION ALL
    SELECT person_id, variable, followup_days, outcome_on_last_day,
           coalesce(previous_until + 1, 0) AS start_day, exposed_from AS stop_day, false AS exposed
    FROM eras_in_follow_up
    WHERE exposed_from > coalesce(previous_until + 1, 0)
    UNION ALL
    SELECT pv.person_id, pv.variable, pv.followup_days, pv.outcome_on_last_day,
           coalesce(e.exposed_until + 1, 0) AS start_day, pv.followup_days AS stop_day, false AS exposed
    FROM time_varying_person_variables AS pv
    LEFT JOIN eras_in_follow_up AS e
      ON e.person_number = pv.person_number AND e.variable_number = pv.variable_number AND e.is_last
    WHERE pv.followup_days > coalesce(e.exposed_until + 1, 0)
)
SELECT $study_id AS study_id,
       person_id,
       variable,
       CAST(start_day AS INTEGER) AS start_day,
       CAST(stop_day AS INTEGER) AS stop_day,
       exposed,
       outcome_on_last_day AND stop_day = followup_days AS outcome
FROM periods
