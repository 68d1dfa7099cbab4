-- First and last encounter date per Synthea patient, for the observation periods (synthea_observation_period.sql).
-- The reader relation synthea_encounters_source is created by pipelines/ingest/formats/synthea.py.
CREATE OR REPLACE TEMP TABLE synthea_encounter_span AS
SELECT field_text(PATIENT) AS patient,
       min(iso_date(START)) AS first_date,
       max(coalesce(iso_date(STOP), iso_date(START))) AS last_date
FROM synthea_encounters_source
WHERE regexp_matches(iso_date(START), '^\d{4}-\d{2}-\d{2}$')
GROUP BY 1;
