-- Every drug record that carries a code of a drug phenotype: ONE pass over staging.drug_exposure for all drug
-- phenotypes together (same approach as condition_records.sql: one hash join to the code -> phenotype map of
-- code_to_phenotype.sql). The event date of a drug record is the start of the exposure (prescription or dispensing
-- date). A fill that ends before it starts does not count (sql/record_spans.sql).
--
-- Why a view, read by events.sql straight into phenotype.events (and once more by record_exclusions.sql for the few
-- phenotypes with a windowed exclusion), and not a work table: drug fills are most of the records (60 million of 70
-- at 1 million patients), every drug rule counts them as they are (min_records), and a temporary work table is held
-- uncompressed: at 1 million patients under a 1 GB memory limit it spilled 2.5 GB before being copied into events,
-- and at 10 million the phenotype step had spilled 40 GB when the disk filled.
CREATE TEMP VIEW phenotype_drug_records AS
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
JOIN phenotype_code_to_phenotype AS code_to_phenotype
  ON code_to_phenotype.domain = 'drug'
 AND code_to_phenotype.vocabulary = drug_exposure.drug_vocabulary
 AND code_to_phenotype.code = drug_exposure.drug_code
WHERE end_not_before_start(drug_exposure.drug_exposure_start_date, drug_exposure.drug_exposure_end_date);
