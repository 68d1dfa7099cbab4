-- Synthea patients with a DEATHDATE -> canonical death. Only those rows are the death table's input records.
SELECT
    raw._record,
    field_text(raw.Id) AS person_id,
    iso_date(raw.DEATHDATE) AS death_date
FROM _raw_source AS raw
WHERE field_text(raw.DEATHDATE) IS NOT NULL
