INSERT INTO phenotype.definitions (phenotype_id, name, domain, version, source_file, sha256, variant_of)
VALUES ($phenotype_id, $name, $domain, $version, $source_file, $sha256, $variant_of);
