-- Synthea encounters -> canonical visit_occurrence. ENCOUNTERCLASS inpatient -> inpatient; emergency and urgentcare
-- -> emergency; every other class (ambulatory, outpatient, wellness, home, virtual, snf, hospice) -> outpatient.
SELECT
    raw._record,
    field_text(raw.Id) AS visit_occurrence_id,
    field_text(raw.PATIENT) AS person_id,
    CASE WHEN field_text(raw.ENCOUNTERCLASS) IS NULL THEN NULL
         WHEN lower(field_text(raw.ENCOUNTERCLASS)) = 'inpatient' THEN 'inpatient'
         WHEN lower(field_text(raw.ENCOUNTERCLASS)) IN ('emergency', 'urgentcare') THEN 'emergency'
         ELSE 'outpatient' END AS visit_type,
    iso_date(raw.START) AS visit_start_date,
    iso_date(raw.STOP) AS visit_end_date
FROM _raw_source AS raw
