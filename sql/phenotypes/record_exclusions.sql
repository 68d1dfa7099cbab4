-- Exclusions with a window (a min_records rule's exclusion_window_days, phenotype.person_exclusions.window_days):
-- a record with a record of an excluding phenotype within window_days days before or after it is not a record of
-- the phenotype (as a Circe correlated criterion "within N days before and after"). events.sql left every record
-- of such a phenotype out of phenotype.events; the records not near an excluding record go in here, before the rule
-- is judged (rule_met.sql), so the person keeps the phenotype's records further away. Exclusions without a window
-- exclude the person, at any time (person_summary.sql).
-- The excluding records are all of the excluding phenotype's records (phenotype_records, records.sql), even when it
-- has a windowed exclusion of its own: records are matched to their phenotype before any of them is left out.
-- Excluding phenotypes are computed from records (the loader refuses composites).
-- Why the records that remain are added, not the others deleted from phenotype.events: DuckDB 2.0.1's COMMIT
-- re-appends a table row by row when the transaction deleted any of the rows it wrote (the phenotype stage's
-- commit at 1,000,000 patients: 64-119 s after a DELETE here, 0.3 s without; README, sessions 11 and 12).

-- The records of the phenotypes a windowed exclusion involves, its own phenotype's and the excluding phenotypes',
-- gathered once: a few phenotypes, against the 70 million records of all of them at 1,000,000 patients. Reading
-- phenotype_records again joins the staging tables' records to their phenotypes a second time (0.6 of the stage's
-- 23 CPU s at 200,000 patients, against the 21 CPU s a DELETE cost at the commit; session 12).
CREATE TEMP TABLE phenotype_windowed_records AS
SELECT person_id, phenotype_id, event_date, value, unit, laterality, source_table, vocabulary, code, event_end_date
FROM phenotype_records
WHERE phenotype_id IN (
    SELECT phenotype_id FROM phenotype.person_exclusions WHERE window_days IS NOT NULL
    UNION
    SELECT excluding_phenotype_id FROM phenotype.person_exclusions WHERE window_days IS NOT NULL
);

INSERT INTO phenotype.events
    (person_id, phenotype_id, event_date, value, unit, laterality, source_table, vocabulary, code, event_end_date)
SELECT records.person_id, records.phenotype_id, records.event_date, records.value, records.unit, records.laterality,
       records.source_table, records.vocabulary, records.code, records.event_end_date
FROM phenotype_windowed_records AS records
WHERE records.phenotype_id IN (SELECT phenotype_id FROM phenotype.person_exclusions WHERE window_days IS NOT NULL)
  AND NOT EXISTS (
    SELECT 1
    FROM phenotype.person_exclusions AS exclusion
    JOIN phenotype_windowed_records AS excluding
      ON excluding.phenotype_id = exclusion.excluding_phenotype_id
    WHERE exclusion.phenotype_id = records.phenotype_id
      AND exclusion.window_days IS NOT NULL
      AND excluding.person_id = records.person_id
      AND abs(date_diff('day', excluding.event_date, records.event_date)) <= exclusion.window_days
);
