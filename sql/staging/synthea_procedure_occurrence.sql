-- Synthea procedures -> canonical procedure_occurrence (SNOMED CT codes; id = record number in the file).
SELECT
    raw._record,
    'procedures-' || raw._record AS procedure_occurrence_id,
    field_text(raw.PATIENT) AS person_id,
    'SNOMED' AS procedure_vocabulary,
    field_text(raw.CODE) AS procedure_code,
    iso_date(raw.START) AS procedure_date,
    field_text(raw.ENCOUNTER) AS visit_occurrence_id
FROM _raw_source AS raw
