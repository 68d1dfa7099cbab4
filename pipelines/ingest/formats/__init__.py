"""Extract formats: detect an extract folder's layout and load it into the canonical staging tables.

    result = load_extract_any_format(con, folder, log)   # result.extract_format, result.loads, result.warnings

- canonical: pipelines/ingest/loader.load_extract, unchanged (plus an empty vocabulary.concept_code_map);
- OMOP CDM v5.3/v5.4 (omop.py), Synthea CSV (synthea.py), a site layout described by extract_mapping.yaml
  (site_mapping.py): each source file is shaped into its canonical table by a SELECT (sql/staging/) and loaded by
  the canonical loader, so every input row is loaded or rejected with a reason exactly as for canonical extracts.

docs/extract_formats.md describes the mapping of each format.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.ingest.formats.common import FormatLoad, run_sql_file
from pipelines.ingest.formats.detection import (
    CANONICAL,
    OMOP,
    SITE_MAPPING,
    SYNTHEA,
    DetectedFormat,
    detect_format,
)
from pipelines.ingest.loader import Log, load_extract

__all__ = ["FormatLoad", "DetectedFormat", "check_extract", "detect_format", "load_extract_any_format"]


def load_extract_any_format(con: duckdb.DuckDBPyConnection, extract_dir: Path,
                            log: Log = lambda message: None) -> FormatLoad:
    extract_dir = Path(extract_dir)
    detected = detect_format(extract_dir)
    log(f"extract format: {detected.label} ({extract_dir})")
    if detected.name == CANONICAL:
        loads = load_extract(con, extract_dir, log)
        run_sql_file(con, "staging/empty_concept_code_map.sql")
        return FormatLoad(CANONICAL, loads)
    if detected.name == OMOP:
        from pipelines.ingest.formats.omop import load_omop
        result = load_omop(con, extract_dir, detected, log)
    elif detected.name == SYNTHEA:
        from pipelines.ingest.formats.synthea import load_synthea
        result = load_synthea(con, extract_dir, detected, log)
    else:
        assert detected.name == SITE_MAPPING
        from pipelines.ingest.formats.site_mapping import load_site_mapping
        result = load_site_mapping(con, extract_dir, detected, log)
    for note in result.notes:
        log(note)
    return result


def check_extract(extract_dir: Path) -> list[str]:
    """The extract's layout, file headers and (OMOP) vocabulary checked in seconds, before any load: an ExtractError
    for what would stop the run, else the findings (the format, then what a load would warn about)."""
    detected = detect_format(Path(extract_dir))
    findings = [f"extract format: {detected.label} ({extract_dir})"]
    if detected.name == OMOP:
        from pipelines.ingest.formats.omop import check_omop
        findings += [f"WARNING: {warning}" for warning in check_omop(detected)]
    return findings
