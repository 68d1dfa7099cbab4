"""A wrong study file is refused with one line per problem, each "<path>: <message>", the path written the same way
whoever found the problem (pydantic's type checks, a field's validator, the study's checks across fields): list
entries as `field[i]`, nested fields as `a.b`, never `field: [i]:`. A run-config override prints the same paths
under its own (pipelines/cohorts/settings.py)."""

from __future__ import annotations

import pytest
import yaml

from pipelines.cohorts.settings import override_problems
from pipelines.cohorts.study import StudyDefinitionError, load_study

MINIMAL = {
    "id": "mini",
    "title": "A minimal study",
    "study_period": {"start": "2015-01-01", "end": "2022-12-31"},
    "index": {"rule": "first_visit"},
}
NEW_USER = {"rule": "new_user", "target": "statins", "comparator": "beta_blockers"}


def error_text(tmp_path, study: dict) -> str:
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(StudyDefinitionError) as caught:
        load_study(path)
    return str(caught.value).removeprefix(f"{path}: ")


@pytest.mark.parametrize("changes, expected", [
    # A wrong type in a list (pydantic's check of the entry).
    ({"negative_control_exposures": ["tamsulosin", 1]}, "negative_control_exposures[1]: Input should be a valid string"),
    ({"exposures": ["statins", 3]},
     "exposures[1]: expected a phenotype id or a mapping {phenotype: <id>, window: ...}, got 3"),
    # An entry refused by the list's own validator.
    ({"negative_control_exposures": ["tamsulosin", "wrist_pain"]},
     "negative_control_exposures[1]: a negative-control exposure must be a drug phenotype (recorded as current use "
     "at index); 'wrist_pain' is a condition phenotype"),
    # Unknown keys, at the top and nested.
    ({"exposure": ["statins"]}, "exposure: unknown field (check the spelling; docs/studies.md lists the fields)"),
    ({"index": {"rule": "first_visit", "visit_type": ["outpatient"]}},
     "index.visit_type: unknown field (check the spelling; docs/studies.md lists the fields)"),
    # Problems found by a nested model's validator, and by the study's checks across fields.
    ({"index": {**NEW_USER, "exclude_combination_products": True, "combination_partners": ["ace_inhibitors",
                                                                                          "statins"]}},
     "index.combination_partners[1]: 'statins' is the target or comparator (a product of both study classes counts "
     "as a combination already)"),
    ({"index": {**NEW_USER, "combination_partners": ["ace_inhibitors"]}},
     "index.combination_partners: needs exclude_combination_products: true"),
    ({"exposures": ["statins"], "negative_control_exposures": ["tamsulosin", "statins"]},
     "negative_control_exposures[1]: 'statins' is also the outcome, an exposure, a covariate or a negative-control "
     "outcome; a negative-control exposure is a drug the outcome is believed not to depend on"),
    ({"sensitivity_analyses": [{"id": "a", "replace": "leg_cramps", "variant": "leg_cramps_leg_specific",
                                "description": "x"},
                               {"id": "a", "replace": "leg_cramps", "variant": "leg_cramps_two_records",
                                "description": "y"}]},
     "sensitivity_analyses[1].id: 'a' is used twice"),
    # The index without the rule that says which kind it is.
    ({"index": {"visit_types": ["outpatient"]}}, "index.rule: Field required (first_visit, new_user or lab_test)"),
])
def test_each_problem_is_one_line_with_its_path(tmp_path, changes, expected):
    assert error_text(tmp_path, {**MINIMAL, **changes}) == f"invalid study definition:\n  - {expected}"


def test_a_missing_required_key_and_a_wrong_type_are_listed_together(tmp_path):
    study = {key: value for key, value in MINIMAL.items() if key != "title"}
    assert error_text(tmp_path, {**study, "prior_observation_days": "a year"}) == (
        "invalid study definition:\n"
        "  - title: Field required\n"
        "  - prior_observation_days: Input should be a valid integer, unable to parse string as an integer")


def test_an_override_prints_the_same_paths_under_its_own():
    where = "resources.studies.config.overrides.leg_cramps"
    assert override_problems({"leg_cramps": {"negative_control_exposures": ["tamsulosin", "wrist_pain"]}}) == [
        f"{where}.negative_control_exposures[1]: a negative-control exposure must be a drug phenotype (recorded as "
        "current use at index); 'wrist_pain' is a condition phenotype"]
    assert override_problems({"leg_cramps": {"sensitivity_analyses": [
        {"id": "Bad id", "replace": "leg_cramps", "variant": "leg_cramps_leg_specific", "description": "x"}]}}) == [
        f"{where}.sensitivity_analyses[0].id: 'Bad id' is not a valid id (lower-case letters, digits and _, starting "
        "with a letter)"]
