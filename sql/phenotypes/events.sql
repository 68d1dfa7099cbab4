-- phenotype.events: every record of a phenotype computed from records (records.sql), but those of phenotypes with
-- an exclusion with a window, which record_exclusions.sql adds without the records near an excluding record.
-- Whether the person meets the rule is person_summary's job.
-- Not sorted: sorting millions of rows costs more than it gives; readers order what they read.
INSERT INTO phenotype.events
    (person_id, phenotype_id, event_date, value, unit, laterality, source_table, vocabulary, code, event_end_date)
SELECT person_id, phenotype_id, event_date, value, unit, laterality, source_table, vocabulary, code, event_end_date
FROM phenotype_records
WHERE phenotype_id NOT IN (SELECT phenotype_id FROM phenotype.person_exclusions WHERE window_days IS NOT NULL);
