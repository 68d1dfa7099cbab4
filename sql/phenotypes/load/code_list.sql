INSERT INTO phenotype.code_list (phenotype_id, vocabulary, code, match_type, excluded)
VALUES ($phenotype_id, $vocabulary, $code, $match_type, $excluded);
