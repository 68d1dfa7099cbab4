"""Extract formats: detect an extract folder's layout and load it into the canonical staging tables.

    result = load_extract_any_format(con, folder, log)   # result.extract_format, result.loads, result.warnings

Every format (base.ExtractFormat; the canonical layout, OMOP CDM v5.3/v5.4, Synthea CSV and a site layout
described by extract_mapping.yaml, listed in registry.FORMATS) loads through the one path below: each source file
is shaped into its canonical table by a SELECT (sql/staging/) and loaded by the canonical loader, so every input
row is loaded or rejected with a reason exactly as for canonical extracts. docs/extract_formats.md describes the
mapping of each format and how to add one.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.ingest.formats import registry
from pipelines.ingest.formats.base import DetectedFormat, FormatLoad
from pipelines.ingest.formats.common import run_sql_file
from pipelines.ingest.formats.detection import detect_format
from pipelines.ingest.loader import Log, load_tables

__all__ = ["FormatLoad", "DetectedFormat", "check_extract", "detect_format", "load_extract_any_format"]


def load_extract_any_format(con: duckdb.DuckDBPyConnection, extract_dir: Path,
                            log: Log = lambda message: None) -> FormatLoad:
    extract_dir = Path(extract_dir)
    detected = detect_format(extract_dir)
    extract_format = registry.format_named(detected.name)
    log(f"extract format: {detected.label} ({extract_dir})")
    run_sql_file(con, "staging/format_macros.sql")
    extract_format.prepare(con, detected, log)
    loads = load_tables(con, extract_dir, extract_format.sources(detected), log)
    run_sql_file(con, extract_format.concept_code_map_sql)
    result = FormatLoad(detected.label, loads)
    extract_format.report(con, detected, result)
    for table in extract_format.work_tables:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    for note in result.notes:
        log(note)
    return result


def check_extract(extract_dir: Path) -> list[str]:
    """The extract's layout, file headers and (OMOP) vocabulary checked in seconds, before any load: an ExtractError
    for what would stop the run, else the findings (the format, then what a load would warn about)."""
    detected = detect_format(Path(extract_dir))
    findings = [f"extract format: {detected.label} ({extract_dir})"]
    findings += [f"WARNING: {warning}" for warning in registry.format_named(detected.name).check(detected)]
    return findings
