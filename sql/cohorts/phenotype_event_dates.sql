-- The dated events of the phenotypes the index and eligibility rules read (the outcome; in new-user designs also the
-- target and comparator drugs), one row per person, phenotype and date.
-- An event counts from the person's phenotype date (phenotype.person_summary.first_date) until its end_date: persons
-- who do not meet the phenotype's rule (not in person_summary) have no rows here.
-- Drug phenotypes' events are fills (event_date = fill start); their supply ends on the event's event_end_date (the
-- fill's staging.drug_exposure_end_date, carried into phenotype.events). Fills of one phenotype on one day
-- collapse to the longest supply. supply_end is NULL for non-drug events.
-- Why not every phenotype the study records: those are nearly all of phenotype.events (700 million rows at 10
-- million patients), and this temporary table ran out of memory there; person_variables.sql reads them from
-- phenotype.events itself.
WITH qualifying_events AS (
    SELECT e.person_id, e.phenotype_id, e.event_date, e.source_table, e.event_end_date
    FROM phenotype.events AS e
    JOIN phenotype.person_summary AS s
      ON s.person_id = e.person_id AND s.phenotype_id = e.phenotype_id
    WHERE list_contains($dated_phenotype_ids, e.phenotype_id)
      AND e.event_date >= s.first_date
      AND (s.end_date IS NULL OR e.event_date < s.end_date)
)
SELECT person_id,
       phenotype_id,
       event_date,
       max(CASE WHEN source_table = 'drug_exposure' THEN event_end_date END) AS supply_end
FROM qualifying_events
GROUP BY person_id, phenotype_id, event_date
