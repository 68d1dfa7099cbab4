-- Each person's first date of each phenotype of $phenotypes with the days observed without a break before and after
-- it (sequence symmetry: which first dates are initiations). Periods containing the date all overlap there, so their
-- union is one stretch of observation: from the earliest start to the latest end (overlapping periods are
-- duplicated enrolment records). All phenotypes in one query: on Spark each query costs its jobs whatever its size.
SELECT s.phenotype_id, s.person_id, s.first_date,
       date_diff('day', min(op.observation_period_start_date), s.first_date) AS days_observed_before,
       date_diff('day', s.first_date, max(op.observation_period_end_date)) AS days_observed_after
FROM phenotype.person_summary AS s
JOIN staging.observation_period AS op
  ON op.person_id = s.person_id
 AND s.first_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date
WHERE list_contains($phenotypes, s.phenotype_id)
GROUP BY s.phenotype_id, s.person_id, s.first_date
ORDER BY s.phenotype_id, s.person_id
