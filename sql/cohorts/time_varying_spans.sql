-- Time-varying exposure: each fill or abnormal result of an exposure analysed as current, as the span of days it
-- covers, counted from the person's first day at risk (day 0 = time_at_risk_start): a fill from its start to its
-- last day of supply (its own day when the supply is unknown), a result from its day to the end of its risk window.
-- exposure_eras.sql's era_spans, which it joins into eras (time_varying_person_variables.sql: how).
-- Fills and results count as in person_variables.sql: from the person's phenotype date (confirming record) and before
-- the phenotype stops holding; those after follow-up ends change no row.
-- The persons who have each exposure (person_summary) are found first, and the events are matched against that
-- small set (344,194 person-exposures at 200,000 patients; matching the events to person_summary first left DuckDB
-- hashing 20.7 million joined events).
-- Portable SQL (DuckDB and Spark): day numbers from date_diff('day', ...) only, no date arithmetic.
WITH with_phenotype AS (
    SELECT pv.person_id, pv.person_number, pv.variable, pv.variable_number, pv.time_at_risk_start,
           pv.followup_days, pv.window_extra_days, pv.join_within_days, pv.extend_days,
           s.first_date AS phenotype_first_date, s.end_date AS phenotype_end_date
    FROM time_varying_person_variables AS pv
    JOIN phenotype.person_summary AS s ON s.person_id = pv.person_id AND s.phenotype_id = pv.variable
)
SELECT pv.person_number,
       pv.variable_number,
       date_diff('day', pv.time_at_risk_start, e.event_date) AS first_day,
       date_diff('day', pv.time_at_risk_start, coalesce(e.event_end_date, e.event_date)) + pv.window_extra_days
           AS last_day,
       pv.join_within_days,
       pv.extend_days
FROM with_phenotype AS pv
JOIN phenotype.events AS e ON e.person_id = pv.person_id AND e.phenotype_id = pv.variable
WHERE e.event_date >= pv.phenotype_first_date
  AND (pv.phenotype_end_date IS NULL OR e.event_date < pv.phenotype_end_date)
  AND date_diff('day', pv.time_at_risk_start, e.event_date) < pv.followup_days
