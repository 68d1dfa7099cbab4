-- Every plausible value of a measurement phenotype's codes, in the phenotype's canonical unit, with a flag saying
-- whether it meets the threshold: ONE pass over staging.measurement for all measurement phenotypes together (codes
-- matched once by code_to_phenotype.sql).
--
-- Phenotypes decided by single values (rule min_records) keep only the values that meet the threshold; the
-- lowest_value and all_values rules need every plausible value of the person, so those keep them all.
CREATE TEMP TABLE phenotype_measurement_records AS
WITH
-- Records with a number, in their recorded unit (sql/measurement_values.sql recorded_unit: normalised; a record
-- without a unit is read in the unit its code reports, phenotype.measurement_code_units).
recorded_values AS (
    SELECT
        measurement.person_id,
        code_to_phenotype.phenotype_id,
        measurement.measurement_date AS event_date,
        measurement.measurement_vocabulary AS vocabulary,
        measurement.measurement_code AS code,
        measurement.laterality,
        measurement.value_as_number,
        recorded_unit(measurement.unit, measurement_code_units.unit) AS recorded_unit
    FROM staging.measurement
    JOIN phenotype_code_to_phenotype AS code_to_phenotype
      ON code_to_phenotype.domain = 'measurement'
     AND code_to_phenotype.vocabulary = measurement.measurement_vocabulary
     AND code_to_phenotype.code = measurement.measurement_code
    LEFT JOIN phenotype.measurement_code_units
      ON measurement_code_units.phenotype_id = code_to_phenotype.phenotype_id
     AND measurement_code_units.vocabulary = code_to_phenotype.vocabulary
     AND measurement_code_units.code = code_to_phenotype.code
    WHERE measurement.value_as_number IS NOT NULL
),
-- Values converted to the canonical unit (sql/measurement_values.sql canonical_value); values in a unit the
-- phenotype does not list drop out here.
canonical_values AS (
    SELECT
        recorded_values.person_id,
        recorded_values.phenotype_id,
        recorded_values.event_date,
        recorded_values.vocabulary,
        recorded_values.code,
        recorded_values.laterality,
        canonical_value(recorded_values.value_as_number, unit_conversions.factor) AS value,
        measurement_rules.canonical_unit AS unit,
        measurement_rules.plausible_min,
        measurement_rules.plausible_min_inclusive,
        measurement_rules.plausible_max,
        measurement_rules.threshold_lower,
        measurement_rules.threshold_lower_inclusive,
        measurement_rules.threshold_upper,
        measurement_rules.threshold_upper_inclusive
    FROM recorded_values
    JOIN phenotype.unit_conversions
      ON unit_conversions.phenotype_id = recorded_values.phenotype_id
     AND unit_conversions.unit = recorded_values.recorded_unit
    JOIN phenotype.measurement_rules
      ON measurement_rules.phenotype_id = recorded_values.phenotype_id
),
-- Implausible values (sql/measurement_values.sql within_plausible_range) are ignored altogether.
plausible_values AS (
    SELECT
        person_id, phenotype_id, event_date, vocabulary, code, laterality, value, unit,
        (threshold_lower IS NULL
            OR value > threshold_lower
            OR (threshold_lower_inclusive AND value = threshold_lower))
        AND (threshold_upper IS NULL
            OR value < threshold_upper
            OR (threshold_upper_inclusive AND value = threshold_upper)) AS meets_threshold
    FROM canonical_values
    WHERE within_plausible_range(value, plausible_min, plausible_min_inclusive, plausible_max)
)
SELECT
    plausible_values.person_id,
    plausible_values.phenotype_id,
    plausible_values.event_date,
    plausible_values.vocabulary,
    plausible_values.code,
    plausible_values.laterality,
    plausible_values.value,
    plausible_values.unit,
    plausible_values.meets_threshold,
    rules.rule_type
FROM plausible_values
JOIN phenotype.rules ON rules.phenotype_id = plausible_values.phenotype_id
WHERE plausible_values.meets_threshold OR rules.rule_type <> 'min_records';
