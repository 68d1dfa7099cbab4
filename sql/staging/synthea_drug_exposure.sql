-- Synthea medications -> canonical drug_exposure. CODE is an RxNorm clinical-drug RxCUI (not an ingredient), so
-- phenotypes listing ingredient CUIs or ATC classes cannot match it without a vocabulary (reported by the ingest).
-- DISPENSES counts fills, not units, so quantity stays empty.
SELECT
    raw._record,
    'medications-' || raw._record AS drug_exposure_id,
    field_text(raw.PATIENT) AS person_id,
    'RxNorm' AS drug_vocabulary,
    field_text(raw.CODE) AS drug_code,
    iso_date(raw.START) AS drug_exposure_start_date,
    iso_date(raw.STOP) AS drug_exposure_end_date,
    CAST(NULL AS VARCHAR) AS days_supply,
    CAST(NULL AS VARCHAR) AS quantity,
    field_text(raw.ENCOUNTER) AS visit_occurrence_id
FROM _raw_source AS raw
