-- OMOP CDM procedure_occurrence -> canonical procedure_occurrence, one row per source row (codes as in
-- omop_condition_occurrence.sql: SNOMED, CPT4, ICD10PCS as the extract records them).
SELECT
    raw._record,
    field_text(raw.procedure_occurrence_id) AS procedure_occurrence_id,
    field_text(raw.person_id) AS person_id,
    CASE WHEN standard_concept.concept_id IS NOT NULL THEN standard_concept.vocabulary_id
         WHEN source_concept.concept_id IS NOT NULL THEN source_concept.vocabulary_id
         WHEN coalesce(field_text(raw.procedure_source_value), nullif(field_text(raw.procedure_concept_id), '0'))
              IS NOT NULL THEN 'LOCAL'
    END AS procedure_vocabulary,
    CASE WHEN standard_concept.concept_id IS NOT NULL THEN standard_concept.concept_code
         WHEN source_concept.concept_id IS NOT NULL THEN source_concept.concept_code
         ELSE coalesce(field_text(raw.procedure_source_value), nullif(field_text(raw.procedure_concept_id), '0'))
    END AS procedure_code,
    iso_date(raw.procedure_date) AS procedure_date,
    nullif(field_text(raw.visit_occurrence_id), '0') AS visit_occurrence_id
FROM _raw_source AS raw
LEFT JOIN omop_vocabulary_concept AS standard_concept
  ON standard_concept.concept_id = field_text(raw.procedure_concept_id)
LEFT JOIN omop_vocabulary_concept AS source_concept
  ON source_concept.concept_id = field_text(raw.procedure_source_concept_id)
