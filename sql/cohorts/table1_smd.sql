-- Standardized mean differences between the two Table 1 groups ($group_1 compared with $group_0), from the
-- aggregates in table1_aggregates, as absolute values (as the tableone package prints them):
--   binary      |p1 - p0| / sqrt((p1 (1 - p1) + p0 (1 - p0)) / 2), p = persons with the level / persons with a value
--   continuous  |mean1 - mean0| / sqrt((sd1^2 + sd0^2) / 2)
-- A zero denominator gives 0 when the groups are equal and NULL otherwise. Categorical variables with more than two
-- levels (sex) are done in Python (Yang and Dalton's multivariate form) from the same aggregates.
WITH missing_counts AS (
    SELECT variable, group_name, count AS persons_missing
    FROM table1_aggregates
    WHERE statistic = 'missing'
),
binary_proportions AS (
    SELECT a.variable,
           max(a.count / (a.denominator - m.persons_missing)) FILTER (WHERE a.group_name = $group_1) AS p1,
           max(a.count / (a.denominator - m.persons_missing)) FILTER (WHERE a.group_name = $group_0) AS p0
    FROM table1_aggregates AS a
    JOIN missing_counts AS m USING (variable, group_name)
    WHERE a.variable_type = 'binary' AND a.statistic = 'n_pct' AND a.denominator > m.persons_missing
    GROUP BY a.variable
),
continuous_moments AS (
    SELECT variable,
           max(mean) FILTER (WHERE group_name = $group_1) AS mean1,
           max(sd) FILTER (WHERE group_name = $group_1) AS sd1,
           max(mean) FILTER (WHERE group_name = $group_0) AS mean0,
           max(sd) FILTER (WHERE group_name = $group_0) AS sd0
    FROM table1_aggregates
    WHERE variable_type = 'continuous' AND statistic = 'mean_sd'
    GROUP BY variable
),
differences AS (
    SELECT variable, abs(p1 - p0) AS difference, sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2) AS spread
    FROM binary_proportions
    UNION ALL
    SELECT variable, abs(mean1 - mean0), sqrt((sd1 * sd1 + sd0 * sd0) / 2)
    FROM continuous_moments
)
SELECT variable,
       CASE WHEN spread > 0 THEN difference / spread
            WHEN difference = 0 THEN 0.0 END AS smd
FROM differences
