-- Time-varying exposure (time_varying_exposure.sql): each person of the study population with follow-up, times each
-- exposure analysed as current, with how its eras are built (exposure_eras.sql):
--   current_use  ($current_use_variables, drugs): fills join while the next starts no more than
--                $current_use_grace_days days after the supply so far ends, and the era runs on
--                $current_use_grace_days days after its last day of supply (Ray 2003);
--   risk_window  ($risk_window_variables, laboratory findings): each abnormal result covers $risk_window_days days
--                (its own day the first), overlapping or adjacent windows joined, no grace after.
SELECT p.person_id,
       p.time_at_risk_start,
       p.followup_days,
       p.outcome_flag AND p.outcome_date IS NOT NULL AND p.outcome_date <= p.followup_end AS outcome_on_last_day,
       v.variable,
       CASE WHEN array_contains($current_use_variables, v.variable) THEN $current_use_grace_days ELSE 1 END
           AS join_within_days,
       CASE WHEN array_contains($current_use_variables, v.variable) THEN $current_use_grace_days ELSE 0 END
           AS extend_days,
       CASE WHEN array_contains($current_use_variables, v.variable) THEN 0 ELSE $risk_window_days - 1 END
           AS window_extra_days
FROM cohort.study_population AS p
JOIN cohort.study_variables AS v ON v.study_id = p.study_id
WHERE p.study_id = $study_id
  AND p.followup_days > 0
  AND (array_contains($current_use_variables, v.variable) OR array_contains($risk_window_variables, v.variable))
