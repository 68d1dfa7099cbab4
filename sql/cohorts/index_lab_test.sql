-- Index rule lab_test (a laboratory finding against tested persons with a normal result): one row per person in the
-- extract. A test is a record of one of the $finding phenotype's measurement codes with a plausible value (a listed
-- unit, converted into the phenotype's plausible range: the same tables and the same rule as
-- sql/phenotypes/measurement_records.sql). The index date is the person's first test in the study period that lies
-- in a merged observation period with >= $prior_observation_days days of it before the test. Whether that test was
-- low is the study's exposure ($finding with a 0-day window, cohort.person_variables), so the comparison is low
-- against normal among tested persons, with time zero at the test.
-- exclusion_reason: no observation in the study period; no test in the study period during observation (the
-- untested are not compared); no test with enough prior observation.
WITH observed_in_study_period AS (
    SELECT DISTINCT person_id
    FROM observation_periods_merged
    WHERE period_start <= $study_end AND period_end >= $study_start
),
finding_codes AS (
    SELECT vocabulary, code, match_type, excluded
    FROM phenotype.code_list
    WHERE phenotype_id = $finding
),
test_records AS (
    SELECT m.person_id,
           m.measurement_date AS test_date,
           m.measurement_vocabulary AS vocabulary,
           m.measurement_code AS code,
           m.value_as_number,
           coalesce(nullif(lower(replace(trim(m.unit), ' ', '')), ''), u.unit) AS recorded_unit
    FROM staging.measurement AS m
    LEFT JOIN phenotype.measurement_code_units AS u
      ON u.phenotype_id = $finding AND u.vocabulary = m.measurement_vocabulary AND u.code = m.measurement_code
    WHERE m.value_as_number IS NOT NULL
      AND m.measurement_date BETWEEN $study_start AND $study_end
      AND EXISTS (SELECT 1 FROM finding_codes AS c
                  WHERE NOT c.excluded AND c.vocabulary = m.measurement_vocabulary
                    AND (c.code = m.measurement_code
                         OR (c.match_type = 'prefix' AND starts_with(m.measurement_code, c.code))))
      AND NOT EXISTS (SELECT 1 FROM finding_codes AS c
                      WHERE c.excluded AND c.vocabulary = m.measurement_vocabulary
                        AND (c.code = m.measurement_code
                             OR (c.match_type = 'prefix' AND starts_with(m.measurement_code, c.code))))
),
plausible_tests AS (
    SELECT t.person_id, t.test_date
    FROM test_records AS t
    JOIN phenotype.unit_conversions AS c ON c.phenotype_id = $finding AND c.unit = t.recorded_unit
    JOIN phenotype.measurement_rules AS r ON r.phenotype_id = $finding
    WHERE (round(t.value_as_number * c.factor, 6) > r.plausible_min
           OR (r.plausible_min_inclusive AND round(t.value_as_number * c.factor, 6) = r.plausible_min))
      AND round(t.value_as_number * c.factor, 6) <= r.plausible_max
),
tests_during_observation AS (
    SELECT t.person_id, t.test_date, op.period_start, op.period_end
    FROM plausible_tests AS t
    JOIN observation_periods_merged AS op
      ON op.person_id = t.person_id AND t.test_date BETWEEN op.period_start AND op.period_end
),
persons_tested AS (
    SELECT DISTINCT person_id FROM tests_during_observation
),
first_test_with_prior_observation AS (
    SELECT person_id,
           min(test_date) AS index_date,
           arg_min(period_start, test_date) AS observation_start,
           arg_min(period_end, test_date) AS observation_end
    FROM tests_during_observation
    WHERE date_diff('day', period_start, test_date) >= $prior_observation_days
    GROUP BY person_id
)
SELECT p.person_id,
       f.index_date,
       f.observation_start,
       f.observation_end,
       NULL::INTEGER AS treatment,
       CASE
           WHEN o.person_id IS NULL THEN 'no_observation_in_study_period'
           WHEN t.person_id IS NULL THEN 'no_test_in_study_period'
           WHEN f.person_id IS NULL THEN 'insufficient_prior_observation'
       END AS exclusion_reason
FROM staging.person AS p
LEFT JOIN observed_in_study_period AS o ON o.person_id = p.person_id
LEFT JOIN persons_tested AS t ON t.person_id = p.person_id
LEFT JOIN first_test_with_prior_observation AS f ON f.person_id = p.person_id
