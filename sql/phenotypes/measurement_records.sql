-- Every plausible value of a measurement phenotype's codes, in the phenotype's canonical unit, with a flag saying
-- whether it meets the threshold: ONE pass over staging.measurement for all measurement phenotypes together (same
-- code matching as condition_records.sql).
--
-- Phenotypes decided by single values (rule min_records) keep only the values that meet the threshold; the
-- lowest_value and all_values rules need every plausible value of the person, so those keep them all.
CREATE TEMP TABLE phenotype_measurement_records AS
WITH
codes_present AS (
    SELECT DISTINCT measurement_vocabulary AS vocabulary, measurement_code AS code
    FROM staging.measurement
),
-- Each present code with every (vocabulary, code) it stands for: itself, plus its pairs in
-- vocabulary.concept_code_map (an OMOP clinical drug stands for its ingredients and ATC classes, a SNOMED concept for the
-- ICD10CM codes mapped to it; the map is empty for canonical extracts). Grouping by the present code below keeps
-- every record once per phenotype. See docs/extract_formats.md.
codes_meant AS (
    SELECT vocabulary, code, vocabulary AS meant_vocabulary, code AS meant_code
    FROM codes_present
    UNION
    SELECT codes_present.vocabulary, codes_present.code, concept_code_map.mapped_vocabulary,
           concept_code_map.mapped_code
    FROM codes_present
    JOIN vocabulary.concept_code_map
      ON concept_code_map.vocabulary = codes_present.vocabulary AND concept_code_map.code = codes_present.code
),
measurement_code_list AS (
    SELECT code_list.phenotype_id, code_list.vocabulary, code_list.code, code_list.match_type, code_list.excluded
    FROM phenotype.code_list
    JOIN phenotype.definitions ON definitions.phenotype_id = code_list.phenotype_id
    WHERE definitions.domain = 'measurement'
),
code_matches AS (
    SELECT codes_present.vocabulary, codes_present.code, measurement_code_list.phenotype_id,
           measurement_code_list.excluded
    FROM codes_meant AS codes_present
    JOIN measurement_code_list
      ON measurement_code_list.vocabulary = codes_present.meant_vocabulary
     AND (measurement_code_list.code = codes_present.meant_code
          OR (measurement_code_list.match_type = 'prefix'
              AND substr(codes_present.meant_code, 1, length(measurement_code_list.code)) = measurement_code_list.code))
),
code_to_phenotype AS (
    SELECT vocabulary, code, phenotype_id
    FROM code_matches
    GROUP BY vocabulary, code, phenotype_id
    HAVING max(CASE WHEN excluded THEN 1 ELSE 0 END) = 0
),
-- Records with a number. The recorded unit is normalised exactly like normalise_unit() in
-- pipelines/phenotypes/schema.py (trimmed, spaces removed, lower-case); a record without a unit is read in the unit
-- its code reports (phenotype.measurement_code_units).
recorded_values AS (
    SELECT
        measurement.person_id,
        code_to_phenotype.phenotype_id,
        measurement.measurement_date AS event_date,
        measurement.measurement_vocabulary AS vocabulary,
        measurement.measurement_code AS code,
        measurement.laterality,
        measurement.value_as_number,
        coalesce(nullif(lower(replace(trim(measurement.unit), ' ', '')), ''), measurement_code_units.unit)
            AS recorded_unit
    FROM staging.measurement
    JOIN code_to_phenotype
      ON code_to_phenotype.vocabulary = measurement.measurement_vocabulary
     AND code_to_phenotype.code = measurement.measurement_code
    LEFT JOIN phenotype.measurement_code_units
      ON measurement_code_units.phenotype_id = code_to_phenotype.phenotype_id
     AND measurement_code_units.vocabulary = code_to_phenotype.vocabulary
     AND measurement_code_units.code = code_to_phenotype.code
    WHERE measurement.value_as_number IS NOT NULL
),
-- Values converted to the canonical unit; values in a unit the phenotype does not list drop out here. The result
-- is rounded to 6 decimals so that binary floating-point noise of a conversion (0.1 x 2.4305 gives
-- 0.24305000000000002) cannot move a value across a bound.
canonical_values AS (
    SELECT
        recorded_values.person_id,
        recorded_values.phenotype_id,
        recorded_values.event_date,
        recorded_values.vocabulary,
        recorded_values.code,
        recorded_values.laterality,
        round(recorded_values.value_as_number * unit_conversions.factor, 6) AS value,
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
-- Implausible values (outside the plausible range: upper end included, lower end unless the range is open there)
-- are ignored altogether.
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
    WHERE (value > plausible_min OR (plausible_min_inclusive AND value = plausible_min)) AND value <= plausible_max
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
