"""Study files: the two lists of negative controls are checked by one rule (domain, each entry once), and a mistake
names the study file, the list and the phenotype."""

from __future__ import annotations

import pytest
import yaml

from pipelines.cohorts.study import StudyDefinitionError, load_study

MINIMAL = {
    "id": "mini",
    "title": "A minimal study",
    "study_period": {"start": "2015-01-01", "end": "2022-12-31"},
    "index": {"rule": "first_visit"},
}


def load_error(tmp_path, **changes) -> str:
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, **changes}))
    with pytest.raises(StudyDefinitionError) as caught:
        load_study(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid study definition")
    return message


def test_a_duplicate_in_either_list_is_refused_with_the_file_the_list_and_the_name(tmp_path):
    # Both lists wrong at once: both are reported (one validator per field, not one list checked after the other).
    message = load_error(tmp_path, negative_control_outcomes=["wrist_pain", "trigger_finger", "wrist_pain"],
                         negative_control_exposures=["tamsulosin", "tamsulosin"])
    assert "negative_control_outcomes[2]: 'wrist_pain' is listed twice (also at [0])" in message
    assert "negative_control_exposures[1]: 'tamsulosin' is listed twice (also at [0])" in message


@pytest.mark.parametrize("changes, expected", [
    ({"negative_control_outcomes": ["statins"]},
     "negative_control_outcomes[0]: a negative-control outcome must be a condition phenotype; 'statins' is a drug "
     "phenotype"),
    ({"negative_control_exposures": ["tamsulosin", "wrist_pain"]},
     "negative_control_exposures[1]: a negative-control exposure must be a drug phenotype (recorded as current use "
     "at index); 'wrist_pain' is a condition phenotype"),
])
def test_an_entry_of_the_wrong_domain_is_refused(tmp_path, changes, expected):
    assert expected in load_error(tmp_path, **changes)


def test_distinct_controls_of_the_right_domain_load(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "negative_control_outcomes": ["wrist_pain", "trigger_finger"],
                                    "negative_control_exposures": ["tamsulosin", "latanoprost"]}))
    study = load_study(path)
    assert study.negative_control_outcomes == ["wrist_pain", "trigger_finger"]
    assert study.negative_control_exposures == ["tamsulosin", "latanoprost"]
