-- Garrison 2012's design (pipelines/statistics/sequence_symmetry.py garrison_sequence_symmetry): each person's first
-- date of each phenotype in $phenotypes (the index drugs and the marker, quinine_start: the first quinine fill given
-- for no infection, by the phenotype's windowed exclusion), with the days observed without a break before and after
-- it and the age on that date.
-- Age in completed years: sql/ages.sql (run first), the rule of the cohorts' age at index.
WITH first_dates AS (
    SELECT person_id, phenotype_id, first_date
    FROM phenotype.person_summary
    WHERE array_contains($phenotypes, phenotype_id)
),
with_observation AS (
    -- Overlapping periods containing the date are one stretch of observation (duplicated enrolment records).
    SELECT f.person_id, f.phenotype_id, f.first_date,
           date_diff('day', min(op.observation_period_start_date), f.first_date) AS days_observed_before,
           date_diff('day', f.first_date, max(op.observation_period_end_date)) AS days_observed_after
    FROM first_dates AS f
    JOIN staging.observation_period AS op
      ON op.person_id = f.person_id
     AND f.first_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date
    GROUP BY f.person_id, f.phenotype_id, f.first_date
)
SELECT w.person_id, w.phenotype_id, w.first_date, w.days_observed_before, w.days_observed_after,
       age_in_years(p.birth_date, p.year_of_birth, w.first_date) AS age
FROM with_observation AS w
JOIN staging.person AS p ON p.person_id = w.person_id
ORDER BY w.person_id, w.phenotype_id
