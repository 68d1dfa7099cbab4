-- Index rule new_user (active comparator): one row per person in the extract. The index date is the person's first
-- fill of $target or $comparator in the study period; exclusion_reason names the first criterion a person fails:
--   no observation in the study period; no such fill; fills of both drugs on the index date; index not in a merged
--   observation period with >= $prior_observation_days days of it before index (a start on the first day of
--   observation has 0); use of either drug in the $washout_days days before index (a fill starting before index
--   whose supply reaches index - $washout_days or later).
-- treatment: 1 = started the target, 0 = started the comparator.
WITH observed_in_study_period AS (
    SELECT DISTINCT person_id
    FROM observation_periods_merged
    WHERE period_start <= $study_end AND period_end >= $study_start
),
study_drug_fills AS (
    SELECT person_id, phenotype_id, event_date AS fill_start, coalesce(supply_end, event_date) AS supply_end
    FROM phenotype_event_dates
    WHERE phenotype_id IN ($target, $comparator)
),
first_fill_in_study_period AS (
    SELECT person_id, min(fill_start) AS index_date
    FROM study_drug_fills
    WHERE fill_start BETWEEN $study_start AND $study_end
    GROUP BY person_id
),
drugs_started_on_index AS (
    SELECT f.person_id,
           f.index_date,
           bool_or(d.phenotype_id = $target) AS starts_target,
           bool_or(d.phenotype_id = $comparator) AS starts_comparator
    FROM first_fill_in_study_period AS f
    JOIN study_drug_fills AS d ON d.person_id = f.person_id AND d.fill_start = f.index_date
    GROUP BY f.person_id, f.index_date
),
index_observation_period AS (
    SELECT s.person_id, op.period_start, op.period_end
    FROM drugs_started_on_index AS s
    JOIN observation_periods_merged AS op
      ON op.person_id = s.person_id AND s.index_date BETWEEN op.period_start AND op.period_end
),
use_in_washout AS (
    SELECT DISTINCT s.person_id
    FROM drugs_started_on_index AS s
    JOIN study_drug_fills AS d
      ON d.person_id = s.person_id
     AND d.fill_start < s.index_date
     AND d.supply_end >= s.index_date - $washout_days
)
SELECT p.person_id,
       s.index_date,
       op.period_start AS observation_start,
       op.period_end AS observation_end,
       CASE WHEN s.starts_target AND NOT s.starts_comparator THEN 1
            WHEN s.starts_comparator AND NOT s.starts_target THEN 0 END AS treatment,
       CASE
           WHEN o.person_id IS NULL THEN 'no_observation_in_study_period'
           WHEN s.person_id IS NULL THEN 'no_new_use_in_study_period'
           WHEN s.starts_target AND s.starts_comparator THEN 'started_both_on_index'
           WHEN op.person_id IS NULL OR date_diff('day', op.period_start, s.index_date) < $prior_observation_days
               THEN 'insufficient_prior_observation'
           WHEN w.person_id IS NOT NULL THEN 'use_in_washout'
       END AS exclusion_reason
FROM staging.person AS p
LEFT JOIN observed_in_study_period AS o ON o.person_id = p.person_id
LEFT JOIN drugs_started_on_index AS s ON s.person_id = p.person_id
LEFT JOIN index_observation_period AS op ON op.person_id = p.person_id
LEFT JOIN use_in_washout AS w ON w.person_id = p.person_id
