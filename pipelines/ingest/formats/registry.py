"""The extract formats the ingest knows, in the order detection tries them. Adding a format is one line here (and
its module: pipelines/ingest/formats/base.py says what a format declares)."""

from __future__ import annotations

from pipelines.ingest.formats import canonical, omop, site_mapping, synthea
from pipelines.ingest.formats.base import ExtractFormat

FORMATS: list[ExtractFormat] = [
    canonical.FORMAT,
    omop.FORMAT,
    synthea.FORMAT,
    site_mapping.FORMAT,
]


def format_named(name: str) -> ExtractFormat:
    return next(extract_format for extract_format in FORMATS if extract_format.name == name)


def expected_layouts() -> str:
    """What each format needs, for error messages."""
    return "Expected one of:\n" + ";\n".join(f"  - {extract_format.expected_layout()}" for extract_format in FORMATS) + "."
