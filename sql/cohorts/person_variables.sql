-- For each person in the study population and each phenotype the study records (cohort.study_variables), the first
-- day the person counts as having it on its window's terms, looking from the index date on:
--   any_time_prior  an event counts from its date onwards for good            -> first event ever
--   lookback_days N an event counts from its date for N more days             -> first event on or after index - N
--   current_use     a fill counts from its start to the last day of supply    -> first fill whose supply reaches index
-- Only days on which the person has the phenotype count (phenotype.person_summary: from its first_date, the
-- confirming record, to its end_date), so a record after index never makes a person exposed at index, and a
-- lowest-value rule is judged on the values up to the index date.
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
-- The events of the recorded phenotypes from the person's phenotype date on (the rule of phenotype_event_dates.sql),
-- read from phenotype.events: not from phenotype_event_dates, which holds only the index and outcome phenotypes.
-- Several fills of one day need no collapsing here: the first date below is the earliest event whose window
-- reaches the index date, the same whichever of that day's fills reaches it.
recorded_events AS (
    SELECT e.person_id, e.phenotype_id, e.event_date, e.event_end_date, r.window_kind, r.lookback_days,
           s.end_date AS phenotype_end_date
    FROM phenotype.events AS e
    JOIN recorded_phenotypes AS r ON r.phenotype_id = e.phenotype_id
    JOIN phenotype.person_summary AS s ON s.person_id = e.person_id AND s.phenotype_id = e.phenotype_id
    WHERE e.event_date >= s.first_date
      AND (s.end_date IS NULL OR e.event_date < s.end_date)
),
exposure_intervals AS (
    -- Each event makes the person count as having the phenotype from exposed_from to exposed_until (NULL = for good).
    -- event_end_date is a drug fill's last day of supply (NULL for other events: they count on their own day).
    SELECT person_id,
           phenotype_id,
           event_date AS exposed_from,
           -- least() ignores NULLs: the window's end, cut at the day before the phenotype stops holding.
           least(CASE window_kind
                     WHEN 'any_time_prior' THEN NULL
                     WHEN 'lookback_days' THEN event_date + lookback_days
                     WHEN 'current_use' THEN coalesce(event_end_date, event_date)
                 END,
                 phenotype_end_date - 1) AS exposed_until
    FROM recorded_events
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
