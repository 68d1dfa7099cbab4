-- vocabulary.concept_code_map for extracts whose staged codes stand only for themselves (canonical, site mapping,
-- Synthea): empty, so the phenotype record models match exactly as before.
CREATE SCHEMA IF NOT EXISTS vocabulary;
DROP TABLE IF EXISTS vocabulary.concept_code_map;
CREATE TABLE vocabulary.concept_code_map (
    vocabulary VARCHAR, code VARCHAR, mapped_vocabulary VARCHAR, mapped_code VARCHAR, mapping VARCHAR
);
