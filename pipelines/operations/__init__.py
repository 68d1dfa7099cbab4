"""Operations: schedules per study, the extract-drop sensor, the run-failure sensor and run-config checks.

See docs/operations.md.
"""
