"""Study files: the bundled studies load, and every mistake gives an error naming the file and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.cohorts.study import (
    DEFAULT_SMALL_CELL_THRESHOLD,
    StudyDefinitionError,
    cohort_definition_id,
    load_studies,
    load_study,
)
from pipelines.paths import PHENOTYPES_DIR, STUDIES_DIR
from pipelines.phenotypes import load_phenotype_library

MINIMAL = {
    "id": "mini",
    "title": "A minimal study",
    "study_period": {"start": "2015-01-01", "end": "2022-12-31"},
    "index": {"rule": "first_visit"},
}


def write_study(directory: Path, data: dict, name: str | None = None) -> Path:
    path = directory / f"{name or data.get('id', 'mini')}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def load_error(tmp_path: Path, **changes) -> str:
    path = write_study(tmp_path, {**MINIMAL, **changes}, name="mini")
    with pytest.raises(StudyDefinitionError) as caught:
        load_study(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_bundled_studies_load():
    studies = load_studies()
    assert set(studies) == {"leg_cramps", "thiazide_vs_ccb", "low_magnesium_tested", "low_potassium_tested",
                            "low_sodium_tested"}
    magnesium = studies["low_magnesium_tested"]
    assert (magnesium.index.rule, magnesium.index.finding, magnesium.index.comparator) == (
        "lab_test", "hypomagnesemia_lab", "tested_normal")
    assert [r.phenotype for r in magnesium.exposures] == ["hypomagnesemia_lab"]
    leg_cramps = studies["leg_cramps"]
    assert leg_cramps.index.rule == "first_visit" and leg_cramps.index.visit_types == ["outpatient"]
    assert leg_cramps.age_at_index.min == 18 and leg_cramps.prior_observation_days == 365
    assert leg_cramps.table1_by == "thiazide_diuretics" and leg_cramps.threshold == 11
    windows = {v.variable: v.window.kind for v in leg_cramps.variables}
    assert windows["statins"] == "current_use" and windows["hyponatremia_lab"] == "lookback_days"
    assert windows["parkinsons_disease"] == "any_time_prior" and windows["diabetes_mellitus"] == "any_time_prior"
    assert leg_cramps.time_at_risk.censor_unexposed_at_exposure_start is True
    new_users = studies["thiazide_vs_ccb"]
    assert (new_users.index.target, new_users.index.comparator, new_users.index.washout_days) == (
        "thiazide_or_thiazide_like_diuretics", "dihydropyridine_calcium_channel_blockers", 365)
    assert new_users.index.indication.phenotype == "hypertension" and new_users.index.indication.lookback_days == 365
    assert new_users.index.exclude_combination_products and "ace_inhibitors" in new_users.index.combination_partners
    assert new_users.table1_groups == ("target", "comparator")
    assert [v.role for v in new_users.variables[:2]] == ["target", "comparator"]


def test_defaults_fill_in_what_a_study_leaves_out(tmp_path):
    study = load_study(write_study(tmp_path, MINIMAL))
    assert study.prior_observation_days == 365
    assert study.outcome.phenotype == "leg_cramps" and study.outcome.washout.kind == "any_time_prior"
    assert study.time_at_risk.start_offset_days == 1 and study.time_at_risk.max_days is None
    assert study.threshold == DEFAULT_SMALL_CELL_THRESHOLD
    assert study.demographic_covariates == ["age", "sex"]


def test_global_threshold_comes_from_defaults_file_and_a_study_may_override_it(tmp_path):
    (tmp_path / "_defaults.yaml").write_text("small_cell_threshold: 20\n")
    write_study(tmp_path, MINIMAL)
    write_study(tmp_path, {**MINIMAL, "id": "own", "small_cell_threshold": 5})
    studies = load_studies(tmp_path)
    assert studies["mini"].threshold == 20 and studies["own"].threshold == 5


def test_unknown_phenotype_lists_the_known_ones(tmp_path):
    message = load_error(tmp_path, exposures=["peripheral_arterial_disease", {"phenotype": "statin"}])
    assert "exposures[1].phenotype: unknown phenotype 'statin'" in message
    assert "known phenotypes:" in message and "statins" in message and "leg_cramps" in message


def test_unknown_outcome_and_new_user_drugs(tmp_path):
    assert "outcome.phenotype: unknown phenotype 'cramps'" in load_error(tmp_path, outcome={"phenotype": "cramps"})
    message = load_error(tmp_path, index={"rule": "new_user", "target": "thiazides", "comparator": "statins"})
    assert "index.target: unknown phenotype 'thiazides'" in message


@pytest.mark.parametrize("changes, expected", [
    ({"study_period": {"start": "2023-01-01", "end": "2022-12-31"}},
     "study_period: start (2023-01-01) is after end (2022-12-31)"),
    ({"age_at_index": {"min": 80, "max": 18}}, "age_at_index: min (80) is above max (18)"),
    ({"time_at_risk": {"start_offset_days": 30, "max_days": 10}}, "time_at_risk: time at risk would end"),
    ({"prior_observation_days": -1}, "prior_observation_days: Input should be greater than or equal to 0"),
    ({"exposures": [{"phenotype": "statins", "window": "current"}]}, "exposures[0].window: window must be"),
    ({"exposures": [{"phenotype": "statins", "window": {"lookback_days": -5}}]}, "exposures[0].window.days"),
    ({"exposures": [{"phenotype": "hypothyroidism", "window": "current_use"}]},
     "current_use needs a drug phenotype; 'hypothyroidism' is a condition phenotype"),
    ({"exposures": ["statins"], "covariates": ["statins"]}, "covariates[0]: 'statins' is already listed"),
    ({"exposures": ["leg_cramps"]}, "the outcome 'leg_cramps' is also listed in exposures"),
    ({"table1_by": "statins"}, "table1_by: 'statins' is not one of this study's exposures or covariates"),
    ({"index": {"rule": "first_visit", "visit_types": ["telephone"]}}, "index.visit_types[0]"),
    ({"index": {"rule": "latest_visit"}}, "index: Input tag 'latest_visit' found using 'rule' does not match"),
    ({"index": {"rule": "new_user", "target": "statins", "comparator": "statins"}},
     "target and comparator are both 'statins'"),
    ({"index": {"rule": "new_user", "target": "statins", "comparator": "beta_blockers", "washout_days": 500}},
     "index.washout_days (500) exceeds prior_observation_days (365)"),
    ({"index": {"rule": "new_user", "target": "hypothyroidism", "comparator": "statins"}},
     "target must be a drug phenotype"),
    ({"outcome": {"phenotype": "leg_cramps", "washout": "always"}}, "outcome.washout: washout must be"),
    ({"lookback": 3}, "lookback: unknown field"),
    ({"small_cell_threshold": 0}, "small_cell_threshold: Input should be greater than or equal to 1"),
])
def test_invalid_fields_are_named(tmp_path, changes, expected):
    assert expected in load_error(tmp_path, **changes)


def test_missing_required_fields_and_wrong_id(tmp_path):
    data = {k: v for k, v in MINIMAL.items() if k != "title"}
    path = write_study(tmp_path, data)
    with pytest.raises(StudyDefinitionError, match="title: Field required"):
        load_study(path)
    path = write_study(tmp_path, MINIMAL, name="other_name")
    with pytest.raises(StudyDefinitionError, match="id: 'mini' must equal the file name"):
        load_study(path)


def test_broken_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("id: broken\ntitle: [unclosed\n")
    with pytest.raises(StudyDefinitionError, match=f"{path}: not valid YAML"):
        load_study(path)


def test_the_phenotype_library_can_be_given(tmp_path):
    library_folder = tmp_path / "phenotypes"
    shutil.copytree(PHENOTYPES_DIR, library_folder)
    hypothyroidism = (library_folder / "conditions" / "hypothyroidism.yaml").read_text()
    (library_folder / "conditions" / "my_new_phenotype.yaml").write_text(
        hypothyroidism.replace("id: hypothyroidism", "id: my_new_phenotype"))
    path = write_study(tmp_path, {**MINIMAL, "exposures": ["my_new_phenotype"]})
    assert load_study(path, load_phenotype_library(library_folder)).exposures
    with pytest.raises(StudyDefinitionError, match="unknown phenotype 'my_new_phenotype'"):
        load_study(path)


def test_cohort_definition_ids_are_stable_and_distinct():
    assert cohort_definition_id("leg_cramps", "leg_cramps: study population") == \
        cohort_definition_id("leg_cramps", "leg_cramps: study population")
    ids = [d.cohort_definition_id for s in load_studies(STUDIES_DIR).values() for d in s.cohort_definitions()]
    assert len(ids) == len(set(ids)) and all(0 < i < 2**31 for i in ids)
