-- phenotype.events from the three record tables: every record with a listed code (conditions, drugs) and every
-- plausible measurement value that meets its threshold. Whether the person meets the rule is person_summary's job.
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
    SELECT person_id, phenotype_id, event_date, CAST(NULL AS DOUBLE), CAST(NULL AS VARCHAR),
           CAST(NULL AS VARCHAR), 'drug_exposure', vocabulary, code, event_end_date
    FROM phenotype_drug_records
    UNION ALL
    SELECT person_id, phenotype_id, event_date, value, unit, laterality, 'measurement', vocabulary, code,
           CAST(NULL AS DATE)
    FROM phenotype_measurement_records
    WHERE meets_threshold
) AS all_records;
