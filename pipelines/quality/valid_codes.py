"""Reference tables of valid codes that the suites check against, loaded into the checked database's ``dq`` schema.

``dq.valid_icd10cm_codes`` holds every ICD-10-CM category and subcategory (billable or not, with the dot, e.g.
``R25`` and ``R25.2``) of the release that ships with the installed ``simple_icd_10_cm`` package; chapters and
blocks (``A00-B99``) are not codes and are left out. The table records the package version it came from.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from importlib.metadata import version

import duckdb

from pipelines import tables
from pipelines.vocabularies import icd10cm_codes

VALID_ICD10CM_TABLE = tables.VALID_ICD10CM_CODES


@lru_cache(maxsize=1)
def valid_icd10cm_codes() -> tuple[str, ...]:
    """Every ICD-10-CM category and subcategory, with the dot, sorted."""
    return tuple(sorted(icd10cm_codes()))


def _source() -> str:
    return f"simple_icd_10_cm {version('simple_icd_10_cm')}"


def ensure_valid_icd10cm_codes(con: duckdb.DuckDBPyConnection) -> None:
    """Create dq.valid_icd10cm_codes in the connected database unless it holds this package version's codes."""
    source = _source()
    con.execute("CREATE SCHEMA IF NOT EXISTS dq")
    # fetchall, not fetchone: a result read only partly leaves the connection busy for DuckDB 2.0.
    [(exists,)] = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'dq' AND table_name = 'valid_icd10cm_codes'"
    ).fetchall()
    if exists:
        [(loaded_from,)] = con.execute(f"SELECT any_value(source) FROM {VALID_ICD10CM_TABLE}").fetchall()
        if loaded_from == source:
            return
    con.execute(
        f"CREATE OR REPLACE TABLE {VALID_ICD10CM_TABLE} AS "
        "SELECT unnest($codes) AS code, $source AS source",
        {"codes": list(valid_icd10cm_codes()), "source": source},
    )


def ensure_valid_icd10cm_codes_on_spark(spark: Any) -> None:
    """The same table on a Spark session (for suites validated there), through the engine layer, unless the
    session has this package version's codes already."""
    from pipelines.engine import as_engine

    engine = as_engine(spark)
    source = _source()
    if VALID_ICD10CM_TABLE in engine.table_names():
        if engine.records(f"SELECT any_value(source) AS source FROM {VALID_ICD10CM_TABLE}")[0]["source"] == source:
            return
    engine.execute(f"CREATE SCHEMA IF NOT EXISTS dq; DROP TABLE IF EXISTS {VALID_ICD10CM_TABLE}; "
                   f"CREATE TABLE {VALID_ICD10CM_TABLE} (code VARCHAR, source VARCHAR)")
    engine.insert_records(VALID_ICD10CM_TABLE, [{"code": code, "source": source} for code in valid_icd10cm_codes()])
