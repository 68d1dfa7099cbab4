-- Event rows and persons per phenotype (for the Dagster materialization metadata).
SELECT
    definitions.phenotype_id,
    definitions.version,
    coalesce(event_rows.row_count, 0) AS event_rows,
    coalesce(persons.person_count, 0) AS person_count
FROM phenotype.definitions
LEFT JOIN (
    SELECT phenotype_id, count(*) AS row_count FROM phenotype.events GROUP BY phenotype_id
) AS event_rows ON event_rows.phenotype_id = definitions.phenotype_id
LEFT JOIN (
    SELECT phenotype_id, count(*) AS person_count FROM phenotype.person_summary GROUP BY phenotype_id
) AS persons ON persons.phenotype_id = definitions.phenotype_id
ORDER BY definitions.phenotype_id;
