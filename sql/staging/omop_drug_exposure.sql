-- OMOP CDM drug_exposure -> canonical drug_exposure, one row per source row. The staged code is the drug concept as
-- recorded (usually an RxNorm clinical drug); its ingredients and ATC classes are in vocabulary.concept_code_map.
-- Fallbacks as in omop_condition_occurrence.sql.
SELECT
    raw._record,
    field_text(raw.drug_exposure_id) AS drug_exposure_id,
    field_text(raw.person_id) AS person_id,
    CASE WHEN standard_concept.concept_id IS NOT NULL THEN standard_concept.vocabulary_id
         WHEN source_concept.concept_id IS NOT NULL THEN source_concept.vocabulary_id
         WHEN coalesce(field_text(raw.drug_source_value), nullif(field_text(raw.drug_concept_id), '0'))
              IS NOT NULL THEN 'LOCAL'
    END AS drug_vocabulary,
    CASE WHEN standard_concept.concept_id IS NOT NULL THEN standard_concept.concept_code
         WHEN source_concept.concept_id IS NOT NULL THEN source_concept.concept_code
         ELSE coalesce(field_text(raw.drug_source_value), nullif(field_text(raw.drug_concept_id), '0'))
    END AS drug_code,
    iso_date(raw.drug_exposure_start_date) AS drug_exposure_start_date,
    iso_date(raw.drug_exposure_end_date) AS drug_exposure_end_date,
    field_text(raw.days_supply) AS days_supply,
    field_text(raw.quantity) AS quantity,
    nullif(field_text(raw.visit_occurrence_id), '0') AS visit_occurrence_id
FROM _raw_source AS raw
LEFT JOIN omop_vocabulary_concept AS standard_concept
  ON standard_concept.concept_id = field_text(raw.drug_concept_id)
LEFT JOIN omop_vocabulary_concept AS source_concept
  ON source_concept.concept_id = field_text(raw.drug_source_concept_id)
