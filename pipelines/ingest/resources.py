"""Where the extract to load is, and how much of it the ingest may reject."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines import paths
from pipelines.ingest.reject_share import DEFAULT_MAX_REJECT_SHARE


class ExtractSource(dg.ConfigurableResource):
    """An extract folder in the canonical layout (docs/extract_formats.md)."""

    folder: str = str(paths.DEFAULT_EXTRACT)
    # The largest share of a table's records (and of the event records rejected as unknown_person) the ingest may
    # reject before the run stops unpublished (pipelines/ingest/reject_share.py).
    max_reject_share: float = DEFAULT_MAX_REJECT_SHARE

    @property
    def path(self) -> Path:
        return Path(self.folder).resolve()
