"""The cohort stage: study definitions (studies/*.yaml) -> cohort.*, results.attrition and results.table1.

    from pipelines.cohorts import load_studies, build_all_studies
    builds = build_all_studies(con)          # every studies/*.yaml on an open DuckDB connection

See docs/studies.md.
"""

from pipelines.cohorts.build import CohortBuildError, StudyBuild, build_all_studies, build_study
from pipelines.cohorts.study import (
    StudyDefinition,
    StudyDefinitionError,
    known_phenotype_ids,
    load_studies,
    load_study,
)

__all__ = [
    "CohortBuildError",
    "StudyBuild",
    "StudyDefinition",
    "StudyDefinitionError",
    "build_all_studies",
    "build_study",
    "known_phenotype_ids",
    "load_studies",
    "load_study",
]
