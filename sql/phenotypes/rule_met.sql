-- Persons who meet the rule of a phenotype computed from records (all but composites), before person exclusions.
-- first_date is the earliest qualifying record, except for lowest_value/all_values rules, where it is the date of
-- the person's lowest value (the earliest such date on a tie).
CREATE TEMP TABLE phenotype_rule_met AS

-- min_records: at least N qualifying records (conditions, drugs, measurement values meeting the threshold).
SELECT events.person_id, events.phenotype_id, min(events.event_date) AS first_date,
       max(events.event_date) AS last_date, count(*) AS event_count
FROM phenotype.events
JOIN phenotype.rules ON rules.phenotype_id = events.phenotype_id
WHERE rules.rule_type = 'min_records'
GROUP BY events.person_id, events.phenotype_id, rules.min_records
HAVING count(*) >= rules.min_records

UNION ALL

-- one_inpatient_or_two_outpatient: a record in an inpatient visit, or two records outside inpatient visits
-- (outpatient, emergency, or no visit recorded) at least min_days_apart days apart. The first and last of those
-- records are the furthest-apart pair, so comparing them is enough.
SELECT records.person_id, records.phenotype_id, min(records.event_date), max(records.event_date), count(*)
FROM phenotype_condition_records AS records
JOIN phenotype.rules ON rules.phenotype_id = records.phenotype_id
WHERE rules.rule_type = 'one_inpatient_or_two_outpatient'
GROUP BY records.person_id, records.phenotype_id, rules.min_days_apart
HAVING count(CASE WHEN records.visit_type = 'inpatient' THEN 1 END) > 0
    OR max(CASE WHEN records.visit_type IS DISTINCT FROM 'inpatient' THEN records.event_date END)
       - min(CASE WHEN records.visit_type IS DISTINCT FROM 'inpatient' THEN records.event_date END)
       >= rules.min_days_apart

UNION ALL

-- lowest_value: the person's lowest plausible value (all dates, both legs) meets the threshold.
-- all_values: every plausible value of the person meets it.
SELECT lowest.person_id, lowest.phenotype_id, lowest.event_date, qualifying.last_date, qualifying.event_count
FROM (
    SELECT person_id, phenotype_id, event_date, meets_threshold, rule_type,
           row_number() OVER (PARTITION BY person_id, phenotype_id ORDER BY value, event_date) AS rank_by_value,
           min(CASE WHEN meets_threshold THEN 1 ELSE 0 END) OVER (PARTITION BY person_id, phenotype_id)
               AS all_values_meet
    FROM phenotype_measurement_records
    WHERE rule_type IN ('lowest_value', 'all_values')
) AS lowest
JOIN (
    SELECT person_id, phenotype_id, max(event_date) AS last_date, count(*) AS event_count
    FROM phenotype_measurement_records
    WHERE meets_threshold
    GROUP BY person_id, phenotype_id
) AS qualifying
  ON qualifying.person_id = lowest.person_id AND qualifying.phenotype_id = lowest.phenotype_id
WHERE lowest.rank_by_value = 1
  AND lowest.meets_threshold
  AND (lowest.rule_type = 'lowest_value' OR lowest.all_values_meet = 1);
