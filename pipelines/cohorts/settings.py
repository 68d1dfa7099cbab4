"""Study parameters a run overrides: the `studies` resource.

    resources:
      studies:
        config:
          overrides:
            leg_cramps:                      # a study id (studies/<id>.yaml)
              study_period: {start: "2018-01-01"}
              prior_observation_days: 730

Each override is a partial study definition merged over the study file (`merge_override`: nested mappings key by
key) and checked by the same model and loader as the file (`load_study`), so a run cannot use a study the file
format would refuse. No study may use a small-cell threshold below the site floor (pipelines/disclosure.py):
`small_cell_threshold: 1` in run config is refused, as is a study file below the floor. The study's assets and
their dependencies come from the file when the code location loads; an override changes what a run computes, not
which assets exist. No `from __future__ import annotations` here:
Dagster reads the real annotations of a resource's fields.
"""

from collections.abc import Collection, Mapping
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field

from pipelines.cohorts.study import (StudyDefinition, StudyDefinitionError, load_studies, load_study,
                                     problem_line)
from pipelines.disclosure import checked_threshold, threshold_problem
from pipelines.paths import STUDIES_DIR
from pipelines.run_failures import fail_run_setup


class StudySettings(dg.ConfigurableResource):
    """Per-run overrides of study parameters; the default (no overrides) runs the study files as written."""

    # The resource key the code location binds this class to (the config path in error messages).
    resource_key: ClassVar[str] = "studies"

    overrides: dict[str, dict[str, Any]] = Field(
        default={},
        description="Study id -> fields of the study file to override for this run (any top-level field of "
                    "studies/<id>.yaml; nested mappings are merged). See docs/operations.md.")

    statistics_workers: int | None = Field(
        default=None, ge=1,
        description="Processes fitting a study's screening analyses at once (pipelines/statistics/workers.py): "
                    "default the machine's cores, or 1 for a small study population (MIN_PERSONS_FOR_WORKERS "
                    "there); 1 fits them in the run's process, one after another. The published results are the "
                    "same, in the same order, whatever the number.")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Fail the run while its resources are set up, before any step, when an override is invalid."""
        problems = override_problems(self.overrides) + file_threshold_problems(set(self.overrides))
        if problems:
            fail_run_setup(context, problems)

    def resolve(self, study: StudyDefinition) -> StudyDefinition:
        """The study as this run uses it: the file's definition with this run's override merged over it."""
        override = self.overrides.get(study.id)
        resolved = load_study(STUDIES_DIR / f"{study.id}.yaml", override=override) if override else study
        checked_threshold(resolved.threshold)
        return resolved

    def effective_override(self, study: StudyDefinition) -> dict[str, Any]:
        """The top-level fields this run overrides, with the values the run uses (validated, nested fields the
        override left out filled from the file), for the UI and the report; {} when the run uses the file."""
        override = self.overrides.get(study.id)
        return self.resolve(study).model_dump(mode="json", include=set(override)) if override else {}


def override_problems(overrides: Mapping[str, Any]) -> list[str]:
    """Everything wrong with `resources.studies.config.overrides` (empty list = fine), each problem with its field."""
    prefix = f"resources.{StudySettings.resource_key}.config.overrides"
    studies = load_studies()
    problems: list[str] = []
    for study_id, override in overrides.items():
        where = f"{prefix}.{study_id}"
        if study_id not in studies:
            problems.append(f"{where}: unknown study {study_id!r}; studies: {', '.join(studies)}")
            continue
        if not isinstance(override, Mapping):
            problems.append(f"{where}: expected a mapping of study fields, got {type(override).__name__}")
            continue
        if "id" in override:
            problems.append(f"{where}.id: the study id cannot be overridden (it names the study's assets)")
            continue
        try:
            resolved = load_study(STUDIES_DIR / f"{study_id}.yaml", override=dict(override))
        except StudyDefinitionError as error:
            problems += [problem_line(field, message, under=where)
                         for field, message in error.problems or [("", str(error))]]
            continue
        problem = threshold_problem(resolved.threshold)
        if problem:
            problems.append(f"{where}.small_cell_threshold: {problem}")
            continue
        # The cohort step runs after the phenotypes the study file names (its asset dependencies); a phenotype
        # only the override names might not be built yet when the cohort step reads it.
        added = [p for p in dict.fromkeys(resolved.phenotype_ids) if p not in studies[study_id].phenotype_ids]
        if added:
            problems.append(f"{where}: phenotype(s) {', '.join(added)} are not in studies/{study_id}.yaml, so the "
                            "run does not build them before this study; add them to the study file instead")
    return problems


def file_threshold_problems(overridden: Collection[str] = ()) -> list[str]:
    """Study files (and studies/_defaults.yaml) whose small-cell threshold is below the site floor; studies in
    `overridden` are checked with their override by `override_problems`."""
    return [f"studies/{study_id}.yaml: {problem}" for study_id, study in load_studies().items()
            if study_id not in overridden and (problem := threshold_problem(study.threshold))]
