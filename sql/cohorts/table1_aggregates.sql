-- Table 1 aggregates for one study, overall and per group, before small-cell suppression and formatting:
--   n           persons in the group
--   mean_sd     mean and sample SD            (age_at_index, followup_days)
--   median_iqr  median, 25th and 75th centile (linear interpolation, as numpy/pandas)
--   n_pct       persons per level             (sex; 'true' of every recorded phenotype)
--   missing     persons with no value
-- Groups ($table1_split): 'treatment' -> target (treatment 1) / comparator (0); 'variable' -> exposed / unexposed
-- at index to $table1_by; 'none' -> overall only. denominator = persons in the group (missing included).
-- The phenotype that splits the table is not a row of it; target and comparator are not rows either. Nor is the
-- outcome: Table 1 describes the persons at index (STROBE item 14; CohortMethod's covariate table), and the
-- cohort's outcome count is published by the statistics stage once the cross-table small-cell rule allows it.
WITH population AS (
    SELECT s.person_id,
           s.age_at_index,
           s.sex,
           s.followup_days,
           CASE $table1_split
               WHEN 'treatment' THEN CASE s.treatment WHEN 1 THEN 'target' WHEN 0 THEN 'comparator' END
               WHEN 'variable' THEN CASE WHEN coalesce(split_by.at_index, false) THEN 'exposed' ELSE 'unexposed' END
           END AS group_name
    FROM cohort.study_population AS s
    LEFT JOIN cohort.person_variables AS split_by
      ON split_by.study_id = s.study_id AND split_by.person_id = s.person_id AND split_by.variable = $table1_by
    WHERE s.study_id = $study_id
),
population_by_group AS (
    SELECT 'overall' AS group_name, * EXCLUDE (group_name) FROM population
    UNION ALL
    SELECT group_name, * EXCLUDE (group_name) FROM population WHERE group_name IS NOT NULL
),
group_sizes AS (
    SELECT g.group_name, count(p.person_id) AS persons
    FROM (SELECT unnest($group_names) AS group_name) AS g
    LEFT JOIN population_by_group AS p ON p.group_name = g.group_name
    GROUP BY g.group_name
),
continuous_values AS (
    SELECT group_name, 'age_at_index' AS variable, 1 AS variable_order, age_at_index::HUGEINT AS value
    FROM population_by_group
    UNION ALL
    SELECT group_name, 'followup_days', 10000, followup_days::HUGEINT
    FROM population_by_group
),
continuous_summaries AS (
    SELECT g.group_name,
           v.variable,
           v.variable_order,
           g.persons,
           count(c.value) AS non_missing,
           -- Mean and SD from exact integer sums (the values are whole years and days): avg and stddev_samp add
           -- floating-point numbers in whatever order DuckDB's threads finish, and differ in the 15th digit
           -- between runs. n sum(x^2) - sum(x)^2 = n (n - 1) var, exact in HUGEINT.
           sum(c.value)::DOUBLE / count(c.value) AS mean,
           CASE WHEN count(c.value) > 1 THEN
               sqrt(((count(c.value) * sum(c.value * c.value) - sum(c.value) * sum(c.value))::DOUBLE)
                    / (count(c.value) * (count(c.value) - 1))) END AS sd,
           quantile_cont(c.value::DOUBLE, 0.5) AS median,
           quantile_cont(c.value::DOUBLE, 0.25) AS q1,
           quantile_cont(c.value::DOUBLE, 0.75) AS q3
    FROM group_sizes AS g
    CROSS JOIN (VALUES ('age_at_index', 1), ('followup_days', 10000)) AS v(variable, variable_order)
    LEFT JOIN continuous_values AS c ON c.group_name = g.group_name AND c.variable = v.variable
    GROUP BY g.group_name, v.variable, v.variable_order, g.persons
),
sex_levels AS (
    SELECT DISTINCT sex AS level FROM population WHERE sex IS NOT NULL
),
sex_counts AS (
    SELECT g.group_name, l.level, g.persons, count(p.person_id) AS persons_with_level
    FROM group_sizes AS g
    CROSS JOIN sex_levels AS l
    LEFT JOIN population_by_group AS p ON p.group_name = g.group_name AND p.sex = l.level
    GROUP BY g.group_name, l.level, g.persons
),
sex_missing AS (
    SELECT g.group_name, g.persons, count(p.person_id) AS persons_missing
    FROM group_sizes AS g
    LEFT JOIN population_by_group AS p ON p.group_name = g.group_name AND p.sex IS NULL
    GROUP BY g.group_name, g.persons
),
binary_variables AS (
    SELECT variable, 10 + variable_order AS variable_order
    FROM cohort.study_variables
    WHERE study_id = $study_id
      AND role IN ('exposure', 'covariate')
      AND variable IS DISTINCT FROM $table1_by
),
binary_true_counts AS (
    SELECT p.group_name, pv.variable, count(*) AS persons_true
    FROM population_by_group AS p
    JOIN cohort.person_variables AS pv
      ON pv.study_id = $study_id AND pv.person_id = p.person_id AND pv.at_index
    GROUP BY p.group_name, pv.variable
)
SELECT 'n' AS variable, 'count' AS variable_type, 0 AS variable_order, NULL AS level, group_name, 'n' AS statistic,
       persons AS count, persons AS denominator,
       NULL::DOUBLE AS mean, NULL::DOUBLE AS sd, NULL::DOUBLE AS median, NULL::DOUBLE AS q1, NULL::DOUBLE AS q3
FROM group_sizes
UNION ALL
SELECT variable, 'continuous', variable_order, NULL, group_name, 'mean_sd', non_missing, persons,
       mean, sd, NULL, NULL, NULL
FROM continuous_summaries
UNION ALL
SELECT variable, 'continuous', variable_order, NULL, group_name, 'median_iqr', non_missing, persons,
       NULL, NULL, median, q1, q3
FROM continuous_summaries
UNION ALL
SELECT variable, 'continuous', variable_order, NULL, group_name, 'missing', persons - non_missing, persons,
       NULL, NULL, NULL, NULL, NULL
FROM continuous_summaries
UNION ALL
SELECT 'sex', 'categorical', 2, level, group_name, 'n_pct', persons_with_level, persons,
       NULL, NULL, NULL, NULL, NULL
FROM sex_counts
UNION ALL
SELECT 'sex', 'categorical', 2, NULL, group_name, 'missing', persons_missing, persons,
       NULL, NULL, NULL, NULL, NULL
FROM sex_missing
UNION ALL
SELECT v.variable, 'binary', v.variable_order, 'true', g.group_name, 'n_pct', coalesce(b.persons_true, 0), g.persons,
       NULL, NULL, NULL, NULL, NULL
FROM binary_variables AS v
CROSS JOIN group_sizes AS g
LEFT JOIN binary_true_counts AS b ON b.variable = v.variable AND b.group_name = g.group_name
UNION ALL
-- Recorded phenotypes are never missing: a person without the phenotype's events does not have it.
SELECT v.variable, 'binary', v.variable_order, NULL, g.group_name, 'missing', 0, g.persons,
       NULL, NULL, NULL, NULL, NULL
FROM binary_variables AS v
CROSS JOIN group_sizes AS g
