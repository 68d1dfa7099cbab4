-- The index date of the first_visit and lab_test rules: one row per person in the extract. index_candidates (made by
-- index_first_visit.sql or index_lab_test.sql) holds each person's candidate dates (a visit, a test) in the study
-- period with the merged observation period holding them; the index date is the person's first candidate with at
-- least $prior_observation_days days of that same period before it (index - period start >= N).
-- exclusion_reason names the first index criterion a person fails (NULL = has an index date): no observation in the
-- study period; no candidate ($no_candidate_reason: the untested are not compared, the never-seen not followed);
-- no candidate with enough prior observation.
WITH observed_in_study_period AS (
    SELECT DISTINCT person_id
    FROM observation_periods_merged
    WHERE period_start <= $study_end AND period_end >= $study_start
),
persons_with_a_candidate AS (
    SELECT DISTINCT person_id FROM index_candidates
),
first_candidate_with_prior_observation AS (
    SELECT person_id,
           min(candidate_date) AS index_date,
           arg_min(period_start, candidate_date) AS observation_start,
           arg_min(period_end, candidate_date) AS observation_end
    FROM index_candidates
    WHERE date_diff('day', period_start, candidate_date) >= $prior_observation_days
    GROUP BY person_id
)
SELECT p.person_id,
       f.index_date,
       f.observation_start,
       f.observation_end,
       NULL::INTEGER AS treatment,
       CASE
           WHEN o.person_id IS NULL THEN 'no_observation_in_study_period'
           WHEN c.person_id IS NULL THEN $no_candidate_reason
           WHEN f.person_id IS NULL THEN 'insufficient_prior_observation'
       END AS exclusion_reason
FROM staging.person AS p
LEFT JOIN observed_in_study_period AS o ON o.person_id = p.person_id
LEFT JOIN persons_with_a_candidate AS c ON c.person_id = p.person_id
LEFT JOIN first_candidate_with_prior_observation AS f ON f.person_id = p.person_id
