"""The analysis a study's report and forest plot lead with: the study file names it, or the design's primary."""

import pytest

from pipelines.cohorts.study import StudyDefinition
from pipelines.statistics.report import primary_analysis_of

BASE = {"id": "s", "title": "t", "study_period": {"start": "2016-01-01", "end": "2020-12-31"},
        "index": {"rule": "first_visit", "visit_types": ["outpatient"]}}
NEW_USER = {**BASE, "index": {"rule": "new_user", "target": "thiazide_diuretics",
                              "comparator": "calcium_channel_blockers"}}


def test_the_design_primary_is_the_default():
    assert primary_analysis_of(StudyDefinition.model_validate(BASE)) == "cox_adjusted"
    assert primary_analysis_of(StudyDefinition.model_validate(NEW_USER)) == "ps_matched_cox"


def test_the_study_file_names_its_primary_analysis():
    study = StudyDefinition.model_validate({**NEW_USER, "primary_analysis": "ps_iptw_cox"})
    assert primary_analysis_of(study) == "ps_iptw_cox"


@pytest.mark.parametrize("name", ["cox", "incidence_rate", "km_risk"])
def test_a_primary_analysis_that_is_no_comparison_is_refused(name):
    with pytest.raises(ValueError, match="primary_analysis"):
        primary_analysis_of(StudyDefinition.model_validate({**BASE, "primary_analysis": name}))
