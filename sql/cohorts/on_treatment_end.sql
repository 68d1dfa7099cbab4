-- New-user designs: the last day of on-treatment follow-up of each person in the study population (LEGEND's and
-- OHDSI CohortMethod's on-treatment time at risk):
--   discontinuation  the end of the exposure era of the drug started at index: its fills from index on, joined
--                    while the next fill starts no more than $grace_days days after the supply so far ends (the
--                    persistence window), plus $grace_days days;
--   switch           the day before the first fill of the other study drug after index.
-- on_treatment_end is the earlier of the two (the statistics stage also stops at followup_end). Persons of designs
-- without a treatment (first_visit, lab_test) have no row.
WITH population AS (
    SELECT person_id,
           index_date,
           CASE treatment WHEN 1 THEN $target WHEN 0 THEN $comparator END AS started_drug,
           CASE treatment WHEN 1 THEN $comparator WHEN 0 THEN $target END AS other_drug
    FROM eligibility
    WHERE exclusion_reason IS NULL AND treatment IS NOT NULL
),
started_drug_fills AS (
    SELECT p.person_id, d.event_date AS fill_start, coalesce(d.supply_end, d.event_date) AS supply_end
    FROM population AS p
    JOIN phenotype_event_dates AS d
      ON d.person_id = p.person_id AND d.phenotype_id = p.started_drug AND d.event_date >= p.index_date
),
fills_with_supply_before AS (
    SELECT person_id, fill_start, supply_end,
           max(supply_end) OVER (PARTITION BY person_id ORDER BY fill_start
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS supplied_until
    FROM started_drug_fills
),
first_gap AS (
    -- The first fill that starts after the persistence window: it and later fills are a new era.
    SELECT person_id, min(fill_start) AS restart
    FROM fills_with_supply_before
    WHERE fill_start > supplied_until + $grace_days::INTEGER
    GROUP BY person_id
),
first_era_end AS (
    SELECT f.person_id, max(f.supply_end) AS era_supply_end
    FROM fills_with_supply_before AS f
    LEFT JOIN first_gap AS g ON g.person_id = f.person_id
    WHERE g.restart IS NULL OR f.fill_start < g.restart
    GROUP BY f.person_id
),
switch AS (
    SELECT p.person_id, min(d.event_date) AS other_drug_start
    FROM population AS p
    JOIN phenotype_event_dates AS d
      ON d.person_id = p.person_id AND d.phenotype_id = p.other_drug AND d.event_date > p.index_date
    GROUP BY p.person_id
)
SELECT p.person_id,
       least(e.era_supply_end + $grace_days::INTEGER, s.other_drug_start - 1) AS on_treatment_end
FROM population AS p
JOIN first_era_end AS e ON e.person_id = p.person_id
LEFT JOIN switch AS s ON s.person_id = p.person_id
