-- phenotype.events from the two record work tables: every condition record with a listed code and every plausible
-- measurement value that meets its threshold (drug records went in directly: drug_events.sql). Whether the person
-- meets the rule is person_summary's job.
-- Not sorted: sorting millions of rows costs more than it gives; readers order what they read.
INSERT INTO phenotype.events
    (person_id, phenotype_id, event_date, value, unit, laterality, source_table, vocabulary, code, event_end_date)
SELECT person_id, phenotype_id, event_date, value, unit, laterality, source_table, vocabulary, code, event_end_date
FROM (
    SELECT person_id, phenotype_id, event_date, CAST(NULL AS DOUBLE) AS value, CAST(NULL AS VARCHAR) AS unit,
           CAST(NULL AS VARCHAR) AS laterality, 'condition_occurrence' AS source_table, vocabulary, code,
           CAST(NULL AS DATE) AS event_end_date
    FROM phenotype_condition_records
    UNION ALL
    SELECT person_id, phenotype_id, event_date, value, unit, laterality, 'measurement', vocabulary, code,
           CAST(NULL AS DATE)
    FROM phenotype_measurement_records
    WHERE meets_threshold
) AS all_records;
