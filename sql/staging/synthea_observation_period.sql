-- Synthea has no observation periods: one per patient, from the first encounter's start to the last encounter's end
-- (as OHDSI ETL-Synthea does). synthea_encounter_span holds those dates per patient (pipelines/ingest/formats/
-- synthea.py). A patient without encounters gets no dates, so the loader rejects the row (missing_required_field).
SELECT
    raw._record,
    field_text(raw.Id) AS observation_period_id,
    field_text(raw.Id) AS person_id,
    span.first_date AS observation_period_start_date,
    span.last_date AS observation_period_end_date
FROM _raw_source AS raw
LEFT JOIN synthea_encounter_span AS span ON span.patient = field_text(raw.Id)
