"""Where the extract to load is."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines import paths


class ExtractSource(dg.ConfigurableResource):
    """An extract folder in the canonical layout (docs/extract_format.md)."""

    folder: str = str(paths.DEFAULT_EXTRACT)

    @property
    def path(self) -> Path:
        return Path(self.folder).resolve()
