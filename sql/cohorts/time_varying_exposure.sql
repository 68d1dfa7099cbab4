-- Time-varying exposure over follow-up (studies with exposure_time current; pipelines/cohorts/study.py ExposureTime):
-- for each person of the study population and each exposure analysed this way, the person's time at risk split into
-- counting-process rows (start_day, stop_day] that are exposed or not, the outcome on the last row.
-- Days count from the first day at risk: day 0 is time_at_risk_start, and a row (s, t] holds days s .. t-1, so a
-- person's rows cover (0, followup_days] exactly as followup_days counts them (least(outcome_date, followup_end) -
-- time_at_risk_start + 1), and the outcome, on the last day at risk, ends the last row.
-- A person counts as exposed during each era of the exposure (exposure_eras.sql over time_varying_spans.sql: a drug
-- era plus its grace period, or a finding's joined risk windows; time_varying_person_variables.sql says how each
-- exposure's eras are built). Eras that start before index and reach into follow-up count from day 0.
-- A person's eras of one exposure are disjoint, also with their grace (extend_days <= join_within_days in
-- time_varying_person_variables.sql): each ends before the next starts, so those that end before day 0 come first,
-- and the era before one in follow-up (previous_era_end_day) is in follow-up too unless it ended before day 0.
-- Nothing here sorts: exposure_eras.sql gives each era the end of the one before and whether it is the last, and the
-- eras (one row per era) meet the text columns through the persons (one row per person) and the exposures, not
-- through time_varying_person_variables (one row per person and exposure). Sorting the eras with those columns in a
-- CTE read three times cost 0.5 GB of DuckDB's temp directory at 1,000,000 patients and a 500MB limit (issue #21);
-- this statement adds none there.
-- Portable SQL (DuckDB and Spark): day numbers from date_diff('day', ...) only, no date arithmetic.
WITH persons AS (
    -- time_varying_person_variables holds every person once per exposure (persons times exposures, numbered from 1).
    SELECT person_number, person_id, followup_days, outcome_on_last_day
    FROM time_varying_person_variables
    WHERE variable_number = 1
),
exposures AS (
    SELECT DISTINCT variable_number, variable
    FROM time_varying_person_variables
),
eras_in_follow_up AS (
    SELECT p.person_id, x.variable, p.followup_days, p.outcome_on_last_day,
           greatest(e.era_first_day, 0) AS exposed_from,
           least(e.era_end_day, p.followup_days - 1) AS exposed_until,
           CASE WHEN e.previous_era_end_day >= 0 THEN e.previous_era_end_day END AS previous_until
    FROM exposure_eras AS e
    JOIN persons AS p ON p.person_number = e.person_number
    JOIN exposures AS x ON x.variable_number = e.variable_number
    WHERE least(e.era_end_day, p.followup_days - 1) >= 0
),
periods AS (
    -- Each era in follow-up is an exposed row, preceded by an unexposed one unless it starts where the era before
    -- ends (or on day 0): one pass over the eras, each row read once for both.
    SELECT person_id, variable, followup_days, outcome_on_last_day,
           CASE WHEN row_kind.exposed THEN exposed_from ELSE coalesce(previous_until + 1, 0) END AS start_day,
           CASE WHEN row_kind.exposed THEN exposed_until + 1 ELSE exposed_from END AS stop_day,
           row_kind.exposed
    FROM eras_in_follow_up
    CROSS JOIN (SELECT true AS exposed UNION ALL SELECT false AS exposed) AS row_kind
    WHERE row_kind.exposed OR exposed_from > coalesce(previous_until + 1, 0)
    UNION ALL
    -- Unexposed after the last era in follow-up (none when it runs to the end), or all follow-up.
    SELECT pv.person_id, pv.variable, pv.followup_days, pv.outcome_on_last_day,
           coalesce(e.era_end_day + 1, 0) AS start_day, pv.followup_days AS stop_day, false AS exposed
    FROM time_varying_person_variables AS pv
    LEFT JOIN exposure_eras AS e
      ON e.person_number = pv.person_number AND e.variable_number = pv.variable_number AND e.is_last_era
         AND e.era_end_day >= 0
    WHERE pv.followup_days > coalesce(e.era_end_day + 1, 0)
)
SELECT $study_id AS study_id,
       person_id,
       variable,
       CAST(start_day AS INTEGER) AS start_day,
       CAST(stop_day AS INTEGER) AS stop_day,
       exposed,
       outcome_on_last_day AND stop_day = followup_days AS outcome
FROM periods
