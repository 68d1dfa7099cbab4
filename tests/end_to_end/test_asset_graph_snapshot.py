"""The Dagster asset graph against its committed snapshot (tests/snapshots/asset_graph.json), as
dagster-open-platform's test_defs.py snapshots its asset specs: an asset, group, partitioning, dependency, check,
blocking flag, data-quality sub-check (with its severity), job, schedule or sensor that changes by accident fails
here.

A change meant to happen: run `make generate` and commit the new snapshot beside the change, so the review sees it.
"""

from __future__ import annotations

import json

from pipelines.generate import ASSET_GRAPH_SNAPSHOT, asset_graph_snapshot


def _differences(committed: dict, current: dict) -> list[str]:
    """One line per entry added, removed or changed, section by section (assets, jobs, schedules, sensors)."""
    lines = []
    for section in sorted(set(committed) | set(current)):
        before, after = committed.get(section, {}), current.get(section, {})
        lines += [f"{section}: added {name}" for name in sorted(set(after) - set(before))]
        lines += [f"{section}: removed {name}" for name in sorted(set(before) - set(after))]
        for name in sorted(set(before) & set(after)):
            old, new = before[name], after[name]
            for field in sorted(set(old) | set(new)):
                was, now = old.get(field), new.get(field)
                if was == now:
                    continue
                if isinstance(was, list) and isinstance(now, list):
                    change = [f"+{item}" for item in now if item not in was] + [f"-{item}" for item in was
                                                                                if item not in now]
                    lines.append(f"{section}: {name} {field}: {', '.join(change)}")
                else:
                    lines.append(f"{section}: {name} {field}: {was!r} -> {now!r}")
    return lines


def test_the_asset_graph_matches_its_committed_snapshot():
    committed = json.loads(ASSET_GRAPH_SNAPSHOT.read_text())
    current = json.loads(json.dumps(asset_graph_snapshot()))
    differences = _differences(committed, current)
    assert not differences, ("the Dagster definitions changed; if that was meant, run `make generate` and commit "
                             f"{ASSET_GRAPH_SNAPSHOT.name}:\n" + "\n".join(differences[:40]))


def test_the_snapshot_names_what_it_should_catch():
    """The snapshot holds the facts it guards, so a change to them cannot pass unnoticed."""
    snapshot = json.loads(ASSET_GRAPH_SNAPSHOT.read_text())
    cohort = snapshot["assets"]["cohort/leg_cramps"]
    assert cohort["group"] == "cohorts"
    assert cohort["partitions"] == 'Dynamic partitions: "site"'
    assert cohort["checks"] == ["cohort_data_quality (blocking)"]  # one check per study...
    assert "cohort_data_quality/index_inside_study_period (fatal)" in cohort["sub_checks"]  # ...listing its own
    person = snapshot["assets"]["staging/person"]
    assert "staging_data_quality (blocking)" in person["checks"]
    assert "staging_data_quality/person_id_unique (fatal)" in person["sub_checks"]
    assert "staging_data_quality/age_0_to_120 (warning)" in person["sub_checks"]
    assert "phenotype/leg_cramps" in cohort["upstream"]
    assert snapshot["jobs"]["leg_cramp_network"]["assets"] == ["network/pooled_associations"]
    assert "leg_cramps_schedule" in snapshot["schedules"]


def test_a_change_is_reported_by_entry_and_field():
    committed = {"assets": {"a/b": {"checks": ["c (blocking)"], "group": "g"}}, "jobs": {"j": {"assets": ["a/b"]}}}
    current = {"assets": {"a/b": {"checks": ["c (warns)"], "group": "h"}, "a/new": {}}, "jobs": {}}
    assert _differences(committed, current) == [
        "assets: added a/new",
        "assets: a/b checks: +c (warns), -c (blocking)",
        "assets: a/b group: 'g' -> 'h'",
        "jobs: removed j",
    ]
