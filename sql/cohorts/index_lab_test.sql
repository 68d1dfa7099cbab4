-- Index rule lab_test (a laboratory finding against tested persons with a normal result), its candidates
-- (index_first_candidate.sql picks the index date: the first test with enough prior observation): every test in the
-- study period that lies in a merged observation period, with that period. A test is a record of one of the $finding
-- phenotype's measurement codes with a plausible value (a listed unit, converted into the phenotype's plausible
-- range: the same tables as sql/phenotypes/measurement_records.sql and the same rule, sql/measurement_values.sql). Whether the index test was low
-- is the study's exposure ($finding with a 0-day window, cohort.person_variables), so the comparison is low against
-- normal among tested persons, with time zero at the test.
WITH finding_codes AS (
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
           recorded_unit(m.unit, u.unit) AS recorded_unit
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
    WHERE within_plausible_range(canonical_value(t.value_as_number, c.factor), r.plausible_min,
                                 r.plausible_min_inclusive, r.plausible_max)
)
SELECT t.person_id, t.test_date AS candidate_date, op.period_start, op.period_end
FROM plausible_tests AS t
JOIN observation_periods_merged AS op
  ON op.person_id = t.person_id AND t.test_date BETWEEN op.period_start AND op.period_end
