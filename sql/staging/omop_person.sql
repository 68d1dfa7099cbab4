-- OMOP CDM person -> canonical person. Sex from gender_concept_id (8507 male, 8532 female, any other concept
-- unknown); a missing gender_concept_id stays missing, so the loader rejects the row (missing_required_field).
SELECT
    raw._record,
    field_text(raw.person_id) AS person_id,
    field_text(raw.year_of_birth) AS year_of_birth,
    CASE WHEN field_text(raw.month_of_birth) IS NOT NULL AND field_text(raw.day_of_birth) IS NOT NULL
         THEN field_text(raw.year_of_birth) || '-' || lpad(field_text(raw.month_of_birth), 2, '0') || '-'
              || lpad(field_text(raw.day_of_birth), 2, '0')
    END AS birth_date,
    CASE WHEN field_text(raw.gender_concept_id) IS NULL THEN NULL
         WHEN field_text(raw.gender_concept_id) = '8507' THEN 'M'
         WHEN field_text(raw.gender_concept_id) = '8532' THEN 'F'
         ELSE 'U' END AS sex,
    field_text(raw.race_source_value) AS race,
    field_text(raw.ethnicity_source_value) AS ethnicity,
    field_text(raw.care_site_id) AS site_id
FROM _raw_source AS raw
