-- The one rule for records whose end date is before their start date (observation periods, visits, conditions,
-- drug exposures; measurements and procedures have no end date). Such a record is implausible: the OMOP CDM requires
-- an end date on or after the start date (Themis, drug_exposure_end_date), and the OHDSI Data Quality Dashboard
-- counts the violations (plausibleStartBeforeEnd). It is loaded, and the data-quality check <end>_not_before_start
-- reports it (pipelines/quality/suites.py: its WHERE is the negation of this macro), but no phenotype or cohort counts
-- it: not as a diagnosis, fill or index visit, not as the inpatient visit of a diagnosis, not as observation time.
-- docs/data_quality.md, "Records that end before they start".
--
-- Run first by the phenotype stage (pipelines/phenotypes/compiler.py) and the cohort stage
-- (pipelines/cohorts/build.py); on Spark the engine expands the macro into the statements that call it.
CREATE OR REPLACE TEMP MACRO end_not_before_start(start_date, end_date) AS
    (end_date IS NULL OR end_date >= start_date);
