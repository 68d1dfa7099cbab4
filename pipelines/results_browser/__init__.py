"""A small read-only web page over the published database: filter estimates, open an exposure, download tables.

Run it with `make results` (or `python -m pipelines.results_browser --db build/leg_cramps.duckdb`); see
docs/reporting.md.
"""

from pipelines.results_browser.app import create_app

__all__ = ["create_app"]
