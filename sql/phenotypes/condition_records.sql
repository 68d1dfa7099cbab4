-- Every condition record that carries a code of a condition phenotype: ONE pass over staging.condition_occurrence
-- for all condition phenotypes together.
--
-- How: the records are joined to the small code -> phenotype map (code_to_phenotype.sql, the codes present matched
-- once) with one hash join on (vocabulary, code). The visit type is kept for the one-inpatient-or-two-outpatient rule.
-- A record, or a visit, that ends before it starts does not count (sql/record_spans.sql): such a visit does not
-- make its diagnoses inpatient ones.
CREATE TEMP TABLE phenotype_condition_records AS
SELECT
    condition_occurrence.person_id,
    code_to_phenotype.phenotype_id,
    condition_occurrence.condition_start_date AS event_date,
    condition_occurrence.condition_vocabulary AS vocabulary,
    condition_occurrence.condition_code AS code,
    visit_occurrence.visit_type  -- NULL when the record names no visit, or a visit the extract does not have
FROM staging.condition_occurrence
JOIN phenotype_code_to_phenotype AS code_to_phenotype
  ON code_to_phenotype.domain = 'condition'
 AND code_to_phenotype.vocabulary = condition_occurrence.condition_vocabulary
 AND code_to_phenotype.code = condition_occurrence.condition_code
LEFT JOIN staging.visit_occurrence
  ON visit_occurrence.visit_occurrence_id = condition_occurrence.visit_occurrence_id
 AND end_not_before_start(visit_occurrence.visit_start_date, visit_occurrence.visit_end_date)
WHERE end_not_before_start(condition_occurrence.condition_start_date, condition_occurrence.condition_end_date);
