-- vocabulary.concept_code_map for an OMOP extract: every (vocabulary, code) pair a staged code stands for besides
-- itself, from the extract's own vocabulary tables. The phenotype record models match phenotype codes against a
-- staged code OR any of its mapped pairs, and group by the staged code, so an event counts once per phenotype
-- however many of its pairs match. Built from the distinct staged codes (thousands), never from the events.
--
--   source code       an ICD10CM (or other non-standard) concept that 'Maps to' the staged standard concept:
--                     SNOMED 40930008 stands for every ICD10CM code mapped to it
--   ingredient        an RxNorm ingredient ancestor (concept_ancestor) or direct 'RxNorm has ing' of a drug concept:
--                     a clinical drug stands for its ingredients
--   ATC class         an ATC ancestor of a drug concept (concept_ancestor), at every ATC level
CREATE SCHEMA IF NOT EXISTS vocabulary;
CREATE OR REPLACE TABLE vocabulary.concept_code_map AS
WITH
staged_codes AS (
    SELECT DISTINCT condition_vocabulary AS vocabulary, condition_code AS code FROM staging.condition_occurrence
    UNION
    SELECT DISTINCT drug_vocabulary, drug_code FROM staging.drug_exposure
    UNION
    SELECT DISTINCT measurement_vocabulary, measurement_code FROM staging.measurement
    UNION
    SELECT DISTINCT procedure_vocabulary, procedure_code FROM staging.procedure_occurrence
),
staged_concepts AS (
    SELECT staged_codes.vocabulary, staged_codes.code, concept.concept_id
    FROM staged_codes
    JOIN omop_vocabulary_concept AS concept
      ON concept.vocabulary_id = staged_codes.vocabulary AND concept.concept_code = staged_codes.code
),
mapped AS (
    SELECT staged_concepts.vocabulary, staged_concepts.code, source_concept.vocabulary_id AS mapped_vocabulary,
           source_concept.concept_code AS mapped_code, 'source code' AS mapping
    FROM staged_concepts
    JOIN omop_vocabulary_relationship AS relationship
      ON relationship.concept_id_2 = staged_concepts.concept_id AND relationship.relationship_id = 'Maps to'
    JOIN omop_vocabulary_concept AS source_concept ON source_concept.concept_id = relationship.concept_id_1
    UNION
    SELECT staged_concepts.vocabulary, staged_concepts.code, ingredient.vocabulary_id, ingredient.concept_code,
           'ingredient'
    FROM staged_concepts
    JOIN omop_vocabulary_relationship AS relationship
      ON relationship.concept_id_1 = staged_concepts.concept_id AND relationship.relationship_id = 'RxNorm has ing'
    JOIN omop_vocabulary_concept AS ingredient ON ingredient.concept_id = relationship.concept_id_2
    WHERE ingredient.vocabulary_id = 'RxNorm' AND ingredient.concept_class_id = 'Ingredient'
    UNION
    SELECT staged_concepts.vocabulary, staged_concepts.code, ancestor.vocabulary_id, ancestor.concept_code,
           CASE WHEN ancestor.vocabulary_id = 'ATC' THEN 'ATC class' ELSE 'ingredient' END
    FROM staged_concepts
    JOIN omop_vocabulary_ancestor AS ancestry ON ancestry.descendant_concept_id = staged_concepts.concept_id
    JOIN omop_vocabulary_concept AS ancestor ON ancestor.concept_id = ancestry.ancestor_concept_id
    WHERE (ancestor.vocabulary_id = 'RxNorm' AND ancestor.concept_class_id = 'Ingredient')
       OR ancestor.vocabulary_id = 'ATC'
)
SELECT DISTINCT vocabulary, code, mapped_vocabulary, mapped_code, mapping
FROM mapped
WHERE NOT (mapped_vocabulary = vocabulary AND mapped_code = code)
ORDER BY vocabulary, code, mapped_vocabulary, mapped_code;
