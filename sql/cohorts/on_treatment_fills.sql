-- New-user designs: the fills of the drug each person of the study population started at index, from index on, as
-- the spans exposure_eras.sql joins into eras (its era_spans); on_treatment_end.sql reads the first era.
-- Days count from the index date; a fill covers its start to the end of its supply (its own day when the supply is
-- unknown); fills join while the next starts no more than $grace_days after the supply so far ends (the persistence
-- window), and the era runs on $grace_days after its last day of supply.
-- Persons and drugs by number (exposure_eras.sql): eligibility's person_number, and the treatment as the drug's
-- number (each person has the fills of one drug here).
SELECT p.person_number,
       p.treatment AS variable_number,
       date_diff('day', p.index_date, d.event_date) AS first_day,
       date_diff('day', p.index_date, coalesce(d.supply_end, d.event_date)) AS last_day,
       $grace_days::INTEGER AS join_within_days,
       $grace_days::INTEGER AS extend_days
FROM eligibility AS p
JOIN phenotype_event_dates AS d
  ON d.person_id = p.person_id
 AND d.phenotype_id = CASE p.treatment WHEN 1 THEN $target WHEN 0 THEN $comparator END
 AND d.event_date >= p.index_date
WHERE p.exclusion_reason IS NULL AND p.treatment IS NOT NULL
