"""The shared Spark session's catalogue between test modules: each module that writes tables on the session starts
from an empty catalogue and leaves one, so no module reads another's tables (the modules build different studies
from the same table names). The one exception is claimed by name: the group's study runs leave the Spark run's
tables for the modules that compare them (tests/spark/conftest.py `study_runs`), which check the claim before they
read (`catalog_claimed_by`), so a catalogue another module emptied or refilled in between fails loudly instead of
being compared."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

# A setting of the session (not of Spark) naming who filled the catalogue and left its tables to be read.
CATALOG_CLAIM = "legcramp.tests.catalog_claimed_by"


def drop_every_table(spark: Any) -> None:
    """Drop every table and temporary view of the session (the databases stay; they are names only), and any
    claim on them."""
    for (database,) in spark.sql("SHOW DATABASES").collect():
        for row in spark.sql(f"SHOW TABLES IN `{database}`").collect():
            if row["isTemporary"]:
                spark.catalog.dropTempView(row["tableName"])
            else:
                spark.sql(f"DROP TABLE IF EXISTS `{database}`.`{row['tableName']}`")
    spark.conf.unset(CATALOG_CLAIM)


@contextmanager
def empty_catalog(spark: Any) -> Iterator[None]:
    """An empty catalogue inside the block, and again after it."""
    drop_every_table(spark)
    try:
        yield
    finally:
        drop_every_table(spark)


def claim_catalog(spark: Any, owner: str) -> None:
    """Say that the catalogue's tables are `owner`'s, left for other tests to read."""
    spark.conf.set(CATALOG_CLAIM, owner)


def catalog_claimed_by(spark: Any) -> str | None:
    """Whose tables the catalogue holds (`claim_catalog`), or None when no one claimed them since it was emptied."""
    return spark.conf.get(CATALOG_CLAIM, None)
