INSERT INTO phenotype.person_exclusions (phenotype_id, excluding_phenotype_id, window_days)
VALUES ($phenotype_id, $excluding_phenotype_id, $window_days);
