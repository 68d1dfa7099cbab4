-- person_summary for phenotypes computed from records: the persons who meet the rule, minus persons with any
-- record (at any time) of a phenotype listed in the rule's exclude_persons_with. An exclusion with a window
-- (window_days) removed only the records near an excluding record, before the rule was judged
-- (record_exclusions.sql).
INSERT INTO phenotype.person_summary (person_id, phenotype_id, first_date, end_date, last_date, event_count, version)
SELECT rule_met.person_id, rule_met.phenotype_id, rule_met.first_date, rule_met.end_date, rule_met.last_date, rule_met.event_count,
       definitions.version
FROM phenotype_rule_met AS rule_met
JOIN phenotype.definitions ON definitions.phenotype_id = rule_met.phenotype_id
WHERE NOT EXISTS (
    SELECT 1
    FROM phenotype.person_exclusions
    JOIN phenotype.events
      ON events.phenotype_id = person_exclusions.excluding_phenotype_id
    WHERE person_exclusions.phenotype_id = rule_met.phenotype_id
      AND person_exclusions.window_days IS NULL
      AND events.person_id = rule_met.person_id
)
ORDER BY rule_met.phenotype_id, rule_met.person_id;
