"""Simulated data for the estimator tests and bench/validate_estimators.py; no pipeline stage imports it.

It lives in the package (not tests/support/) only because the benchmark, which runs outside the test suite,
needs it too; everything that only the tests use lives in tests/support/.
"""
