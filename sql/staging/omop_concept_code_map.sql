-- vocabulary.concept_code_map for an OMOP extract: every (vocabulary, code) pair a staged code stands for besides
-- itself, from the extract's own vocabulary tables. The phenotype record models match phenotype codes against a
-- staged code OR any of its mapped pairs, and group by the staged code, so an event counts once per phenotype
-- however many of its pairs match. Built from the distinct staged codes (thousands), never from the events.
--
--   source code       an ICD10CM (or other non-standard) concept that 'Maps to' the staged standard concept:
--                     SNOMED 40930008 stands for every ICD10CM code mapped to it
--   ingredient        an RxNorm ingredient ancestor of a drug concept (concept_ancestor); for a drug concept with
--                     none there (no concept_ancestor shipped, or an incomplete one), the ingredients reached
--                     through the RxNorm links of omop_ingredient_relationship (omop_vocabulary.sql).
--                     omop_drug_ingredient keeps the route each took, for the ingest's report.
--   ATC class         an ATC ancestor of a drug concept (concept_ancestor), at every ATC level
--   SNOMED ancestor   a SNOMED ancestor of a SNOMED concept (concept_ancestor): counts only for phenotype codes
--                     listed with their descendants (match: descendants)
CREATE SCHEMA IF NOT EXISTS vocabulary;
CREATE OR REPLACE TEMP TABLE omop_staged_concept AS
WITH staged_codes AS (
    SELECT DISTINCT condition_vocabulary AS vocabulary, condition_code AS code FROM staging.condition_occurrence
    UNION
    SELECT DISTINCT drug_vocabulary, drug_code FROM staging.drug_exposure
    UNION
    SELECT DISTINCT measurement_vocabulary, measurement_code FROM staging.measurement
    UNION
    SELECT DISTINCT procedure_vocabulary, procedure_code FROM staging.procedure_occurrence
)
SELECT staged_codes.vocabulary, staged_codes.code, concept.concept_id
FROM staged_codes
JOIN omop_vocabulary_concept AS concept
  ON concept.vocabulary_id = staged_codes.vocabulary AND concept.concept_code = staged_codes.code;

-- Ingredients and ATC classes of the staged drug concepts, with the route: 'concept_ancestor' or, for a concept
-- concept_ancestor gives no ingredient, 'RxNorm relationships'.
CREATE OR REPLACE TEMP TABLE omop_drug_ingredient AS
WITH RECURSIVE
ancestor_ingredient AS (
    SELECT staged.vocabulary, staged.code, ancestor.vocabulary_id AS mapped_vocabulary,
           ancestor.concept_code AS mapped_code,
           CASE WHEN ancestor.vocabulary_id = 'ATC' THEN 'ATC class' ELSE 'ingredient' END AS mapping,
           'concept_ancestor' AS route
    FROM omop_staged_concept AS staged
    JOIN omop_vocabulary_ancestor AS ancestry ON ancestry.descendant_concept_id = staged.concept_id
    JOIN omop_vocabulary_concept AS ancestor ON ancestor.concept_id = ancestry.ancestor_concept_id
    WHERE (ancestor.vocabulary_id = 'RxNorm' AND ancestor.concept_class_id = 'Ingredient')
       OR ancestor.vocabulary_id = 'ATC'
),
-- Every concept the RxNorm chain of such a drug concept passes through, at most six links from it (pack ->
-- branded drug -> clinical drug -> component -> ingredient is four).
rxnorm_chain(concept_id, reached_id, links) AS (
    SELECT DISTINCT staged.concept_id, staged.concept_id, 0
    FROM omop_staged_concept AS staged
    WHERE NOT EXISTS (SELECT 1 FROM ancestor_ingredient AS a
                      WHERE a.vocabulary = staged.vocabulary AND a.code = staged.code AND a.mapping = 'ingredient')
      AND EXISTS (SELECT 1 FROM staging.drug_exposure AS drug
                  WHERE drug.drug_vocabulary = staged.vocabulary AND drug.drug_code = staged.code)
    UNION
    SELECT rxnorm_chain.concept_id, relationship.concept_id_2, rxnorm_chain.links + 1
    FROM rxnorm_chain
    JOIN omop_vocabulary_relationship AS relationship ON relationship.concept_id_1 = rxnorm_chain.reached_id
    WHERE relationship.relationship_id IN (SELECT relationship_id FROM omop_ingredient_relationship)
      AND rxnorm_chain.links < 6
)
SELECT * FROM ancestor_ingredient
UNION
SELECT staged.vocabulary, staged.code, ingredient.vocabulary_id, ingredient.concept_code, 'ingredient',
       'RxNorm relationships'
FROM omop_staged_concept AS staged
JOIN rxnorm_chain ON rxnorm_chain.concept_id = staged.concept_id AND rxnorm_chain.links > 0
JOIN omop_vocabulary_concept AS ingredient ON ingredient.concept_id = rxnorm_chain.reached_id
WHERE ingredient.vocabulary_id = 'RxNorm' AND ingredient.concept_class_id = 'Ingredient';

DROP TABLE IF EXISTS vocabulary.concept_code_map;
CREATE TABLE vocabulary.concept_code_map AS
WITH mapped AS (
    SELECT staged.vocabulary, staged.code, source_concept.vocabulary_id AS mapped_vocabulary,
           source_concept.concept_code AS mapped_code, 'source code' AS mapping
    FROM omop_staged_concept AS staged
    JOIN omop_vocabulary_relationship AS relationship
      ON relationship.concept_id_2 = staged.concept_id AND relationship.relationship_id = 'Maps to'
    JOIN omop_vocabulary_concept AS source_concept ON source_concept.concept_id = relationship.concept_id_1
    UNION
    SELECT vocabulary, code, mapped_vocabulary, mapped_code, mapping FROM omop_drug_ingredient
    UNION
    SELECT staged.vocabulary, staged.code, ancestor.vocabulary_id, ancestor.concept_code, 'SNOMED ancestor'
    FROM omop_staged_concept AS staged
    JOIN omop_vocabulary_ancestor AS ancestry ON ancestry.descendant_concept_id = staged.concept_id
    JOIN omop_vocabulary_concept AS ancestor ON ancestor.concept_id = ancestry.ancestor_concept_id
    WHERE staged.vocabulary = 'SNOMED' AND ancestor.vocabulary_id = 'SNOMED'
)
SELECT DISTINCT vocabulary, code, mapped_vocabulary, mapped_code, mapping
FROM mapped
WHERE NOT (mapped_vocabulary = vocabulary AND mapped_code = code)
ORDER BY vocabulary, code, mapped_vocabulary, mapped_code;
