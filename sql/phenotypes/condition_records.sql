-- Every condition record that carries a code of a condition phenotype: ONE pass over staging.condition_occurrence
-- for all condition phenotypes together.
--
-- How: the distinct codes present in the table (a few thousand, however many records there are) are matched
-- against phenotype.code_list first; the records are then joined to that small code -> phenotype map with one
-- hash join on (vocabulary, code). The visit type is kept for the one-inpatient-or-two-outpatient rule.
CREATE TEMP TABLE phenotype_condition_records AS
WITH
codes_present AS (
    SELECT DISTINCT condition_vocabulary AS vocabulary, condition_code AS code
    FROM staging.condition_occurrence
),
-- Each present code with every (vocabulary, code) it stands for: itself, plus its pairs in
-- vocabulary.concept_code_map (an OMOP clinical drug stands for its ingredients and ATC classes, a SNOMED concept for the
-- ICD10CM codes mapped to it; the map is empty for canonical extracts). Grouping by the present code below keeps
-- every record once per phenotype. See docs/extract_formats.md.
codes_meant AS (
    SELECT vocabulary, code, vocabulary AS meant_vocabulary, code AS meant_code
    FROM codes_present
    UNION
    SELECT codes_present.vocabulary, codes_present.code, concept_code_map.mapped_vocabulary,
           concept_code_map.mapped_code
    FROM codes_present
    JOIN vocabulary.concept_code_map
      ON concept_code_map.vocabulary = codes_present.vocabulary AND concept_code_map.code = codes_present.code
),
condition_code_list AS (
    SELECT code_list.phenotype_id, code_list.vocabulary, code_list.code, code_list.match_type, code_list.excluded
    FROM phenotype.code_list
    JOIN phenotype.definitions ON definitions.phenotype_id = code_list.phenotype_id
    WHERE definitions.domain = 'condition'
),
-- A present code matches a listed code when it equals it, or, for prefixes, starts with it.
code_matches AS (
    SELECT codes_present.vocabulary, codes_present.code, condition_code_list.phenotype_id, condition_code_list.excluded
    FROM codes_meant AS codes_present
    JOIN condition_code_list
      ON condition_code_list.vocabulary = codes_present.meant_vocabulary
     AND (condition_code_list.code = codes_present.meant_code
          OR (condition_code_list.match_type = 'prefix'
              AND substr(codes_present.meant_code, 1, length(condition_code_list.code)) = condition_code_list.code))
),
-- Keep a (code, phenotype) pair only when none of the phenotype's excluded codes matches the code too.
code_to_phenotype AS (
    SELECT vocabulary, code, phenotype_id
    FROM code_matches
    GROUP BY vocabulary, code, phenotype_id
    HAVING max(CASE WHEN excluded THEN 1 ELSE 0 END) = 0
)
SELECT
    condition_occurrence.person_id,
    code_to_phenotype.phenotype_id,
    condition_occurrence.condition_start_date AS event_date,
    condition_occurrence.condition_vocabulary AS vocabulary,
    condition_occurrence.condition_code AS code,
    visit_occurrence.visit_type  -- NULL when the record names no visit, or a visit the extract does not have
FROM staging.condition_occurrence
JOIN code_to_phenotype
  ON code_to_phenotype.vocabulary = condition_occurrence.condition_vocabulary
 AND code_to_phenotype.code = condition_occurrence.condition_code
LEFT JOIN staging.visit_occurrence
  ON visit_occurrence.visit_occurrence_id = condition_occurrence.visit_occurrence_id;
