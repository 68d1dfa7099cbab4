"""Building the definitions and running a study read the study files once per process (pipelines/cohorts/study.py,
`load_studies`): the reading is kept under the files' contents, so a changed, added or removed file is read again."""

import shutil

from pipelines.cohorts.study import load_studies
from pipelines.paths import STUDIES_DIR
from pipelines.phenotypes.loader import load_phenotype_library


def test_the_same_files_are_read_once_and_a_changed_file_again(tmp_path):
    studies_dir = shutil.copytree(STUDIES_DIR, tmp_path / "studies")
    first = load_studies(studies_dir)
    second = load_studies(studies_dir)
    assert second == first and second is not first  # each caller gets its own dict...
    assert all(second[study_id] is first[study_id] for study_id in first)  # ...of the studies read once

    path = studies_dir / "leg_cramps.yaml"
    path.write_text(path.read_text().replace("title:", "title: Edited", 1))
    edited = load_studies(studies_dir)
    assert edited["leg_cramps"].title.startswith("Edited")
    assert edited["leg_cramps"] is not first["leg_cramps"]
    assert edited["thiazide_vs_ccb"] == first["thiazide_vs_ccb"]

    (studies_dir / "thiazide_vs_ccb.yaml").unlink()
    assert "thiazide_vs_ccb" not in load_studies(studies_dir)


def test_another_phenotype_library_checks_the_studies_again(tmp_path):
    studies_dir = shutil.copytree(STUDIES_DIR, tmp_path / "studies")
    default_library = load_studies(studies_dir)
    other_library = load_studies(studies_dir, library=load_phenotype_library())
    assert other_library == default_library
    assert other_library["leg_cramps"] is not default_library["leg_cramps"]
