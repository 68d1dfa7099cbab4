"""Extract formats: detect an extract folder's layout and load it into the canonical staging tables.

    result = load_extract_any_format(con, folder, log)   # result.extract_format, result.loads, result.warnings
    result = load_extract_any_format(con, folder, log, spark=SparkIngest(session, exchange_folder))
                                                         # on Spark where it can (result.engine, engine_fallback)

Every format (base.ExtractFormat; the canonical layout, OMOP CDM v5.3/v5.4, Synthea CSV and a site layout
described by extract_mapping.yaml, listed in registry.FORMATS) loads through the one path below: each source file
is shaped into its canonical table by a SELECT (sql/staging/) and loaded by the canonical loader, so every input
row is loaded or rejected with a reason exactly as for canonical extracts. docs/extract_formats.md describes the
mapping of each format and how to add one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import duckdb

from pipelines.engine.session import DUCKDB, SPARK

from pipelines.ingest.formats import registry
from pipelines.ingest.formats.base import DetectedFormat, FormatLoad
from pipelines.ingest.formats.common import PhenotypeVocabularies, run_sql_file
from pipelines.ingest.formats.detection import detect_format
from pipelines.ingest.loader import Log, load_tables
from pipelines.sql_quoting import quote_literal

__all__ = ["FormatLoad", "DetectedFormat", "PhenotypeVocabularies", "SparkIngest", "check_extract", "detect_format",
           "load_extract_any_format"]


@dataclass(frozen=True)
class SparkIngest:
    """Ingest on Spark where it can (a run whose warehouse sets engine = spark): the session (started when first
    needed) and the folder where Spark writes the tables DuckDB copies."""

    session: Callable[[], Any]
    exchange_folder: Path


def load_extract_any_format(con: duckdb.DuckDBPyConnection, extract_dir: Path, log: Log = lambda message: None,
                            spark: SparkIngest | None = None, warn: Log | None = None,
                            phenotype_vocabularies: PhenotypeVocabularies | None = None) -> FormatLoad:
    """Detect the extract's layout and load it into `con`'s staging tables. With `spark`, the tables are read on
    Spark (pipelines/ingest/spark_loader.py) and copied into `con` when the Spark ingest can read them (the
    canonical layout's CSV files and Parquet files of the types it reads as DuckDB does); otherwise on DuckDB, saying why through `warn` (default `log`) and in the result's
    `ingest_engine`. This is the one place that chooses where an extract is ingested.

    `phenotype_vocabularies` (PhenotypeLibrary.code_vocabularies): the phenotypes whose codes the extract cannot
    reach are reported (`unresolvable_phenotypes`, warnings); without it, none are."""
    extract_dir = Path(extract_dir)
    detected = detect_format(extract_dir)
    extract_format = registry.format_named(detected.name)
    log(f"extract format: {detected.label} ({extract_dir})")
    run_sql_file(con, "staging/format_macros.sql")
    extract_format.prepare(con, detected, log)
    sources = extract_format.sources(detected)
    engine, fallback = DUCKDB, None
    if spark is not None:
        from pipelines.ingest import spark_loader

        fallback = spark_loader.spark_ingest_refusal(detected.label, sources)
        if fallback is None:
            engine = SPARK
            log("ingest on Spark (the warehouse's engine)")
            loads = spark_loader.load_tables_on_spark_into_duckdb(spark.session(), con, extract_dir, sources,
                                                                  spark.exchange_folder, log)
        else:
            (warn or log)(f"ingest on DuckDB, not on the run's engine Spark: {fallback}")
    if engine == DUCKDB:
        with utc_session(con):  # an instant's date is its UTC date, whatever the machine's time zone
            loads = load_tables(con, extract_dir, sources, log)
    run_sql_file(con, extract_format.concept_code_map_sql)
    result = FormatLoad(detected.label, loads, engine=engine, engine_fallback=fallback)
    extract_format.report(con, detected, result, phenotype_vocabularies)
    for table in extract_format.work_tables:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    for note in result.notes:
        log(note)
    return result


@contextmanager
def utc_session(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """`con` in the time zone UTC while the extract loads, then in its own again. A timestamp with a time zone (a
    Parquet TIMESTAMP adjusted to UTC, DuckDB's TIMESTAMPTZ) is an instant; DuckDB gives its date, and its text, in
    the session's time zone, which is the machine's (TZ) unless set. Pinned to UTC, an instant is staged as its UTC
    date on every machine: the convention of the Spark session (pipelines/engine/session.py) and of Synthea's
    timestamps (written in UTC, `...Z`). A timestamp written as text keeps the date it was written with
    (docs/extract_formats.md)."""
    [(previous,)] = con.execute("SELECT current_setting('TimeZone')").fetchall()
    con.execute("SET SESSION TimeZone = 'UTC'")
    try:
        yield
    finally:
        con.execute(f"SET SESSION TimeZone = {quote_literal(previous)}")


def check_extract(extract_dir: Path,
                  phenotype_vocabularies: Callable[[], PhenotypeVocabularies] | None = None) -> list[str]:
    """The extract's layout, file headers and (OMOP) vocabulary checked in seconds, before any load: an ExtractError
    for what would stop the run, else the findings (the format, then what a load would warn about, with the
    phenotypes it takes away when `phenotype_vocabularies` is given: called only when a finding names them, since
    reading the phenotype library would double the check's time)."""
    detected = detect_format(Path(extract_dir))
    findings = [f"extract format: {detected.label} ({extract_dir})"]
    findings += [f"WARNING: {warning}"
                 for warning in registry.format_named(detected.name).check(detected, phenotype_vocabularies)]
    return findings
