-- Events of the composite phenotypes of one depth ($depth): the events of their all_of parts, for the persons in
-- the composite, under the composite's id (so event_count in person_summary equals the composite's event rows).
INSERT INTO phenotype.events
    (person_id, phenotype_id, event_date, value, unit, laterality, source_table, vocabulary, code, event_end_date)
SELECT part_events.person_id, parts.phenotype_id, part_events.event_date, part_events.value, part_events.unit,
       part_events.laterality, part_events.source_table, part_events.vocabulary, part_events.code,
       part_events.event_end_date
FROM phenotype.composite_components AS parts
JOIN phenotype.person_summary AS composite_summary ON composite_summary.phenotype_id = parts.phenotype_id
JOIN phenotype.events AS part_events
  ON part_events.phenotype_id = parts.component_id
 AND part_events.person_id = composite_summary.person_id
WHERE parts.depth = $depth AND parts.role = 'all_of';
