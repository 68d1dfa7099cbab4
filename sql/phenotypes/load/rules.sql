INSERT INTO phenotype.rules (phenotype_id, rule_type, min_records, min_days_apart)
VALUES ($phenotype_id, $rule_type, $min_records, $min_days_apart);
