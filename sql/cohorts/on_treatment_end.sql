-- New-user designs: the last day of on-treatment follow-up of each person in the study population (LEGEND's and
-- OHDSI CohortMethod's on-treatment time at risk):
--   discontinuation  the end of the first exposure era of the drug started at index (exposure_eras.sql over
--                    on_treatment_fills.sql: its fills from index on, joined within the $grace_days persistence
--                    window), its last day of supply plus $grace_days days;
--   switch           the day before the first fill of the other study drug after index.
-- on_treatment_end is the earlier of the two (the statistics stage also stops at followup_end). Persons of designs
-- without a treatment (first_visit, lab_test) have no row.
WITH first_era AS (
    SELECT p.person_id,
           p.index_date,
           p.index_date + CAST(e.era_end_day AS INTEGER) AS discontinuation_end,
           CASE p.treatment WHEN 1 THEN $comparator WHEN 0 THEN $target END AS other_drug
    FROM exposure_eras AS e
    JOIN eligibility AS p ON p.person_number = e.person_number
    WHERE e.era = 1
),
switch AS (
    SELECT f.person_id, min(d.event_date) AS other_drug_start
    FROM first_era AS f
    JOIN phenotype_event_dates AS d
      ON d.person_id = f.person_id AND d.phenotype_id = f.other_drug AND d.event_date > f.index_date
    GROUP BY f.person_id
)
SELECT f.person_id,
       least(f.discontinuation_end, s.other_drug_start - 1) AS on_treatment_end
FROM first_era AS f
LEFT JOIN switch AS s ON s.person_id = f.person_id
