"""The phenotype library: YAML definitions in phenotypes/, compiled to set-based DuckDB SQL in sql/phenotypes/.

Public API::

    from pipelines.phenotypes import load_phenotype_library, run_phenotypes
    counts = run_phenotypes(con)                 # every phenotype, into schema `phenotype` of `con`
    library = load_phenotype_library()           # the checked definitions (raises PhenotypeDefinitionError)
    compiled = compile_phenotypes(library)       # the SQL steps a run executes, in order

Dagster assets (one per phenotype, computed by one multi-asset): ``pipelines.phenotypes.assets.phenotype_assets``.
Documentation: ``python -m pipelines.phenotypes.reference_page`` writes docs/phenotypes.md.
"""

from pipelines.phenotypes.compiler import (
    CompiledPhenotypes,
    PhenotypeCounts,
    compile_phenotypes,
    phenotype_counts,
    run_phenotypes,
)
from pipelines.phenotypes.errors import DefinitionProblem, PhenotypeDefinitionError
from pipelines.phenotypes.loader import (
    LoadedPhenotype,
    PhenotypeLibrary,
    load_phenotype_files,
    load_phenotype_library,
    phenotype_library,
)

__all__ = [
    "CompiledPhenotypes",
    "DefinitionProblem",
    "LoadedPhenotype",
    "PhenotypeCounts",
    "PhenotypeDefinitionError",
    "PhenotypeLibrary",
    "compile_phenotypes",
    "load_phenotype_files",
    "load_phenotype_library",
    "phenotype_counts",
    "phenotype_library",
    "run_phenotypes",
]
