-- The dated events of the phenotypes a study reads, one row per person, phenotype and date.
-- An event counts from the person's phenotype date (phenotype.person_summary.first_date) on: persons who do not meet
-- the phenotype's rule (not in person_summary) have no rows here.
-- Drug phenotypes' events are fills (event_date = fill start). Their supply ends on drug_exposure_end_date of the
-- same staging.drug_exposure record, found by person, start date, vocabulary and code; identical fills on one day
-- collapse to the longest supply. supply_end is NULL for non-drug events and for fills without a matching record.
WITH qualifying_events AS (
    SELECT e.person_id, e.phenotype_id, e.event_date, e.source_table, e.vocabulary, e.code
    FROM phenotype.events AS e
    JOIN phenotype.person_summary AS s
      ON s.person_id = e.person_id AND s.phenotype_id = e.phenotype_id
    WHERE list_contains($phenotype_ids, e.phenotype_id)
      AND e.event_date >= s.first_date
),
drug_fill_supply AS (
    SELECT q.person_id, q.phenotype_id, q.event_date, max(d.drug_exposure_end_date) AS supply_end
    FROM qualifying_events AS q
    JOIN staging.drug_exposure AS d
      ON d.person_id = q.person_id
     AND d.drug_exposure_start_date = q.event_date
     AND d.drug_vocabulary = q.vocabulary
     AND d.drug_code = q.code
    WHERE q.source_table = 'drug_exposure'
    GROUP BY q.person_id, q.phenotype_id, q.event_date
)
SELECT q.person_id,
       q.phenotype_id,
       q.event_date,
       bool_or(q.source_table = 'drug_exposure') AS is_drug_fill,
       max(f.supply_end) AS supply_end
FROM qualifying_events AS q
LEFT JOIN drug_fill_supply AS f USING (person_id, phenotype_id, event_date)
GROUP BY q.person_id, q.phenotype_id, q.event_date
