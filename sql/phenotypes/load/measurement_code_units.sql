INSERT INTO phenotype.measurement_code_units (phenotype_id, vocabulary, code, unit)
VALUES ($phenotype_id, $vocabulary, $code, $unit);
