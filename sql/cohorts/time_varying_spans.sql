-- Time-varying exposure: each fill or abnormal result of an exposure analysed as current, as the span of days it
-- covers, counted from the person's first day at risk (day 0 = time_at_risk_start): a fill from its start to its
-- last day of supply (its own day when the supply is unknown), a result from its day to the end of its risk window.
-- Materialised as era_spans, which exposure_eras.sql joins into eras (time_varying_person_variables.sql: how).
-- Fills and results count as in person_variables.sql: from the person's phenotype date (confirming record) and before
-- the phenotype stops holding; those after follow-up ends change no row.
-- Portable SQL (DuckDB and Spark): day numbers from date_diff('day', ...) only, no date arithmetic.
SELECT pv.person_id,
       pv.variable,
       date_diff('day', pv.time_at_risk_start, e.event_date) AS first_day,
       date_diff('day', pv.time_at_risk_start, coalesce(e.event_end_date, e.event_date)) + pv.window_extra_days
           AS last_day,
       pv.join_within_days,
       pv.extend_days
FROM time_varying_person_variables AS pv
JOIN phenotype.events AS e ON e.person_id = pv.person_id AND e.phenotype_id = pv.variable
JOIN phenotype.person_summary AS s ON s.person_id = e.person_id AND s.phenotype_id = e.phenotype_id
WHERE e.event_date >= s.first_date
  AND (s.end_date IS NULL OR e.event_date < s.end_date)
  AND date_diff('day', pv.time_at_risk_start, e.event_date) < pv.followup_days
