-- The one rule for eras: a person's fills of a drug (or windows of a finding) joined into eras, each era running on
-- for a grace period after its last covered day. A span joins the era of the spans before it while it starts no more
-- than join_within_days days after the last day they cover (OHDSI drug_era's persistence window); the era counts
-- until its last covered day + extend_days (Ray 2003: current use with a grace period; LEGEND's and CohortMethod's
-- on-treatment end: discontinuation + grace). Overlapping spans are one era; a span that starts exactly
-- join_within_days after the coverage so far still joins, one day later opens a new era.
--
-- Reads the temporary table era_spans, written by the model run just before it: on_treatment_fills.sql (the first
-- era is the on-treatment period of a new-user design) or time_varying_spans.sql (every era is a period of current
-- use or of a risk window). era_spans: person_id, variable, first_day, last_day (day numbers from an origin the
-- writer chooses, first_day <= last_day), join_within_days, extend_days (the same for every span of a variable).
-- One row per era: era (1 = the first, by first day), era_first_day, era_last_day (the last covered day) and
-- era_end_day (era_last_day + extend_days).
WITH covered_before AS (
    SELECT person_id, variable, first_day, last_day, join_within_days, extend_days,
           max(last_day) OVER (PARTITION BY person_id, variable ORDER BY first_day, last_day
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS covered_until
    FROM era_spans
),
numbered AS (
    -- A span that starts more than join_within_days after everything before it ends opens a new era.
    SELECT person_id, variable, first_day, last_day, extend_days,
           sum(CASE WHEN covered_until IS NULL OR first_day > covered_until + join_within_days THEN 1 ELSE 0 END)
               OVER (PARTITION BY person_id, variable ORDER BY first_day, last_day
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS era
    FROM covered_before
)
SELECT person_id,
       variable,
       CAST(era AS INTEGER) AS era,
       min(first_day) AS era_first_day,
       max(last_day) AS era_last_day,
       max(last_day) + max(extend_days) AS era_end_day
FROM numbered
GROUP BY person_id, variable, era
