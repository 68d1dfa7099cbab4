"""Leg-cramp cohort pipeline: the Dagster code location (see pipelines/definitions.py)."""
