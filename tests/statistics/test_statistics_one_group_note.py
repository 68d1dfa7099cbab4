"""A comparison with one empty group says which group is empty ("nobody exposed" vs "everybody exposed") and what
to check, without a count."""

import pandas as pd

from pipelines.statistics.study_analysis import one_group_note


def test_nobody_exposed_and_everybody_exposed_are_told_apart():
    nobody = one_group_note(pd.Series([0, 0, 0]), "exposed", "unexposed")
    everybody = one_group_note(pd.Series([1, 1]), "exposed", "unexposed")
    assert nobody.startswith("nobody is exposed; no estimate.") and "phenotype resolves" in nobody
    assert everybody.startswith("everybody is exposed, nobody unexposed; no estimate.")
    assert "inclusion criteria" in everybody
    assert one_group_note(pd.Series([], dtype=int), "exposed", "unexposed").startswith("nobody has follow-up")
    # No count of persons appears (a small cell must not reappear in a note).
    assert not any(ch.isdigit() for ch in nobody + everybody)


def test_new_user_groups_are_named():
    note = one_group_note(pd.Series([1, 1]), "in the target group (statins)", "in the comparator group (fibrates)")
    assert note.startswith("everybody is in the target group (statins), nobody in the comparator group (fibrates)")
