-- The study's rows of the OMOP-shaped cohort.cohort table, one set per definition in cohort.cohort_definition:
--   study_population  every member, from index to the end of follow-up;
--   exposure          members with the exposure at index (for new-user designs: the target or comparator
--                     initiators), from index to the end of follow-up;
--   outcome           members with an outcome in the time at risk, on the first outcome date.
WITH definitions AS (
    SELECT cohort_definition_id, kind, phenotype_id
    FROM cohort.cohort_definition
    WHERE study_id = $study_id
),
population AS (
    SELECT person_id, index_date, followup_end, outcome_date
    FROM cohort.study_population
    WHERE study_id = $study_id
),
exposed_at_index AS (
    SELECT person_id, variable
    FROM cohort.person_variables
    WHERE study_id = $study_id AND at_index
)
SELECT d.cohort_definition_id, p.person_id AS subject_id, p.index_date AS cohort_start_date,
       p.followup_end AS cohort_end_date
FROM definitions AS d
CROSS JOIN population AS p
WHERE d.kind = 'study_population'
UNION ALL
SELECT d.cohort_definition_id, p.person_id, p.index_date, p.followup_end
FROM definitions AS d
JOIN exposed_at_index AS x ON x.variable = d.phenotype_id
JOIN population AS p ON p.person_id = x.person_id
WHERE d.kind = 'exposure'
UNION ALL
SELECT d.cohort_definition_id, p.person_id, p.outcome_date, p.outcome_date
FROM definitions AS d
CROSS JOIN population AS p
WHERE d.kind = 'outcome' AND p.outcome_date IS NOT NULL
