INSERT INTO phenotype.measurement_rules (phenotype_id, canonical_unit, plausible_min, plausible_min_inclusive,
                                         plausible_max, threshold_lower, threshold_lower_inclusive, threshold_upper,
                                         threshold_upper_inclusive)
VALUES ($phenotype_id, $canonical_unit, $plausible_min, $plausible_min_inclusive, $plausible_max, $threshold_lower,
        $threshold_lower_inclusive, $threshold_upper, $threshold_upper_inclusive);
