-- OMOP CDM measurement -> canonical measurement, one row per source row. Code as in omop_condition_occurrence.sql
-- (usually LOINC); the unit is the unit concept's code (UCUM, e.g. mmol/L) when known, else unit_source_value.
SELECT
    raw._record,
    field_text(raw.measurement_id) AS measurement_id,
    field_text(raw.person_id) AS person_id,
    CASE WHEN standard_concept.concept_id IS NOT NULL THEN standard_concept.vocabulary_id
         WHEN source_concept.concept_id IS NOT NULL THEN source_concept.vocabulary_id
         WHEN coalesce(field_text(raw.measurement_source_value), nullif(field_text(raw.measurement_concept_id), '0'))
              IS NOT NULL THEN 'LOCAL'
    END AS measurement_vocabulary,
    CASE WHEN standard_concept.concept_id IS NOT NULL THEN standard_concept.concept_code
         WHEN source_concept.concept_id IS NOT NULL THEN source_concept.concept_code
         ELSE coalesce(field_text(raw.measurement_source_value), nullif(field_text(raw.measurement_concept_id), '0'))
    END AS measurement_code,
    iso_date(raw.measurement_date) AS measurement_date,
    field_text(raw.value_as_number) AS value_as_number,
    coalesce(unit_concept.concept_code, field_text(raw.unit_source_value)) AS unit,
    CAST(NULL AS VARCHAR) AS laterality,
    nullif(field_text(raw.visit_occurrence_id), '0') AS visit_occurrence_id
FROM _raw_source AS raw
LEFT JOIN omop_vocabulary_concept AS standard_concept
  ON standard_concept.concept_id = field_text(raw.measurement_concept_id)
LEFT JOIN omop_vocabulary_concept AS source_concept
  ON source_concept.concept_id = field_text(raw.measurement_source_concept_id)
LEFT JOIN omop_vocabulary_concept AS unit_concept
  ON unit_concept.concept_id = field_text(raw.unit_concept_id)
