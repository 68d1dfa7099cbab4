-- Index rule first_visit: one row per person in the extract. The index date is the person's first visit (of the
-- study's visit types; all types when $visit_types is empty) in the study period that lies in a merged observation
-- period with at least $prior_observation_days days of that same period before it (index - period start >= N).
-- exclusion_reason names the first index criterion a person fails (NULL = has an index date). A visit that ends before
-- it starts is no index visit (sql/record_spans.sql).
WITH observed_in_study_period AS (
    SELECT DISTINCT person_id
    FROM observation_periods_merged
    WHERE period_start <= $study_end AND period_end >= $study_start
),
visits_in_study_period_during_observation AS (
    SELECT v.person_id, v.visit_start_date AS visit_date, op.period_start, op.period_end
    FROM staging.visit_occurrence AS v
    JOIN observation_periods_merged AS op
      ON op.person_id = v.person_id AND v.visit_start_date BETWEEN op.period_start AND op.period_end
    WHERE v.visit_start_date BETWEEN $study_start AND $study_end
      AND (array_length($visit_types) = 0 OR list_contains($visit_types, v.visit_type))
      AND end_not_before_start(v.visit_start_date, v.visit_end_date)
),
persons_with_a_visit AS (
    SELECT DISTINCT person_id FROM visits_in_study_period_during_observation
),
first_visit_with_prior_observation AS (
    SELECT person_id,
           min(visit_date) AS index_date,
           arg_min(period_start, visit_date) AS observation_start,
           arg_min(period_end, visit_date) AS observation_end
    FROM visits_in_study_period_during_observation
    WHERE date_diff('day', period_start, visit_date) >= $prior_observation_days
    GROUP BY person_id
)
SELECT p.person_id,
       f.index_date,
       f.observation_start,
       f.observation_end,
       NULL::INTEGER AS treatment,
       CASE
           WHEN o.person_id IS NULL THEN 'no_observation_in_study_period'
           WHEN v.person_id IS NULL THEN 'no_visit_in_study_period'
           WHEN f.person_id IS NULL THEN 'insufficient_prior_observation'
       END AS exclusion_reason
FROM staging.person AS p
LEFT JOIN observed_in_study_period AS o ON o.person_id = p.person_id
LEFT JOIN persons_with_a_visit AS v ON v.person_id = p.person_id
LEFT JOIN first_visit_with_prior_observation AS f ON f.person_id = p.person_id
