"""Every generated file of the repository, and the one command that rewrites them all: `make generate`
(`python -m pipelines.generate`).

Generated files are never edited by hand. Each is rendered from its source of truth: the extract layout
(pipelines/extract_spec.py), the data dictionary (pipelines/data_dictionary.yaml), the phenotype library
(phenotypes/), the data-quality suites (pipelines/quality/suites.py) and the Dagster definitions (the asset-graph
snapshot that tests/end_to_end/test_asset_graph_snapshot.py compares against, as dagster-open-platform's test_defs.py
snapshots its asset specs). `python -m pipelines.generate --out DIR` writes them under DIR instead of the
repository, which is how tests/core/test_generated_files.py finds a stale one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from pipelines.paths import EXPECTATIONS_DIR, REPO_ROOT

ASSET_GRAPH_SNAPSHOT = REPO_ROOT / "tests" / "snapshots" / "asset_graph.json"


def _key(key) -> str:
    return "/".join(key.path)


def _sub_checks(metadata) -> list[dict]:
    """The sub-checks a data-quality check reports (its spec's metadata `checks`: name and severity of each)."""
    listed = (metadata or {}).get("checks")
    return list(getattr(listed, "value", listed) or [])


def asset_graph_snapshot() -> dict:
    """What the Dagster code location defines: each asset's group, partitions, upstream assets and checks (with
    their blocking flag; for a data-quality check, each sub-check it reports and its severity), each job's
    assets, the schedules and the sensors. Sorted, so that the text changes only
    when the definitions do."""
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=_key):
        node = graph.get(key)
        assets[_key(key)] = {
            "group": node.group_name,
            "partitions": str(node.partitions_def) if node.partitions_def else None,
            "upstream": sorted(_key(parent) for parent in node.parent_keys),
            "checks": sorted(f"{check.name} ({'blocking' if graph.get(check).blocking else 'warns'})"
                             for check in node.check_keys),
        }
        sub_checks = sorted(f"{check.name}/{sub['name']} ({sub['severity']})" for check in node.check_keys
                            for sub in _sub_checks(graph.get(check).metadata))
        if sub_checks:
            assets[_key(key)]["sub_checks"] = sub_checks
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit job of all assets
            continue
        jobs[job.name] = {
            "assets": sorted(_key(key) for key in job.asset_layer.selected_asset_keys),
            "partitions": str(job.partitions_def) if job.partitions_def else None,
        }
    schedules = {schedule.name: {"job": schedule.job_name, "cron": schedule.cron_schedule,
                                 "default_status": schedule.default_status.value}
                 for schedule in sorted(defs.schedules or [], key=lambda s: s.name)}
    sensors = {sensor.name: {"default_status": sensor.default_status.value}
               for sensor in sorted(defs.sensors or [], key=lambda s: s.name)}
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def asset_graph_snapshot_text() -> str:
    return json.dumps(asset_graph_snapshot(), indent=2, sort_keys=True) + "\n"


def generated_files() -> dict[Path, Callable[[], str]]:
    """Each generated file (path in the repository) and the function that renders its text."""
    from pipelines import extract_spec as spec
    from pipelines.generated_docs import GENERATED_PAGES
    from pipelines.phenotypes.reference_page import DOCS_PATH as PHENOTYPES_PAGE
    from pipelines.phenotypes.reference_page import generate_markdown
    from pipelines.phenotypes.loader import load_phenotype_library
    from pipelines.quality import suites

    files: dict[Path, Callable[[], str]] = {
        **GENERATED_PAGES,
        PHENOTYPES_PAGE: lambda: generate_markdown(load_phenotype_library()),
    }
    for table in spec.TABLES:
        suite = suites.build_staging_suite(table)
        files[suites.suite_path(suite["name"])] = lambda suite=suite: suites.suite_json_text(suite)
    files[suites.suite_path(suites.PHENOTYPE_SUITE)] = lambda: suites.suite_json_text(suites.build_phenotype_suite())
    files[ASSET_GRAPH_SNAPSHOT] = asset_graph_snapshot_text
    return files


# Folders that hold nothing but generated files: a file there that nothing generates is stale too (a suite whose
# table is gone), and tests/core/test_generated_files.py says so.
GENERATED_ONLY_DIRS = [EXPECTATIONS_DIR]


def write_generated_files(root: Path = REPO_ROOT) -> list[Path]:
    """Render every generated file under `root` (the repository by default); returns the paths written."""
    written = []
    for path, render in generated_files().items():
        target = root / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(), encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rewrite every generated file of the repository.")
    parser.add_argument("--out", type=Path, default=REPO_ROOT,
                        help="write under this folder instead of the repository (same relative paths)")
    args = parser.parse_args(argv)
    for path in write_generated_files(args.out.resolve()):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
