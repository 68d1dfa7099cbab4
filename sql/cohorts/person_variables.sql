-- For each person in the study population and each phenotype the study records (cohort.study_variables), the first
-- day the person counts as having it on its window's terms, looking from the index date on:
--   any_time_prior  an event counts from its date onwards for good            -> first event ever
--   lookback_days N an event counts from its date for N more days             -> first event on or after index - N
--   current_use     a fill counts from its start to the last day of supply    -> first fill whose supply reaches index
-- So first_date <= index_date exactly when the phenotype is present at index (the index day counts), and for a
-- person without it at index first_date is the day they acquire it after index (where the statistics stage can
-- censor the unexposed). Persons with neither get no row.
WITH population AS (
    SELECT person_id, index_date
    FROM eligibility
    WHERE exclusion_reason IS NULL
),
recorded_phenotypes AS (
    SELECT variable AS phenotype_id, window_kind, lookback_days
    FROM cohort.study_variables
    WHERE study_id = $study_id
),
exposure_intervals AS (
    -- Each event makes the person count as having the phenotype from exposed_from to exposed_until (NULL = for good).
    SELECT e.person_id,
           r.phenotype_id,
           e.event_date AS exposed_from,
           CASE r.window_kind
               WHEN 'any_time_prior' THEN NULL
               WHEN 'lookback_days' THEN e.event_date + r.lookback_days
               WHEN 'current_use' THEN coalesce(e.supply_end, e.event_date)
           END AS exposed_until
    FROM phenotype_event_dates AS e
    JOIN recorded_phenotypes AS r ON r.phenotype_id = e.phenotype_id
)
SELECT $study_id AS study_id,
       p.person_id,
       i.phenotype_id AS variable,
       min(i.exposed_from) AS first_date,
       min(i.exposed_from) <= p.index_date AS at_index
FROM population AS p
JOIN exposure_intervals AS i
  ON i.person_id = p.person_id AND (i.exposed_until IS NULL OR i.exposed_until >= p.index_date)
GROUP BY p.person_id, p.index_date, i.phenotype_id
