-- person_summary for the composite phenotypes of one depth ($depth): persons in every all_of part and in no
-- none_of part. Run once per depth, lowest first, so that the parts are already in person_summary.
-- The composite holds while every all_of part holds: from the latest of the parts' first dates (the day by which
-- every part was met) to the earliest of their end dates; persons whose parts never hold together are not in it.
INSERT INTO phenotype.person_summary (person_id, phenotype_id, first_date, end_date, last_date, event_count, version)
WITH
required_parts AS (
    SELECT phenotype_id, count(*) AS part_count
    FROM phenotype.composite_components
    WHERE depth = $depth AND role = 'all_of'
    GROUP BY phenotype_id
),
parts_met AS (
    SELECT part_summary.person_id, parts.phenotype_id, count(*) AS part_count,
           max(part_summary.first_date) AS first_date, min(part_summary.end_date) AS end_date,
           max(part_summary.last_date) AS last_date,
           sum(part_summary.event_count) AS event_count
    FROM phenotype.composite_components AS parts
    JOIN phenotype.person_summary AS part_summary ON part_summary.phenotype_id = parts.component_id
    WHERE parts.depth = $depth AND parts.role = 'all_of'
    GROUP BY part_summary.person_id, parts.phenotype_id
)
SELECT parts_met.person_id, parts_met.phenotype_id, parts_met.first_date, parts_met.end_date, parts_met.last_date,
       parts_met.event_count, definitions.version
FROM parts_met
JOIN required_parts
  ON required_parts.phenotype_id = parts_met.phenotype_id AND required_parts.part_count = parts_met.part_count
JOIN phenotype.definitions ON definitions.phenotype_id = parts_met.phenotype_id
WHERE (parts_met.end_date IS NULL OR parts_met.first_date < parts_met.end_date)
  AND NOT EXISTS (
    SELECT 1
    FROM phenotype.composite_components AS excluded_parts
    JOIN phenotype.person_summary AS excluded_summary
      ON excluded_summary.phenotype_id = excluded_parts.component_id
    WHERE excluded_parts.phenotype_id = parts_met.phenotype_id
      AND excluded_parts.role = 'none_of'
      AND excluded_summary.person_id = parts_met.person_id
)
ORDER BY parts_met.phenotype_id, parts_met.person_id;
