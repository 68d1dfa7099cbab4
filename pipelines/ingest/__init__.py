"""Ingest domain: the extract folder -> staging.* tables, reject table, load counts and manifest."""
