-- Time-varying exposure (time_varying_exposure.sql): each person of the study population with follow-up, times each
-- exposure analysed as current, with how its eras are built (exposure_eras.sql):
--   current_use  ($current_use_variables, drugs): fills join while the next starts no more than
--                $current_use_grace_days days after the supply so far ends, and the era runs on
--                $current_use_grace_days days after its last day of supply (Ray 2003);
--   risk_window  ($risk_window_variables, laboratory findings): each abnormal result covers $risk_window_days days
--                (its own day the first), overlapping or adjacent windows joined, no grace after.
-- The spans, eras and rows refer to persons and exposures by number (exposure_eras.sql): eligibility's
-- person_number, and variable_number, one per exposure.
WITH persons AS (
    SELECT p.person_id,
           e.person_number,
           p.time_at_risk_start,
           p.followup_days,
           p.outcome_flag AND p.outcome_date IS NOT NULL AND p.outcome_date <= p.followup_end AS outcome_on_last_day
    FROM cohort.study_population AS p
    JOIN eligibility AS e ON e.person_id = p.person_id
    WHERE p.study_id = $study_id
      AND p.followup_days > 0
),
exposures AS (
    SELECT variable, dense_rank() OVER (ORDER BY variable) AS variable_number
    FROM cohort.study_variables
    WHERE study_id = $study_id
      AND (array_contains($current_use_variables, variable) OR array_contains($risk_window_variables, variable))
)
SELECT p.person_id,
       p.person_number,
       p.time_at_risk_start,
       p.followup_days,
       p.outcome_on_last_day,
       v.variable,
       v.variable_number,
       CASE WHEN array_contains($current_use_variables, v.variable) THEN $current_use_grace_days ELSE 1 END
           AS join_within_days,
       CASE WHEN array_contains($current_use_variables, v.variable) THEN $current_use_grace_days ELSE 0 END
           AS extend_days,
       CASE WHEN array_contains($current_use_variables, v.variable) THEN 0 ELSE $risk_window_days - 1 END
           AS window_extra_days
FROM persons AS p
CROSS JOIN exposures AS v
