-- Synthea conditions -> canonical condition_occurrence. Synthea codes conditions in SNOMED CT; the file has no row
-- id, so the id is the record number in the file.
SELECT
    raw._record,
    'conditions-' || raw._record AS condition_occurrence_id,
    field_text(raw.PATIENT) AS person_id,
    'SNOMED' AS condition_vocabulary,
    field_text(raw.CODE) AS condition_code,
    iso_date(raw.START) AS condition_start_date,
    iso_date(raw.STOP) AS condition_end_date,
    field_text(raw.ENCOUNTER) AS visit_occurrence_id
FROM _raw_source AS raw
