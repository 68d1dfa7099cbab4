-- Each person of study $study's population with their first record of each negative-control outcome in $controls:
-- one row per person and control they have (phenotype_id and first_date NULL for a person with none), `person`
-- being the position in the study population read in person_id order (0 for the first). Long, not one column per
-- control: the columns would depend on the study, and a file holds one statement for every study.
WITH population AS (
    SELECT person_id, row_number() OVER (ORDER BY person_id) - 1 AS person
    FROM cohort.study_population
    WHERE study_id = $study
)
SELECT p.person, s.phenotype_id, min(s.first_date) AS first_date
FROM population AS p
LEFT JOIN phenotype.person_summary AS s
  ON s.person_id = p.person_id AND array_contains($controls, s.phenotype_id)
GROUP BY p.person, s.phenotype_id
ORDER BY p.person, s.phenotype_id
