"""Publish domain: the run's build file replaces the published database atomically."""
