-- OMOP CDM visit_occurrence -> canonical visit_occurrence. visit_concept_id to visit type: inpatient visit (9201),
-- emergency-and-inpatient (262) and inpatient hospital (8717) count as inpatient; emergency room visit (9203) and
-- emergency room hospital (8870) as emergency; every other visit concept (outpatient 9202, office, telehealth,
-- home, 0 = unknown) as outpatient, which is how the phenotype rules treat a record without an inpatient visit.
SELECT
    raw._record,
    field_text(raw.visit_occurrence_id) AS visit_occurrence_id,
    field_text(raw.person_id) AS person_id,
    CASE WHEN field_text(raw.visit_concept_id) IS NULL THEN NULL
         WHEN field_text(raw.visit_concept_id) IN ('9201', '262', '8717') THEN 'inpatient'
         WHEN field_text(raw.visit_concept_id) IN ('9203', '8870') THEN 'emergency'
         ELSE 'outpatient' END AS visit_type,
    iso_date(raw.visit_start_date) AS visit_start_date,
    iso_date(raw.visit_end_date) AS visit_end_date
FROM _raw_source AS raw
