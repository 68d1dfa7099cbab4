-- Output tables of the cohort stage. Every study writes its own rows (study_id, or its cohort_definition_ids) into
-- these shared tables; cohort.study_population gains one BOOLEAN column and one DATE column per phenotype a study
-- records (added by the builder), which are NULL for studies that do not record that phenotype.
CREATE SCHEMA IF NOT EXISTS cohort;
CREATE SCHEMA IF NOT EXISTS results;

CREATE TABLE IF NOT EXISTS cohort.cohort_definition (
    cohort_definition_id INTEGER NOT NULL,
    study_id VARCHAR NOT NULL,
    cohort_name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,            -- study_population, exposure or outcome
    phenotype_id VARCHAR,             -- the exposure's or outcome's phenotype; NULL for the study population
    description VARCHAR
);

-- OMOP-shaped cohort table; subject_id is the extract's person_id (text in this pipeline).
CREATE TABLE IF NOT EXISTS cohort.cohort (
    cohort_definition_id INTEGER NOT NULL,
    subject_id VARCHAR NOT NULL,
    cohort_start_date DATE NOT NULL,
    cohort_end_date DATE NOT NULL
);

-- The phenotypes each study records at index, with their role and window (what the statistics stage loops over).
CREATE TABLE IF NOT EXISTS cohort.study_variables (
    study_id VARCHAR NOT NULL,
    variable VARCHAR NOT NULL,        -- phenotype id = column name in cohort.study_population
    role VARCHAR NOT NULL,            -- exposure, covariate, target or comparator
    window_kind VARCHAR NOT NULL,     -- any_time_prior, lookback_days or current_use
    lookback_days INTEGER,
    variable_order INTEGER NOT NULL,
    new_use_washout_days INTEGER,     -- new-use exposures: washout before the first fill, and how recent the
    new_use_started_within_days INTEGER  -- first fill must be (NULL: a current-use comparison)
);
ALTER TABLE cohort.study_variables ADD COLUMN IF NOT EXISTS new_use_washout_days INTEGER;
ALTER TABLE cohort.study_variables ADD COLUMN IF NOT EXISTS new_use_started_within_days INTEGER;

-- Long form of the phenotype columns: one row per study, person and phenotype the person has at index or later.
CREATE TABLE IF NOT EXISTS cohort.person_variables (
    study_id VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL,
    variable VARCHAR NOT NULL,
    first_date DATE NOT NULL,         -- first day the person counts as having the phenotype, on its window's terms
    at_index BOOLEAN                  -- first_date <= index_date; NULL: left out of a new-use comparison
);
ALTER TABLE cohort.person_variables ALTER COLUMN at_index DROP NOT NULL;

CREATE TABLE IF NOT EXISTS cohort.study_population (
    study_id VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL,
    index_date DATE NOT NULL,
    age_at_index INTEGER,
    sex VARCHAR,
    observation_start DATE,           -- start of the (merged) observation period holding the index date
    observation_end DATE,
    death_date DATE,
    time_at_risk_start DATE NOT NULL,
    followup_end DATE NOT NULL,       -- end of time at risk (the censoring date when there is no outcome)
    followup_days INTEGER NOT NULL,   -- least(outcome_date, followup_end) - time_at_risk_start + 1
    outcome_flag BOOLEAN NOT NULL,
    outcome_date DATE,                -- first outcome in [time_at_risk_start, followup_end]
    treatment INTEGER,                -- new-user designs: 1 target, 0 comparator
    on_treatment_end DATE             -- new-user designs: last day on the drug started (discontinuation + grace, or
                                      -- the day before a switch); the on-treatment analysis censors after it
);
ALTER TABLE cohort.study_population ADD COLUMN IF NOT EXISTS on_treatment_end DATE;

CREATE TABLE IF NOT EXISTS results.attrition (
    study_id VARCHAR NOT NULL,
    step_order INTEGER NOT NULL,
    step_code VARCHAR NOT NULL,
    step VARCHAR NOT NULL,
    persons_before BIGINT,            -- NULL when suppressed
    persons_after BIGINT,
    persons_removed BIGINT,
    persons_before_text VARCHAR,      -- as printed: '1,234', '<11' or 'suppressed'
    persons_after_text VARCHAR,
    persons_removed_text VARCHAR,
    suppressed BOOLEAN NOT NULL,
    small_cell_threshold INTEGER      -- the threshold the run used: '<11' means 1 to 10 persons
);
ALTER TABLE results.attrition ADD COLUMN IF NOT EXISTS small_cell_threshold INTEGER;

CREATE TABLE IF NOT EXISTS results.table1 (
    study_id VARCHAR NOT NULL,
    by_variable VARCHAR,              -- what splits the groups: a phenotype id, 'treatment', or NULL (overall only)
    row_order INTEGER NOT NULL,
    variable VARCHAR NOT NULL,
    level VARCHAR,
    "group" VARCHAR NOT NULL,         -- overall, exposed/unexposed or target/comparator
    statistic VARCHAR NOT NULL,       -- n, n_pct, mean_sd, median_iqr, missing
    value VARCHAR NOT NULL,           -- as printed
    count BIGINT,
    denominator BIGINT,
    percent DOUBLE,
    mean DOUBLE,
    sd DOUBLE,
    median DOUBLE,
    q1 DOUBLE,
    q3 DOUBLE,
    smd DOUBLE,                       -- absolute standardized mean difference between the two groups, per variable
    suppressed BOOLEAN NOT NULL,
    suppression VARCHAR               -- NULL, small_cell or complementary
);
