-- Exclusions with a window (a min_records rule's exclusion_window_days, phenotype.person_exclusions.window_days):
-- a record with a record of an excluding phenotype within window_days days before or after it is not a record of
-- the phenotype (as a Circe correlated criterion "within N days before and after"), so it leaves phenotype.events
-- before the rule is judged (rule_met.sql), and the person keeps the phenotype's records further away. Exclusions
-- without a window exclude the person, at any time (person_summary.sql).
-- Excluding phenotypes are computed from records (the loader refuses composites), so their records are all in
-- phenotype.events by now; a windowed exclusion's own records are never another's excluding records here, because
-- records are matched to their phenotype before any of them is removed.
-- The IN list comes first so that only the records of phenotypes with a windowed exclusion are looked at: the
-- correlated EXISTS alone is decorrelated over every record of phenotype.events (43 s of 71M records at 1,000,000
-- patients, against under 1 s with the list; session 11).
DELETE FROM phenotype.events
WHERE events.phenotype_id IN (
    SELECT phenotype_id FROM phenotype.person_exclusions WHERE window_days IS NOT NULL
)
  AND EXISTS (
    SELECT 1
    FROM phenotype.person_exclusions AS exclusion
    JOIN phenotype.events AS excluding
      ON excluding.phenotype_id = exclusion.excluding_phenotype_id
    WHERE exclusion.phenotype_id = events.phenotype_id
      AND exclusion.window_days IS NOT NULL
      AND excluding.person_id = events.person_id
      AND abs(date_diff('day', excluding.event_date, events.event_date)) <= exclusion.window_days
);
