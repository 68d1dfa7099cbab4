-- The one rule for reading a recorded measurement value, used by the phenotypes (sql/phenotypes/
-- measurement_records.sql) and by the cohorts' lab_test index (sql/cohorts/index_lab_test.sql), so that a value
-- is a test for the index exactly when the phenotypes would judge it:
-- - recorded_unit: the unit as compared with the listed units: trimmed, spaces removed, lower-case, as
--   normalise_unit() in pipelines/phenotypes/schema.py; a record without a unit is read in the unit its code reports.
-- - canonical_value: the value in the canonical unit, rounded to 6 decimals so that binary floating-point noise of a
--   conversion (0.1 x 2.4305 gives 0.24305000000000002) cannot move a value across a bound.
-- - within_plausible_range: upper end included, lower end unless the range is open there (the ABI's 0).
--
-- Run first by the phenotype stage (pipelines/phenotypes/compiler.py) and the cohort stage
-- (pipelines/cohorts/build.py); on Spark the engine expands the macros into the statements that call them.
CREATE OR REPLACE TEMP MACRO recorded_unit(unit, code_unit) AS
    coalesce(nullif(lower(replace(trim(unit), ' ', '')), ''), code_unit);
CREATE OR REPLACE TEMP MACRO canonical_value(value_as_number, factor) AS
    round(value_as_number * factor, 6);
CREATE OR REPLACE TEMP MACRO within_plausible_range(value, low, low_inclusive, high) AS
    ((value > low OR (low_inclusive AND value = low)) AND value <= high);
