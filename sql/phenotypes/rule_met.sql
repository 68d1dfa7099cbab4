-- Persons who meet the rule of a phenotype computed from records (all but composites), before person exclusions.
-- A rule is judged on each day with the records up to that day, never with later ones:
--   first_date  the first day the rule holds: the confirming record (the record that makes the rule true, Circe's
--               "first qualifying event"), not the first of the records it needs;
--   end_date    the first day it no longer holds (NULL: it holds from first_date on). Only rules on a person's
--               lowest value or on all values can stop holding: a later lower value, or a later value out of range.
-- So a person has the phenotype on day d exactly when first_date <= d and (end_date IS NULL OR d < end_date).
CREATE TEMP TABLE phenotype_rule_met AS

-- min_records with one record, nearly every phenotype: the first qualifying record confirms it.
SELECT events.person_id, events.phenotype_id, min(events.event_date) AS first_date,
       CAST(NULL AS DATE) AS end_date, max(events.event_date) AS last_date, count(*) AS event_count
FROM phenotype.events
JOIN phenotype.rules ON rules.phenotype_id = events.phenotype_id
WHERE rules.rule_type = 'min_records' AND rules.min_records <= 1
GROUP BY events.person_id, events.phenotype_id

UNION ALL

-- min_records with N > 1 records: records on N different days; the first record of the N-th day confirms it. Records
-- of one day count once (a visit's diagnosis coded twice, or on two claim lines, is one observation).
SELECT person_id, phenotype_id,
       max(CASE WHEN day_number = min_records THEN event_date END), NULL, max(event_date), count(*)
FROM (
    SELECT events.person_id, events.phenotype_id, events.event_date, rules.min_records,
           dense_rank() OVER (PARTITION BY events.person_id, events.phenotype_id ORDER BY events.event_date)
               AS day_number
    FROM phenotype.events
    JOIN phenotype.rules ON rules.phenotype_id = events.phenotype_id
    WHERE rules.rule_type = 'min_records' AND rules.min_records > 1
) AS numbered
GROUP BY person_id, phenotype_id, min_records
HAVING count(DISTINCT event_date) >= min_records

UNION ALL

-- one_inpatient_or_two_outpatient: a record in an inpatient visit, or two records outside inpatient visits
-- (outpatient, emergency, or no visit recorded) at least min_days_apart days apart. The confirming record is the
-- first inpatient record or the first outside record min_days_apart or more after the first outside record (the
-- earliest partner any record can have), whichever comes first. Two hash aggregates and a join, no sort.
SELECT records.person_id, records.phenotype_id,
       least(firsts.first_inpatient,
             min(CASE WHEN records.visit_type IS DISTINCT FROM 'inpatient'
                       AND date_diff('day', firsts.first_outside, records.event_date) >= firsts.min_days_apart
                      THEN records.event_date END)),
       NULL, max(records.event_date), count(*)
FROM phenotype_condition_records AS records
JOIN (
    SELECT records.person_id, records.phenotype_id, rules.min_days_apart,
           min(CASE WHEN records.visit_type = 'inpatient' THEN records.event_date END) AS first_inpatient,
           min(CASE WHEN records.visit_type IS DISTINCT FROM 'inpatient' THEN records.event_date END)
               AS first_outside
    FROM phenotype_condition_records AS records
    JOIN phenotype.rules ON rules.phenotype_id = records.phenotype_id
    WHERE rules.rule_type = 'one_inpatient_or_two_outpatient'
    GROUP BY records.person_id, records.phenotype_id, rules.min_days_apart
) AS firsts
  ON firsts.person_id = records.person_id AND firsts.phenotype_id = records.phenotype_id
GROUP BY records.person_id, records.phenotype_id, firsts.first_inpatient
HAVING least(firsts.first_inpatient,
             min(CASE WHEN records.visit_type IS DISTINCT FROM 'inpatient'
                       AND date_diff('day', firsts.first_outside, records.event_date) >= firsts.min_days_apart
                      THEN records.event_date END)) IS NOT NULL

UNION ALL

-- lowest_value: on day d, the person's lowest plausible value up to d (both legs) meets the threshold.
-- all_values: on day d, every plausible value up to d meets it.
-- The lowest value so far only falls, so either holds on one unbroken run of days: from the first day it holds
-- to the first later day it does not (a lower value out of range, or a value out of range).
SELECT person_id, phenotype_id,
       min(CASE WHEN holds THEN event_date END),
       min(CASE WHEN NOT holds AND event_date > first_holding_day THEN event_date END),
       max(CASE WHEN meets_on_day THEN event_date END),
       sum(qualifying_values)
FROM (
    SELECT *, min(CASE WHEN holds THEN event_date END) OVER (PARTITION BY person_id, phenotype_id)
                  AS first_holding_day
    FROM (
        SELECT person_id, phenotype_id, event_date, meets_on_day, qualifying_values,
               CASE rule_type
                   -- the threshold verdict of the lowest value so far (equal values share one verdict)
                   WHEN 'lowest_value' THEN arg_min(lowest_meets, lowest_value) OVER so_far
                   ELSE bool_and(all_meet) OVER so_far
               END AS holds
        FROM (
            SELECT person_id, phenotype_id, event_date, rule_type,
                   min(value) AS lowest_value,
                   arg_min(meets_threshold, value) AS lowest_meets,
                   bool_and(meets_threshold) AS all_meet,
                   bool_or(meets_threshold) AS meets_on_day,
                   count(CASE WHEN meets_threshold THEN 1 END) AS qualifying_values
            FROM phenotype_measurement_records
            WHERE rule_type IN ('lowest_value', 'all_values')
            GROUP BY person_id, phenotype_id, event_date, rule_type
        ) AS days
        WINDOW so_far AS (PARTITION BY person_id, phenotype_id ORDER BY event_date
                          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ) AS judged_days
) AS with_first_day
GROUP BY person_id, phenotype_id
HAVING bool_or(holds);
