-- Time-varying exposure over follow-up (studies with exposure_time current; pipelines/cohorts/study.py ExposureTime):
-- for each person of the study population and each exposure analysed this way, the person's time at risk split into
-- counting-process rows (start_day, stop_day] that are exposed or not, the outcome on the last row.
-- Days count from the first day at risk: day 0 is time_at_risk_start, and a row (s, t] holds days s .. t-1, so a
-- person's rows cover (0, followup_days] exactly as followup_days counts them (least(outcome_date, followup_end) -
-- time_at_risk_start + 1), and the outcome, on the last day at risk, ends the last row.
-- When a person counts as exposed:
--   current_use  ($current_use_variables, drugs): during a drug era and the grace period after it. An era joins
--                the person's fills while the next fill starts no more than $current_use_grace_days days after the
--                supply so far ends (OHDSI drug_era's persistence window; the rule of on_treatment_end.sql, for every
--                era instead of the first), and the person counts as a current user from the era's first fill to
--                its last day of supply + $current_use_grace_days (Ray 2003: current use with a grace period);
--   risk_window  ($risk_window_variables, laboratory findings): the $risk_window_days from each abnormal result (the
--                result's day is the first), overlapping or adjacent windows joined: a transient state acts for a
--                short window, not from its first record for good.
-- Fills and results count as in person_variables.sql: from the person's phenotype date (confirming record) and before
-- the phenotype stops holding. Eras and windows that start before index and reach into follow-up count from day 0.
-- Portable SQL (DuckDB and Spark): day numbers from date_diff('day', ...) only, no date arithmetic.
WITH population AS (
    SELECT person_id,
           time_at_risk_start,
           followup_days,
           outcome_flag AND outcome_date IS NOT NULL AND outcome_date <= followup_end AS outcome_on_last_day
    FROM cohort.study_population
    WHERE study_id = $study_id AND followup_days > 0
),
variables AS (
    -- Per variable: how close the next fill (result) must start to join the era, the days exposure runs on after
    -- an era's last day of supply, and the days a result covers after its own.
    SELECT variable,
           CASE WHEN array_contains($current_use_variables, variable) THEN $current_use_grace_days ELSE 1 END
               AS join_within_days,
           CASE WHEN array_contains($current_use_variables, variable) THEN $current_use_grace_days ELSE 0 END
               AS extend_days,
           CASE WHEN array_contains($current_use_variables, variable) THEN 0 ELSE $risk_window_days - 1 END
               AS window_extra_days
    FROM cohort.study_variables
    WHERE study_id = $study_id
      AND (array_contains($current_use_variables, variable) OR array_contains($risk_window_variables, variable))
),
-- Each fill or result as the days it covers, counted from the person's first day at risk: a fill from its start to
-- its last day of supply (its own day when the supply is unknown), a result from its day for the risk window.
exposure_days AS (
    SELECT p.person_id,
           v.variable,
           v.join_within_days,
           v.extend_days,
           date_diff('day', p.time_at_risk_start, e.event_date) AS first_day,
           date_diff('day', p.time_at_risk_start, coalesce(e.event_end_date, e.event_date)) + v.window_extra_days
               AS last_day
    FROM population AS p
    JOIN phenotype.events AS e ON e.person_id = p.person_id
    JOIN variables AS v ON v.variable = e.phenotype_id
    JOIN phenotype.person_summary AS s ON s.person_id = e.person_id AND s.phenotype_id = e.phenotype_id
    WHERE e.event_date >= s.first_date
      AND (s.end_date IS NULL OR e.event_date < s.end_date)
      AND date_diff('day', p.time_at_risk_start, e.event_date) < p.followup_days
),
covered_before AS (
    SELECT person_id, variable, join_within_days, extend_days, first_day, last_day,
           max(last_day) OVER (PARTITION BY person_id, variable ORDER BY first_day, last_day
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS covered_until
    FROM exposure_days
),
numbered AS (
    -- A fill (result) that starts more than join_within_days after everything before it ends opens a new era.
    SELECT person_id, variable, extend_days, first_day, last_day,
           sum(CASE WHEN covered_until IS NULL OR first_day > covered_until + join_within_days THEN 1 ELSE 0 END)
               OVER (PARTITION BY person_id, variable ORDER BY first_day, last_day
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS era
    FROM covered_before
),
eras AS (
    SELECT n.person_id, n.variable,
           greatest(min(n.first_day), 0) AS exposed_from,
           least(max(n.last_day) + max(n.extend_days), max(p.followup_days) - 1) AS exposed_until
    FROM numbered AS n
    JOIN population AS p ON p.person_id = n.person_id
    GROUP BY n.person_id, n.variable, n.era
),
eras_in_follow_up AS (
    SELECT person_id, variable, exposed_from, exposed_until,
           lag(exposed_until) OVER (PARTITION BY person_id, variable ORDER BY exposed_from) AS previous_until,
           row_number() OVER (PARTITION BY person_id, variable ORDER BY exposed_from DESC) AS from_last
    FROM eras
    WHERE exposed_until >= 0
),
person_variables AS (
    SELECT p.person_id, p.followup_days, p.outcome_on_last_day, v.variable
    FROM population AS p
    CROSS JOIN variables AS v
),
periods AS (
    -- Exposed: each era. Unexposed: before the first era, between eras, after the last (or all follow-up).
    SELECT person_id, variable, exposed_from AS start_day, exposed_until + 1 AS stop_day, true AS exposed
    FROM eras_in_follow_up
    UNION ALL
    SELECT person_id, variable, coalesce(previous_until + 1, 0) AS start_day, exposed_from AS stop_day,
           false AS exposed
    FROM eras_in_follow_up
    WHERE exposed_from > coalesce(previous_until + 1, 0)
    UNION ALL
    SELECT pv.person_id, pv.variable, coalesce(e.exposed_until + 1, 0) AS start_day, pv.followup_days AS stop_day,
           false AS exposed
    FROM person_variables AS pv
    LEFT JOIN eras_in_follow_up AS e
      ON e.person_id = pv.person_id AND e.variable = pv.variable AND e.from_last = 1
    WHERE pv.followup_days > coalesce(e.exposed_until + 1, 0)
)
SELECT $study_id AS study_id,
       r.person_id,
       r.variable,
       CAST(r.start_day AS INTEGER) AS start_day,
       CAST(r.stop_day AS INTEGER) AS stop_day,
       r.exposed,
       pv.outcome_on_last_day AND r.stop_day = pv.followup_days AS outcome
FROM periods AS r
JOIN person_variables AS pv ON pv.person_id = r.person_id AND pv.variable = r.variable
