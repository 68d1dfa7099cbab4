INSERT INTO phenotype.unit_conversions (phenotype_id, unit, factor)
VALUES ($phenotype_id, $unit, $factor);
