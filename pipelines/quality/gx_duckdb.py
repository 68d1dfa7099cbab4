"""Workaround: Great Expectations 1.x loses every DuckDB query result (upstream bug), so GX gets a buffered copy.

The upstream problem (fivetran/great_expectations#10738 and #11579, still present in GX 1.24.1 with duckdb-engine
0.17.0, DuckDB 2.0.1 and SQLAlchemy 2.1): ``SqlAlchemyExecutionEngine.execute_query`` runs the query inside
``with self.get_connection() as connection:`` and returns the cursor result *after* that block has closed the
connection; the caller fetches the rows later. Closing a SQLAlchemy connection rolls back its transaction, and a
DuckDB connection keeps only one pending result, which that ROLLBACK replaces. So GX fetches nothing: metric
bundles fail with ``IndexError: list index out of range`` and every expectation comes back as an error.

The workaround: read the rows while the connection is still open (SQLAlchemy's ``Result.freeze()``) and give GX an
in-memory copy of the result. It is applied only inside ``duckdb_results_buffered()`` and only to DuckDB engines.
Every query our suites send returns a handful of rows (aggregates, a few example rows), so the copy is small.

``tests/quality/test_quality_gx_duckdb.py`` fails when upstream fixes the bug; then delete this module and its use in
``runner.py``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from great_expectations.execution_engine.sqlalchemy_execution_engine import SqlAlchemyExecutionEngine

from pipelines.quality.gx_scoped_patch import ScopedPatch

_original_execute_query = SqlAlchemyExecutionEngine.execute_query


def _execute_query_buffered(self: SqlAlchemyExecutionEngine, query):
    if self.dialect_name != "duckdb":
        return _original_execute_query(self, query)
    with self.get_connection() as connection:
        result = connection.execute(query)
        # Statements without rows (DDL) have nothing to lose; everything else is copied before the close.
        return result.freeze()() if result.returns_rows else result


_BUFFERED_RESULTS = ScopedPatch(SqlAlchemyExecutionEngine, "execute_query", _execute_query_buffered)


def duckdb_results_buffered() -> AbstractContextManager[None]:
    """Inside this block GX reads DuckDB query results before it closes the connection (see the module docstring)."""
    return _BUFFERED_RESULTS.active()
