-- Every record of every phenotype computed from records (all but composites), before exclusions with a window: the
-- drug records (drug_records.sql), every condition record with a listed code and every plausible measurement value
-- that meets its threshold. events.sql writes them into phenotype.events, but those of phenotypes with a windowed
-- exclusion, which record_exclusions.sql adds without the records the window leaves out.
-- A view: the drug records are read from staging where they are used, never held in a work table (drug_records.sql).
CREATE TEMP VIEW phenotype_records AS
SELECT person_id, phenotype_id, event_date, value, unit, laterality, source_table, vocabulary, code, event_end_date
FROM phenotype_drug_records
UNION ALL
SELECT person_id, phenotype_id, event_date, CAST(NULL AS DOUBLE) AS value, CAST(NULL AS VARCHAR) AS unit,
       CAST(NULL AS VARCHAR) AS laterality, 'condition_occurrence' AS source_table, vocabulary, code,
       CAST(NULL AS DATE) AS event_end_date
FROM phenotype_condition_records
UNION ALL
SELECT person_id, phenotype_id, event_date, value, unit, laterality, 'measurement', vocabulary, code,
       CAST(NULL AS DATE)
FROM phenotype_measurement_records
WHERE meets_threshold;
