-- Index rule first_visit, its candidates (index_first_candidate.sql picks the index date): every visit of the study's
-- visit types (all types when $visit_types is empty) in the study period that lies in a merged observation period,
-- with that period. A visit that ends before it starts is no index visit (sql/record_spans.sql).
SELECT v.person_id, v.visit_start_date AS candidate_date, op.period_start, op.period_end
FROM staging.visit_occurrence AS v
JOIN observation_periods_merged AS op
  ON op.person_id = v.person_id AND v.visit_start_date BETWEEN op.period_start AND op.period_end
WHERE v.visit_start_date BETWEEN $study_start AND $study_end
  AND (array_length($visit_types) = 0 OR list_contains($visit_types, v.visit_type))
  AND end_not_before_start(v.visit_start_date, v.visit_end_date)
