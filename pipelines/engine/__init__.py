"""The engine layer: the one place where the SQL files of sql/ meet an engine.

    Engine          the interface (base.py): run a SQL text or file with $name parameters, query small results,
                    list and create tables, temporary tables, transactions
    DuckDBEngine    the SQL as written, on a DuckDB connection (duckdb_engine.py)
    SparkEngine     the SQL translated by the project dialect (dialect.py) and run on a SparkSession
                    (spark_engine.py; pyspark is imported only when a SparkSession is given)
    as_engine(x)    an Engine for a DuckDB connection, a SparkSession or an Engine
    session.py      the process's local Spark session (or Spark Connect) and its settings
    transfer.py     tables handed between DuckDB and Spark as Parquet (stage inputs out, stage outputs back)
    spark_ingest.py a CSV file on Spark as records numbered by physical line, split by DuckDB's quoting rules, and
                    the loader's typing SQL with DuckDB's casts (for pipelines/ingest/spark_loader.py)

Dialect-specific SQL lives only in this package.
"""

from __future__ import annotations

from typing import Any

from pipelines.engine.base import Engine, parameters_used
from pipelines.engine.duckdb_engine import DuckDBEngine


def as_engine(target: Any) -> Engine:
    """The engine that runs SQL on `target`: an Engine as it is, a DuckDB connection, or a SparkSession."""
    if isinstance(target, Engine):
        return target
    if type(target).__module__.startswith("pyspark"):
        from pipelines.engine.spark_engine import SparkEngine

        return SparkEngine(target)
    return DuckDBEngine(target)


__all__ = ["DuckDBEngine", "Engine", "as_engine", "parameters_used"]
