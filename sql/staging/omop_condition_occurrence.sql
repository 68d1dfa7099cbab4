-- OMOP CDM condition_occurrence -> canonical condition_occurrence, one row per source row.
-- The staged code is the standard concept (SNOMED) when the extract's concept table knows it; else the source
-- concept (for example ICD10CM); else vocabulary LOCAL with the source value (or the concept id) as code, which no
-- phenotype lists. The other codes an event stands for are in vocabulary.concept_code_map (omop_concept_code_map.sql).
SELECT
    raw._record,
    field_text(raw.condition_occurrence_id) AS condition_occurrence_id,
    field_text(raw.person_id) AS person_id,
    CASE WHEN standard_concept.concept_id IS NOT NULL THEN standard_concept.vocabulary_id
         WHEN source_concept.concept_id IS NOT NULL THEN source_concept.vocabulary_id
         WHEN coalesce(field_text(raw.condition_source_value), nullif(field_text(raw.condition_concept_id), '0'))
              IS NOT NULL THEN 'LOCAL'
    END AS condition_vocabulary,
    CASE WHEN standard_concept.concept_id IS NOT NULL THEN standard_concept.concept_code
         WHEN source_concept.concept_id IS NOT NULL THEN source_concept.concept_code
         ELSE coalesce(field_text(raw.condition_source_value), nullif(field_text(raw.condition_concept_id), '0'))
    END AS condition_code,
    iso_date(raw.condition_start_date) AS condition_start_date,
    iso_date(raw.condition_end_date) AS condition_end_date,
    nullif(field_text(raw.visit_occurrence_id), '0') AS visit_occurrence_id
FROM _raw_source AS raw
LEFT JOIN omop_vocabulary_concept AS standard_concept
  ON standard_concept.concept_id = field_text(raw.condition_concept_id)
LEFT JOIN omop_vocabulary_concept AS source_concept
  ON source_concept.concept_id = field_text(raw.condition_source_concept_id)
