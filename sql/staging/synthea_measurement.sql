-- Synthea observations -> canonical measurement. Codes are LOINC; UNITS as recorded. Only TYPE 'numeric' rows carry
-- a number in VALUE (others hold text answers such as 'Never smoker'), so only those give value_as_number.
SELECT
    raw._record,
    'observations-' || raw._record AS measurement_id,
    field_text(raw.PATIENT) AS person_id,
    'LOINC' AS measurement_vocabulary,
    field_text(raw.CODE) AS measurement_code,
    iso_date(raw.DATE) AS measurement_date,
    CASE WHEN lower(field_text(raw.TYPE)) = 'numeric' THEN field_text(raw.VALUE) END AS value_as_number,
    field_text(raw.UNITS) AS unit,
    CAST(NULL AS VARCHAR) AS laterality,
    field_text(raw.ENCOUNTER) AS visit_occurrence_id
FROM _raw_source AS raw
