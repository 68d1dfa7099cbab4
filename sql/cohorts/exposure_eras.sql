-- The one rule for eras: a person's fills of a drug (or windows of a finding) joined into eras, each era running on
-- for a grace period after its last covered day. A span joins the era of the spans before it while it starts no more
-- than join_within_days days after the last day they cover (OHDSI drug_era's persistence window); the era counts
-- until its last covered day + extend_days (Ray 2003: current use with a grace period; LEGEND's and CohortMethod's
-- on-treatment end: discontinuation + grace). Overlapping spans are one era; a span that starts exactly
-- join_within_days after the coverage so far still joins, one day later opens a new era.
--
-- Reads era_spans, the SELECT of on_treatment_fills.sql (the first era is the on-treatment period of a new-user
-- design) or of time_varying_spans.sql (every era is a period of current use or of a risk window), given as a CTE of
-- the same statement (pipelines/cohorts/build.py materialise_eras: spans stored as a table filled DuckDB's temp
-- directory until the study's transaction ended). era_spans: person_number and variable_number (the person and the
-- drug or finding, by number: eligibility.sql's person_number; the writer numbers the variables. Numbers, not names,
-- because the window below sorts every span, several times faster by numbers; readers match the eras to names by
-- the same numbers),
-- first_day, last_day (day numbers from an origin the writer chooses, first_day <= last_day), join_within_days,
-- extend_days (the same for every span of a person's variable).
-- One row per era: person_number, variable_number, era (1 = the first, by first day), era_first_day, era_last_day
-- (the last covered day), era_end_day (era_last_day + extend_days), previous_era_end_day (the era_end_day of the era
-- before, NULL for the first) and is_last_era; the last two let a reader walk from era to era without sorting the eras
-- again (time_varying_exposure.sql).
--
-- One pass over the spans in order (per person and variable, by first day) finds the spans that open an era; the
-- eras are then read off those few rows: an era runs from its opening span's first day to the last day covered
-- before the next era opens (the spans of earlier eras end before this one opens, so that day is this era's own),
-- the last era to the last day covered at all, so the day covered before an era opens is the last day of the era
-- before. Of spans that start on one day only the first in order can open an era, so eras are numbered by their
-- first days.
WITH spans_in_order AS (
    SELECT person_number, variable_number, first_day, join_within_days, extend_days,
           max(last_day) OVER (PARTITION BY person_number, variable_number ORDER BY first_day, last_day
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS covered_before,
           max(last_day) OVER (PARTITION BY person_number, variable_number ORDER BY first_day, last_day
                               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS covered_by_all
    FROM era_spans
),
era_openings AS (
    -- A span that starts more than join_within_days after everything before it ends opens a new era.
    SELECT person_number, variable_number, first_day, extend_days, covered_before, covered_by_all
    FROM spans_in_order
    WHERE covered_before IS NULL OR first_day > covered_before + join_within_days
),
eras AS (
    SELECT person_number, variable_number,
           row_number() OVER (PARTITION BY person_number, variable_number ORDER BY first_day) AS era,
           first_day AS era_first_day,
           coalesce(lead(covered_before) OVER (PARTITION BY person_number, variable_number ORDER BY first_day),
                    covered_by_all) AS era_last_day,
           covered_before AS previous_era_last_day,
           lead(first_day) OVER (PARTITION BY person_number, variable_number ORDER BY first_day) IS NULL
               AS is_last_era,
           extend_days
    FROM era_openings
)
SELECT person_number,
       variable_number,
       CAST(era AS INTEGER) AS era,
       era_first_day,
       era_last_day,
       era_last_day + extend_days AS era_end_day,
       previous_era_last_day + extend_days AS previous_era_end_day,
       is_last_era
FROM eras
