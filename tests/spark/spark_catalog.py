"""The shared Spark session's catalogue between test modules: each module that writes tables on the session starts
from an empty catalogue and leaves one, so no module reads another's tables (the modules build different studies
from the same table names)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


def drop_every_table(spark: Any) -> None:
    """Drop every table and temporary view of the session (the databases stay; they are names only)."""
    for (database,) in spark.sql("SHOW DATABASES").collect():
        for row in spark.sql(f"SHOW TABLES IN `{database}`").collect():
            if row["isTemporary"]:
                spark.catalog.dropTempView(row["tableName"])
            else:
                spark.sql(f"DROP TABLE IF EXISTS `{database}`.`{row['tableName']}`")


@contextmanager
def empty_catalog(spark: Any) -> Iterator[None]:
    """An empty catalogue inside the block, and again after it."""
    drop_every_table(spark)
    try:
        yield
    finally:
        drop_every_table(spark)
