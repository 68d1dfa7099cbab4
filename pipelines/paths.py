"""Folders of the repository that the pipeline reads its definitions from, and default output locations."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
PHENOTYPES_DIR = REPO_ROOT / "phenotypes"
STUDIES_DIR = REPO_ROOT / "studies"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
DOCS_DIR = REPO_ROOT / "docs"

DEFAULT_EXTRACT = Path(os.environ.get("LEGCRAMP_EXTRACT", REPO_ROOT / "data" / "sample"))
DEFAULT_DATABASE = Path(os.environ.get("LEGCRAMP_DATABASE", REPO_ROOT / "build" / "leg_cramps.duckdb"))
