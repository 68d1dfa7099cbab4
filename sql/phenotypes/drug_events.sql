-- Every drug record that carries a code of a drug phenotype, straight into phenotype.events: ONE pass over
-- staging.drug_exposure for all drug phenotypes together (same approach as condition_records.sql: match the distinct
-- codes present first, then one hash join). The event date of a drug record is the start of the exposure
-- (prescription or dispensing date).
--
-- Why straight into events, with no work table in between: drug fills are most of the events (60 million of 70 at
-- 1 million patients), every drug rule counts them as they are (min_records), and a temporary work table is held
-- uncompressed: at 1 million patients under a 1 GB memory limit it spilled 2.5 GB before being copied into events,
-- and at 10 million the phenotype step had spilled 40 GB when the disk filled.
INSERT INTO phenotype.events
    (person_id, phenotype_id, event_date, value, unit, laterality, source_table, vocabulary, code, event_end_date)
WITH
codes_present AS (
    SELECT DISTINCT drug_vocabulary AS vocabulary, drug_code AS code
    FROM staging.drug_exposure
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
drug_code_list AS (
    SELECT code_list.phenotype_id, code_list.vocabulary, code_list.code, code_list.match_type, code_list.excluded
    FROM phenotype.code_list
    JOIN phenotype.definitions ON definitions.phenotype_id = code_list.phenotype_id
    WHERE definitions.domain = 'drug'
),
code_matches AS (
    SELECT codes_present.vocabulary, codes_present.code, drug_code_list.phenotype_id, drug_code_list.excluded
    FROM codes_meant AS codes_present
    JOIN drug_code_list
      ON drug_code_list.vocabulary = codes_present.meant_vocabulary
     AND (drug_code_list.code = codes_present.meant_code
          OR (drug_code_list.match_type = 'prefix'
              AND substr(codes_present.meant_code, 1, length(drug_code_list.code)) = drug_code_list.code))
),
code_to_phenotype AS (
    SELECT vocabulary, code, phenotype_id
    FROM code_matches
    GROUP BY vocabulary, code, phenotype_id
    HAVING max(CASE WHEN excluded THEN 1 ELSE 0 END) = 0
)
SELECT
    drug_exposure.person_id,
    code_to_phenotype.phenotype_id,
    drug_exposure.drug_exposure_start_date AS event_date,
    CAST(NULL AS DOUBLE) AS value,
    CAST(NULL AS VARCHAR) AS unit,
    CAST(NULL AS VARCHAR) AS laterality,
    'drug_exposure' AS source_table,
    drug_exposure.drug_vocabulary AS vocabulary,
    drug_exposure.drug_code AS code,
    -- Carried here so that the cohorts' current-use windows need not join the fills back to staging.
    drug_exposure.drug_exposure_end_date AS event_end_date
FROM staging.drug_exposure
JOIN code_to_phenotype
  ON code_to_phenotype.vocabulary = drug_exposure.drug_vocabulary
 AND code_to_phenotype.code = drug_exposure.drug_code;
