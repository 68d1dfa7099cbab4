-- Work tables and views of one run (temporary: they live as long as the connection). Dropped before and after a run.
DROP TABLE IF EXISTS phenotype_code_to_phenotype;
DROP TABLE IF EXISTS phenotype_condition_records;
DROP TABLE IF EXISTS phenotype_measurement_records;
DROP TABLE IF EXISTS phenotype_windowed_records;
DROP TABLE IF EXISTS phenotype_rule_met;
DROP VIEW IF EXISTS phenotype_drug_records;
DROP VIEW IF EXISTS phenotype_records;
