-- Which phenotypes each code present in the staging tables counts for: the one place where codes are matched, for
-- the condition, drug and measurement records alike (condition_records.sql, drug_records.sql and
-- measurement_records.sql join their records to this small table with one hash join on (domain, vocabulary, code)).
--
-- How: the distinct codes present in each table (a few thousand, however many records there are) are matched
-- against phenotype.code_list; the records never are. Phenotypes only see codes of their own domain's table.
CREATE TEMP TABLE phenotype_code_to_phenotype AS
WITH
codes_present AS (
    SELECT DISTINCT 'condition' AS domain, condition_vocabulary AS vocabulary, condition_code AS code
    FROM staging.condition_occurrence
    UNION ALL
    SELECT DISTINCT 'drug', drug_vocabulary, drug_code
    FROM staging.drug_exposure
    UNION ALL
    SELECT DISTINCT 'measurement', measurement_vocabulary, measurement_code
    FROM staging.measurement
),
-- Each present code with every (vocabulary, code) it stands for: itself, plus its pairs in vocabulary.concept_code_map
-- (an OMOP clinical drug stands for its ingredients and ATC classes, a SNOMED concept for the ICD10CM codes mapped to
-- it and for its SNOMED ancestors; the map is empty for canonical extracts). See docs/extract_formats.md.
codes_meant AS (
    SELECT domain, vocabulary, code, vocabulary AS meant_vocabulary, code AS meant_code, 'itself' AS mapping
    FROM codes_present
    UNION ALL
    SELECT codes_present.domain, codes_present.vocabulary, codes_present.code, concept_code_map.mapped_vocabulary,
           concept_code_map.mapped_code, concept_code_map.mapping
    FROM codes_present
    JOIN vocabulary.concept_code_map
      ON concept_code_map.vocabulary = codes_present.vocabulary AND concept_code_map.code = codes_present.code
),
domain_code_list AS (
    SELECT definitions.domain, code_list.phenotype_id, code_list.vocabulary, code_list.code, code_list.match_type,
           code_list.excluded
    FROM phenotype.code_list
    JOIN phenotype.definitions ON definitions.phenotype_id = code_list.phenotype_id
),
-- A present code matches a listed code when it (or a pair it stands for) equals it; for prefixes, starts with it.
-- A SNOMED ancestor pair counts only for codes listed with their descendants (as Circe's includeDescendants).
code_matches AS (
    SELECT codes_meant.domain, codes_meant.vocabulary, codes_meant.code, domain_code_list.phenotype_id,
           domain_code_list.excluded
    FROM codes_meant
    JOIN domain_code_list
      ON domain_code_list.domain = codes_meant.domain
     AND domain_code_list.vocabulary = codes_meant.meant_vocabulary
     AND ((domain_code_list.code = codes_meant.meant_code
           AND (codes_meant.mapping <> 'SNOMED ancestor' OR domain_code_list.match_type = 'descendants'))
          OR (domain_code_list.match_type = 'prefix'
              AND substr(codes_meant.meant_code, 1, length(domain_code_list.code)) = domain_code_list.code))
)
-- Keep a (code, phenotype) pair only when none of the phenotype's excluded codes matches the code too.
SELECT domain, vocabulary, code, phenotype_id
FROM code_matches
GROUP BY domain, vocabulary, code, phenotype_id
HAVING max(CASE WHEN excluded THEN 1 ELSE 0 END) = 0;
