"""Helpers shared by the test files (hostile extracts for the fault tests)."""
