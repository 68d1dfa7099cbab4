-- Synthea patients -> canonical person. GENDER is M/F; BIRTHDATE is an ISO date.
SELECT
    raw._record,
    field_text(raw.Id) AS person_id,
    left(iso_date(raw.BIRTHDATE), 4) AS year_of_birth,
    iso_date(raw.BIRTHDATE) AS birth_date,
    field_text(raw.GENDER) AS sex,
    field_text(raw.RACE) AS race,
    field_text(raw.ETHNICITY) AS ethnicity,
    CAST(NULL AS VARCHAR) AS site_id
FROM _raw_source AS raw
