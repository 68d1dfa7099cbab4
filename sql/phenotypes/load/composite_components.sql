INSERT INTO phenotype.composite_components (phenotype_id, component_id, role, depth)
VALUES ($phenotype_id, $component_id, $role, $depth);
