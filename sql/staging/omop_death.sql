-- OMOP CDM death -> canonical death (same columns).
SELECT
    raw._record,
    field_text(raw.person_id) AS person_id,
    iso_date(raw.death_date) AS death_date
FROM _raw_source AS raw
