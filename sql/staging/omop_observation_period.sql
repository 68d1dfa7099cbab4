-- OMOP CDM observation_period -> canonical observation_period (same columns).
SELECT
    raw._record,
    field_text(raw.observation_period_id) AS observation_period_id,
    field_text(raw.person_id) AS person_id,
    iso_date(raw.observation_period_start_date) AS observation_period_start_date,
    iso_date(raw.observation_period_end_date) AS observation_period_end_date
FROM _raw_source AS raw
