"""Data quality: Great Expectations suites in the style of the OHDSI Data Quality Dashboard, run inside DuckDB.

- ``suites.py``: which checks each staging table, the phenotypes and each study's cohort get; writes
  ``expectations/{staging,phenotype,cohort}/*.json``.
- ``runner.py``: ``run_suite`` / ``run_layer`` validate a database, append to ``dq.check_results``, build Data Docs
  (``render_data_docs``: once per pipeline run, from the results the check steps stored).
- ``checks.py``: ``build_suite_asset_checks`` turns a suite into one Dagster asset check per table or study with
  the suite's expectations as sub-results (blocking when one is fatal); ``phenotype_asset_checks`` reports the
  phenotype suite, run once, on every phenotype asset.
- ``violating_rows.py``: the ``expect_no_violating_rows`` expectation (a SQL check with count and examples) and
  ``expect_no_violating_rows_per_phenotype`` (one query, one verdict per phenotype).
- ``gx_duckdb.py``: the workaround for GX losing DuckDB query results (upstream bug).
- ``valid_codes.py``: ``dq.valid_icd10cm_codes``.

Test support (the synthetic defect kind -> check map, a tiny clean staging database) is in tests/support/.

See docs/data_quality.md.
"""

import os

# No telemetry from GX, whatever imports it first (the project never phones home; see dagster.yaml).
os.environ["GX_ANALYTICS_ENABLED"] = "false"
