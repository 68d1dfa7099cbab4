-- The outcome of a sensitivity analysis that replaces the study's outcome by $variant_outcome: one row per person of
-- the study population ($study_id), in person_id order (the order the statistics stage reads the population in).
--   outcome_date                 the first qualifying event of the variant in the time at risk
--                                [time_at_risk_start, followup_end], NULL without one;
--   outcome_before_time_at_risk  an event of the variant before the time at risk starts, within the study's outcome
--                                washout ($outcome_washout: any_time_prior, lookback_days = $outcome_washout_days
--                                days before index, or none): the person leaves the sensitivity analysis, as the
--                                main analysis's eligibility removes a prior outcome.
-- An event qualifies from the person's phenotype date on (phenotype.person_summary.first_date; a "two records" rule
-- dates it at the confirming record), as in phenotype_event_dates.sql.
WITH population AS (
    SELECT person_id, index_date, time_at_risk_start, followup_end
    FROM cohort.study_population
    WHERE study_id = $study_id
),
variant_events AS (
    SELECT e.person_id, e.event_date
    FROM phenotype.events AS e
    JOIN phenotype.person_summary AS s ON s.person_id = e.person_id AND s.phenotype_id = e.phenotype_id
    JOIN population AS p ON p.person_id = e.person_id
    WHERE e.phenotype_id = $variant_outcome
      AND e.event_date >= s.first_date
      AND (s.end_date IS NULL OR e.event_date < s.end_date)
)
SELECT p.person_id,
       min(v.event_date) FILTER (WHERE v.event_date BETWEEN p.time_at_risk_start AND p.followup_end) AS outcome_date,
       coalesce(bool_or(v.event_date < p.time_at_risk_start
                        AND ($outcome_washout = 'any_time_prior'
                             OR $outcome_washout = 'lookback_days'
                                AND date_diff('day', v.event_date, p.index_date) <= $outcome_washout_days::INTEGER)),
                false) AS outcome_before_time_at_risk
FROM population AS p
LEFT JOIN variant_events AS v ON v.person_id = p.person_id
GROUP BY p.person_id
ORDER BY p.person_id
