INSERT INTO phenotype.person_exclusions (phenotype_id, excluding_phenotype_id)
VALUES ($phenotype_id, $excluding_phenotype_id);
