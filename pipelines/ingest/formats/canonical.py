"""The canonical layout (docs/extract_formats.md): one file per canonical table, read as it is (the identity format:
no shaping, every vocabulary reachable)."""

from __future__ import annotations

from pathlib import Path

from pipelines import extract_spec as spec
from pipelines.ingest.formats.base import DetectedFormat, ExtractFormat, Signature
from pipelines.ingest.loader import ExtractError, TableSource, canonical_sources, resolve_extract

CANONICAL = "canonical"


class CanonicalFormat(ExtractFormat):
    name = CANONICAL
    signature = Signature("person", ("person_id", "year_of_birth", "sex"))
    required_columns = {table.name: table.required_columns for table in spec.TABLES if table.required}

    def expected_layout(self) -> str:
        return ("canonical extract (docs/extract_formats.md): person.csv with person_id, year_of_birth, sex, and the "
                "other canonical tables")

    def explain_mismatch(self, folder: Path, files: dict[str, Path]) -> str:
        """Canonical-looking table files: what the canonical layout misses, in the canonical loader's words."""
        if not any(table.name in files for table in spec.TABLES):
            return ""
        try:
            resolve_extract(folder)
        except ExtractError as canonical_problem:
            return f"As a canonical extract: {canonical_problem} "
        return ""

    def detect(self, folder: Path, files: dict[str, Path]) -> DetectedFormat:
        # The canonical loader finds the files by their exact names and checks every header itself.
        return DetectedFormat(self.name, None, files)

    def sources(self, detected: DetectedFormat) -> dict[str, TableSource | None]:
        return canonical_sources(detected.folder)


FORMAT = CanonicalFormat()
