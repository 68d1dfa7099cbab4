-- Index rule first_visit, its candidates (index_first_candidate.sql picks the index date): the visits of the study's
-- visit types (all types when $visit_types is empty) in the study period that lie in a merged observation period,
-- with that period. A visit that ends before it starts is no index visit (sql/record_spans.sql).
-- index_first_candidate.sql asks only whether a person has a candidate and which is the first one with enough prior
-- observation, so each period keeps two candidates: its first visit and its first visit with $prior_observation_days
-- days of the period before it (one row when they are the same). Keeping every visit instead materialised tens of
-- millions of rows at 1,000,000 patients for the same index dates.
WITH visits_in_periods AS (
    SELECT v.person_id, v.visit_start_date, op.period_start, op.period_end
    FROM staging.visit_occurrence AS v
    JOIN observation_periods_merged AS op
      ON op.person_id = v.person_id AND v.visit_start_date BETWEEN op.period_start AND op.period_end
    WHERE v.visit_start_date BETWEEN $study_start AND $study_end
      AND (array_length($visit_types) = 0 OR list_contains($visit_types, v.visit_type))
      AND end_not_before_start(v.visit_start_date, v.visit_end_date)
),
first_visits_of_each_period AS (
    SELECT person_id,
           period_start,
           period_end,
           min(visit_start_date) AS first_visit,
           min(CASE WHEN date_diff('day', period_start, visit_start_date) >= $prior_observation_days
                    THEN visit_start_date END) AS first_visit_with_prior_observation
    FROM visits_in_periods
    GROUP BY person_id, period_start, period_end
)
SELECT person_id, first_visit AS candidate_date, period_start, period_end
FROM first_visits_of_each_period
UNION ALL
SELECT person_id, first_visit_with_prior_observation AS candidate_date, period_start, period_end
FROM first_visits_of_each_period
WHERE first_visit_with_prior_observation > first_visit
