-- The phenotype schema: the definitions as loaded from phenotypes/*.yaml (filled by the load/*.sql statements) and
-- the results (events, person_summary). Every run rebuilds all of it, so a definition removed from phenotypes/
-- leaves nothing behind.

CREATE SCHEMA IF NOT EXISTS phenotype;

-- The record models read vocabulary.concept_code_map; staging databases built without the ingest
-- (tests, examples) have none, which means no code stands for another.
CREATE SCHEMA IF NOT EXISTS vocabulary;
CREATE TABLE IF NOT EXISTS vocabulary.concept_code_map (
    vocabulary VARCHAR, code VARCHAR, mapped_vocabulary VARCHAR, mapped_code VARCHAR, mapping VARCHAR
);

-- One row per phenotype file.
DROP TABLE IF EXISTS phenotype.definitions;
CREATE TABLE phenotype.definitions (
    phenotype_id VARCHAR NOT NULL PRIMARY KEY,
    name         VARCHAR NOT NULL,
    domain       VARCHAR NOT NULL,  -- condition | drug | measurement | composite
    version      INTEGER NOT NULL,
    source_file  VARCHAR NOT NULL,  -- repository-relative path of the YAML file
    sha256       VARCHAR NOT NULL,  -- of the YAML file's bytes (and a measurement's row of measurements.yaml)
    variant_of   VARCHAR            -- a sensitivity analysis's variant: the phenotype it replaces (NULL otherwise)
);

-- Every code of every phenotype. match_type 'prefix' means: the normalised staging code starts with this code;
-- 'descendants': this SNOMED concept or any descendant the extract's concept_ancestor names (bundled descendants
-- are listed as codes of their own).
-- excluded codes never count for the phenotype, even when an included prefix covers them.
DROP TABLE IF EXISTS phenotype.code_list;
CREATE TABLE phenotype.code_list (
    phenotype_id VARCHAR NOT NULL,
    vocabulary   VARCHAR NOT NULL,
    code         VARCHAR NOT NULL,
    match_type   VARCHAR NOT NULL,  -- exact | prefix | descendants
    excluded     BOOLEAN NOT NULL
);

-- The person-level rule of every phenotype.
DROP TABLE IF EXISTS phenotype.rules;
CREATE TABLE phenotype.rules (
    phenotype_id   VARCHAR NOT NULL PRIMARY KEY,
    rule_type      VARCHAR NOT NULL,  -- min_records | one_inpatient_or_two_outpatient | lowest_value | all_values | all_of
    min_records    INTEGER,           -- min_records rules
    min_days_apart INTEGER            -- one_inpatient_or_two_outpatient rules
);

-- Measurement phenotypes: canonical unit, plausible range and threshold, all in the canonical unit. The plausible
-- range includes its upper end, and its lower end unless plausible_min_inclusive is false. A NULL threshold bound
-- is open.
DROP TABLE IF EXISTS phenotype.measurement_rules;
CREATE TABLE phenotype.measurement_rules (
    phenotype_id              VARCHAR NOT NULL PRIMARY KEY,
    canonical_unit            VARCHAR NOT NULL,
    plausible_min             DOUBLE NOT NULL,
    plausible_min_inclusive   BOOLEAN NOT NULL,
    plausible_max             DOUBLE NOT NULL,
    threshold_lower           DOUBLE,
    threshold_lower_inclusive BOOLEAN,
    threshold_upper           DOUBLE,
    threshold_upper_inclusive BOOLEAN
);

-- Accepted units per measurement phenotype (normalised: trimmed, no spaces, lower-case) and the factor that turns
-- a value in that unit into the canonical unit.
DROP TABLE IF EXISTS phenotype.unit_conversions;
CREATE TABLE phenotype.unit_conversions (
    phenotype_id VARCHAR NOT NULL,
    unit         VARCHAR NOT NULL,
    factor       DOUBLE NOT NULL
);

-- The unit each measurement code reports in; a record without a unit is read in this unit.
DROP TABLE IF EXISTS phenotype.measurement_code_units;
CREATE TABLE phenotype.measurement_code_units (
    phenotype_id VARCHAR NOT NULL,
    vocabulary   VARCHAR NOT NULL,
    code         VARCHAR NOT NULL,
    unit         VARCHAR NOT NULL
);

-- Persons with any record of excluding_phenotype_id (at any time) are dropped from phenotype_id.
DROP TABLE IF EXISTS phenotype.person_exclusions;
CREATE TABLE phenotype.person_exclusions (
    phenotype_id           VARCHAR NOT NULL,
    excluding_phenotype_id VARCHAR NOT NULL,
    window_days            INTEGER  -- NULL: the person is excluded (any time); else record_exclusions.sql
);

-- Parts of composite phenotypes. depth orders the computation: a composite is computed after everything it uses.
DROP TABLE IF EXISTS phenotype.composite_components;
CREATE TABLE phenotype.composite_components (
    phenotype_id VARCHAR NOT NULL,
    component_id VARCHAR NOT NULL,
    role         VARCHAR NOT NULL,  -- all_of | none_of
    depth        INTEGER NOT NULL
);

-- Qualifying records: a listed code (for measurements also a plausible value that meets the threshold). Persons
-- who do not meet the phenotype's rule keep their records here; person_summary says who meets the rule.
DROP TABLE IF EXISTS phenotype.events;
CREATE TABLE phenotype.events (
    person_id    VARCHAR NOT NULL,
    phenotype_id VARCHAR NOT NULL,
    event_date   DATE NOT NULL,
    value        DOUBLE,   -- measurements: the value in the canonical unit
    unit         VARCHAR,  -- measurements: the canonical unit
    laterality   VARCHAR,  -- measurements recorded per side: L or R
    source_table VARCHAR NOT NULL,  -- the staging table of the record (composites: of the component's record)
    vocabulary   VARCHAR NOT NULL,
    code         VARCHAR NOT NULL,
    event_end_date DATE    -- drug fills: the last day of supply (staging.drug_exposure_end_date); else NULL
);

-- One row per person who meets the phenotype's rule. Not declared as a PRIMARY KEY on (person_id, phenotype_id):
-- DuckDB keeps such an index in memory while the run's transaction is open, which at tens of millions of rows ran
-- out of memory under a small memory_limit. The fatal expectation one_summary_row_per_person
-- (expectations/phenotype/phenotypes.json) checks the same thing after the run.
DROP TABLE IF EXISTS phenotype.person_summary;
CREATE TABLE phenotype.person_summary (
    person_id    VARCHAR NOT NULL,
    phenotype_id VARCHAR NOT NULL,
    first_date   DATE NOT NULL,  -- the first day the rule holds on the records up to that day (the confirming record)
    end_date     DATE,           -- the first later day it no longer holds; NULL: it holds from first_date on
    last_date    DATE NOT NULL,
    event_count  BIGINT NOT NULL,
    version      INTEGER NOT NULL
);
