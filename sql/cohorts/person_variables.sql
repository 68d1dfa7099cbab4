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
-- censor the unexposed). Persons with neither get no row, unless a new-use rule (below) leaves them out.
WITH population AS (
    SELECT person_id, index_date, observation_start
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
),
on_window_terms AS (
    SELECT p.person_id,
           i.phenotype_id AS variable,
           min(i.exposed_from) AS first_date,
           min(i.exposed_from) <= p.index_date AS at_index
    FROM population AS p
    JOIN exposure_intervals AS i
      ON i.person_id = p.person_id AND (i.exposed_until IS NULL OR i.exposed_until >= p.index_date)
    GROUP BY p.person_id, p.index_date, i.phenotype_id
),
-- New-use exposures (cohort.study_variables.new_use_*; pipelines/cohorts/study.py NewUse): a current user at index
-- is exposed only when their first fill lies in the new_use_started_within_days before index with
-- new_use_washout_days of observation before it; a person with a fill whose supply reaches the washout before index
-- who is not such a new user is left out of the comparison (at_index NULL); the others are unexposed.
new_use_rules AS (
    SELECT variable AS phenotype_id, new_use_washout_days AS washout_days,
           new_use_started_within_days AS started_within_days
    FROM cohort.study_variables
    WHERE study_id = $study_id AND new_use_washout_days IS NOT NULL
),
new_use_history AS (
    SELECT p.person_id,
           r.phenotype_id,
           min(e.event_date) AS first_fill,
           bool_or(coalesce(e.event_end_date, e.event_date) >= p.index_date - r.washout_days) AS recent_use,
           min(e.event_date) >= p.index_date - r.started_within_days
               AND date_diff('day', p.observation_start, min(e.event_date)) >= r.washout_days AS started_as_new_user
    FROM population AS p
    JOIN recorded_events AS e ON e.person_id = p.person_id AND e.event_date <= p.index_date
    JOIN new_use_rules AS r ON r.phenotype_id = e.phenotype_id
    GROUP BY p.person_id, p.index_date, p.observation_start, r.phenotype_id, r.washout_days, r.started_within_days
),
new_use_left_out AS (
    -- Recent users who are not new users at index: prevalent users, past users, starts without washout observed.
    SELECT h.person_id, h.phenotype_id AS variable, h.first_fill
    FROM new_use_history AS h
    LEFT JOIN on_window_terms AS w ON w.person_id = h.person_id AND w.variable = h.phenotype_id
    WHERE h.recent_use AND NOT (coalesce(w.at_index, false) AND h.started_as_new_user)
)
SELECT $study_id AS study_id,
       coalesce(w.person_id, x.person_id) AS person_id,
       coalesce(w.variable, x.variable) AS variable,
       coalesce(w.first_date, x.first_fill) AS first_date,
       CASE WHEN x.person_id IS NOT NULL THEN NULL ELSE w.at_index END AS at_index
FROM on_window_terms AS w
FULL JOIN new_use_left_out AS x ON x.person_id = w.person_id AND x.variable = w.variable
