"""Every generated file is up to date: `make generate` (python -m pipelines.generate) renders them all into a
temporary folder and each must equal the committed file; a folder of generated files holds nothing else."""

from __future__ import annotations

from pipelines.generate import GENERATED_ONLY_DIRS, generated_files, write_generated_files
from pipelines.paths import REPO_ROOT


def test_every_generated_file_equals_a_fresh_rendering(tmp_path):
    written = write_generated_files(tmp_path)
    assert len(written) == len(generated_files())
    stale = [str(fresh.relative_to(tmp_path)) for fresh in written
             if not (REPO_ROOT / fresh.relative_to(tmp_path)).exists()
             or (REPO_ROOT / fresh.relative_to(tmp_path)).read_text(encoding="utf-8")
             != fresh.read_text(encoding="utf-8")]
    assert not stale, f"stale generated files (run `make generate` and commit them): {stale}"


def test_folders_of_generated_files_hold_only_generated_files():
    generated = set(generated_files())
    strays = [str(path.relative_to(REPO_ROOT)) for folder in GENERATED_ONLY_DIRS
              for path in sorted(folder.rglob("*")) if path.is_file() and path not in generated]
    assert not strays, f"files that nothing generates any more (delete them): {strays}"


def test_the_generated_files_cover_docs_suites_and_the_asset_graph():
    names = {str(path.relative_to(REPO_ROOT)) for path in generated_files()}
    assert {"docs/extract_formats.md", "docs/data_dictionary.md", "docs/phenotypes.md",
            "expectations/staging/person.json", "expectations/phenotype/phenotypes.json",
            "tests/snapshots/asset_graph.json"} <= names
