-- The extract's own vocabulary tables as three small work tables. The reader relations are filled in by
-- pipelines/ingest/formats/omop.py (read_csv/read_parquet of CONCEPT, CONCEPT_RELATIONSHIP, CONCEPT_ANCESTOR, or an
-- empty relation when the extract ships none). Concept 0 ("No matching concept") is left out so it never resolves.
CREATE OR REPLACE TEMP TABLE omop_vocabulary_concept AS
SELECT DISTINCT
    field_text(concept_id) AS concept_id,
    field_text(vocabulary_id) AS vocabulary_id,
    canonical_code(field_text(vocabulary_id), field_text(concept_code)) AS concept_code,
    field_text(concept_class_id) AS concept_class_id
FROM omop_concept_source
WHERE field_text(concept_id) <> '0' AND field_text(concept_code) IS NOT NULL;

CREATE OR REPLACE TEMP TABLE omop_vocabulary_relationship AS
SELECT DISTINCT field_text(concept_id_1) AS concept_id_1, field_text(concept_id_2) AS concept_id_2,
       field_text(relationship_id) AS relationship_id
FROM omop_concept_relationship_source
WHERE field_text(relationship_id) IN ('Maps to', 'RxNorm has ing')
  AND field_text(invalid_reason) IS NULL;

CREATE OR REPLACE TEMP TABLE omop_vocabulary_ancestor AS
SELECT DISTINCT field_text(ancestor_concept_id) AS ancestor_concept_id,
       field_text(descendant_concept_id) AS descendant_concept_id
FROM omop_concept_ancestor_source
WHERE field_text(ancestor_concept_id) <> field_text(descendant_concept_id);
