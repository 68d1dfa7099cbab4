-- The extract's own vocabulary tables as small work tables. The reader relations are filled in by
-- pipelines/ingest/formats/omop.py (read_csv/read_parquet of CONCEPT, CONCEPT_RELATIONSHIP, CONCEPT_ANCESTOR, or an
-- empty relation when the extract ships none). Concept 0 ("No matching concept") is left out so it never resolves.
--
-- One row per concept_id: every clinical table joins the concept table on concept_id, so a repeated id (a second
-- row with another concept_class_id, say) would turn one event into two. The first row in file order is kept; the
-- repeated ids are listed in omop_vocabulary_concept_defects for the ingest to report as a vocabulary defect.
CREATE OR REPLACE TEMP TABLE omop_vocabulary_concept_rows AS
SELECT
    row_number() OVER () AS file_row,
    field_text(concept_id) AS concept_id,
    field_text(vocabulary_id) AS vocabulary_id,
    canonical_code(field_text(vocabulary_id), field_text(concept_code)) AS concept_code,
    field_text(concept_class_id) AS concept_class_id
FROM omop_concept_source;

CREATE OR REPLACE TEMP TABLE omop_vocabulary_concept_defects AS
SELECT concept_id, count(*) AS concept_rows,
       count(DISTINCT (vocabulary_id, concept_code, concept_class_id)) AS distinct_rows
FROM omop_vocabulary_concept_rows
WHERE concept_id IS NOT NULL
GROUP BY concept_id
HAVING count(*) > 1;

CREATE OR REPLACE TEMP TABLE omop_vocabulary_concept AS
SELECT concept_id, vocabulary_id, concept_code, concept_class_id
FROM omop_vocabulary_concept_rows
WHERE concept_id <> '0' AND concept_code IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY concept_id ORDER BY file_row) = 1;

DROP TABLE omop_vocabulary_concept_rows;

-- The RxNorm links from a drug product up to its ingredients, as OHDSI's vocabulary build derives drug ancestry:
-- branded drug 'Tradename of' clinical drug, pack 'Contains' drug, quantified drug 'Quantified form of' drug, drug
-- 'Consists of' component, drug 'RxNorm is a' drug form, then 'RxNorm has ing' ingredient
-- (omop_concept_code_map.sql walks them for drug concepts concept_ancestor gives no ingredient).
CREATE OR REPLACE TEMP TABLE omop_ingredient_relationship AS
SELECT * FROM (VALUES ('RxNorm has ing'), ('Consists of'), ('Tradename of'), ('Contains'), ('Quantified form of'),
                      ('RxNorm is a')) AS links(relationship_id);

-- The relationships the ingest follows: 'Maps to' (a source code to its standard concept) and the RxNorm links.
CREATE OR REPLACE TEMP TABLE omop_vocabulary_relationship AS
SELECT DISTINCT field_text(concept_id_1) AS concept_id_1, field_text(concept_id_2) AS concept_id_2,
       field_text(relationship_id) AS relationship_id
FROM omop_concept_relationship_source
WHERE (field_text(relationship_id) = 'Maps to'
       OR field_text(relationship_id) IN (SELECT relationship_id FROM omop_ingredient_relationship))
  AND field_text(invalid_reason) IS NULL
  AND field_text(concept_id_1) <> field_text(concept_id_2);

CREATE OR REPLACE TEMP TABLE omop_vocabulary_ancestor AS
SELECT DISTINCT field_text(ancestor_concept_id) AS ancestor_concept_id,
       field_text(descendant_concept_id) AS descendant_concept_id
FROM omop_concept_ancestor_source
WHERE field_text(ancestor_concept_id) <> field_text(descendant_concept_id);
