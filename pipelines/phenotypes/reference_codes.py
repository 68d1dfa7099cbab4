"""The bundled reference tables (phenotypes/reference/) that check codes no installed library covers.

ICD-10-CM codes are checked against the CMS release shipped in simple-icd-10-cm (pipelines/vocabularies.py); no maintained
Python library ships ICD-9-CM, so ICD-9-CM codes are checked against ``icd9cm_codes.csv``: the CMS titles of the
codes the phenotypes use, copied from the last CMS release (version 32, FY2015) with the day they were checked.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

from pipelines import paths

REFERENCE_DIR = paths.PHENOTYPES_DIR / "reference"
ICD9CM_CODES_FILE = REFERENCE_DIR / "icd9cm_codes.csv"


@functools.lru_cache(maxsize=None)
def icd9cm_titles(path: Path = ICD9CM_CODES_FILE) -> dict[str, str]:
    """ICD-9-CM code (dotted, as staging writes it) -> its CMS title, from the bundled table."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["code"]: row["title"] for row in csv.DictReader(handle)}


def icd9cm_problem(code: str, match: str) -> str | None:
    """Why a well-formed ICD-9-CM ``code`` is not in the bundled table (``match`` 'prefix': no listed code starts
    with it); None when it is."""
    titles = icd9cm_titles()
    if match == "prefix":
        if any(listed.startswith(code) for listed in titles):
            return None
    elif code in titles:
        return None
    return (f"ICD-9-CM code {code!r} is not in {ICD9CM_CODES_FILE.relative_to(paths.REPO_ROOT)} "
            "(add it there with its CMS title and source once checked)")
