"""Load a canonical extract (CSV or Parquet) into Spark's `staging` tables with the DuckDB loader's accounting
(loader.py).

Every input row is loaded into `staging.<table>` or kept in `ingest.rejects` with its file, PHYSICAL line, column
and reason, and every physical line of the file is the header, a blank line, or a line of exactly one record:
input records = loaded + rejected, checked per table. What differs from loader.py is only how records are read:

1. the file is read as numbered physical lines (pipelines/engine/spark_ingest.py `numbered_lines`), not by a CSV
   reader, so each record's line is its first physical line, by construction;
2. a record whose quoted field spans lines (rare) is found from the lines whose quote stays open: those lines and
   the few after each are brought to the driver and joined until the quote closes, as DuckDB's reader does. A
   quote that is never closed and swallows the lines after it stops the load naming its line (the loader's
   rule); a malformed record over several lines does too; on the file's last line it is a malformed_line reject;
3. fields are split in Spark SQL by DuckDB's quoting rules (`csv_grammar`); a record that does not follow them, has
   the wrong number of fields or is not UTF-8 is a malformed_line reject (detail: DuckDB's error type);
4. typing, reject reasons and their order are the loader's own SQL (`staged_rows_sql`, `row_checks`,
   `reject_detail`), translated by the ingest dialect (spark_ingest.IngestSpark); duplicate ids and unknown persons
   are decided as the loader decides them (the first record of an id loads; person before the event tables).

Formats: the canonical layout's .csv, .csv.gz and .parquet files. A Parquet file is read by Spark's Parquet reader
(`load_parquet_table_on_spark`): its rows are numbered by their position in the file, as DuckDB's loader numbers
them, and typed by the loader's SQL for the file's own column types (SPARK_PARQUET_TYPES: those whose DuckDB
casts, checks and rejected-row records Spark reproduces). Parquet files with other types and the OMOP, Synthea and
site-mapping layouts (pipelines/ingest/formats/) are not read on Spark: `spark_ingest_refusal` names why, and a run
on Spark ingests them on DuckDB and says so (pipelines/ingest/formats/__init__.py, the one place that chooses).

In a run (`load_tables_on_spark_into_duckdb`) Spark's staging tables and rejects are then copied into the run's
DuckDB database, with the loader's load counts, manifest and comments, so every later stage finds what a DuckDB
ingest leaves; Spark's own staging tables are marked as the run's (transfer.mark_loaded_for), so the run's
phenotype and cohort stages read them on Spark instead of DuckDB's copy sent back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipelines import extract_spec as spec
from pipelines import tables
from pipelines.engine.spark_engine import SPARK_TYPES
from pipelines.engine.spark_ingest import (DOUBLE, INTEGER, TEXT, TIMESTAMP, carriage_return_outside_quotes_column,
                                           csv_grammar, duckdb_json_object, follows_grammar_column, ingest_spark_sql,
                                           numbered_lines, numbered_parquet_rows, opens_quote_column,
                                           record_fields_column)
from pipelines.engine.transfer import copy_tables_to_duckdb, mark_loaded_for
from pipelines.extract_spec import Table
from pipelines.ingest import loader
from pipelines.ingest.loader import ExtractError, Log, TableLoad, TableSource
from pipelines.sql_quoting import quote_spark_identifier, quote_spark_literal

# DuckDB's reader refuses a record longer than its max_line_size (2,097,152 bytes by default): a quote still open
# after that many characters is one that is never closed.
MAX_RECORD_CHARACTERS = 2_097_152
_FIRST_WINDOW = 64  # lines fetched after a line whose quote stays open, doubled until it closes
# The distinct person ids of Spark's staging.person (a temporary view), written once the person table is loaded.
KNOWN_PERSONS = "_known_persons"

REJECTS_SCHEMA = ("table_name STRING, file_name STRING, line BIGINT, column_name STRING, reason STRING, "
                  "detail STRING, record STRING")


def create_ingest_tables(spark: Any) -> None:
    """The staging and ingest databases and an empty ingest.rejects (the loader's columns)."""
    spark.sql("CREATE DATABASE IF NOT EXISTS staging")
    spark.sql("CREATE DATABASE IF NOT EXISTS ingest")
    spark.sql(f"DROP TABLE IF EXISTS {tables.INGEST_REJECTS}")
    spark.sql(f"CREATE TABLE {tables.INGEST_REJECTS} ({REJECTS_SCHEMA}) USING parquet")


def create_empty_staging_table(spark: Any, table: Table) -> None:
    spark.sql(f"DROP TABLE IF EXISTS staging.{table.name}")
    columns = ", ".join(f"{quote_spark_identifier(c.name)} {SPARK_TYPES[c.type]}" for c in table.columns)
    spark.sql(f"CREATE TABLE staging.{table.name} ({columns}) USING parquet")


def _spans(lines: Any, path: Path, openers: list[int], last_line: int, grammar_py) -> list[tuple]:
    """The records over several lines: [(first line, last line, text, valid UTF-8)]. A quote opened on the file's
    last line stays a one-line record (a malformed_line reject); one that swallows the lines after it, or runs
    beyond DuckDB's longest record, stops the load."""
    from pyspark.sql import functions as F

    still_open = re.compile(grammar_py.still_open)
    spans, covered_to = [], 0
    for opener in openers:
        if opener <= covered_to:
            continue  # a line inside an earlier record's quoted field
        window, end = _FIRST_WINDOW, None
        while end is None:
            rows = (lines.where((F.col("line") >= opener) & (F.col("line") <= opener + window))
                    .orderBy("line").select("line", "text", "valid_utf8").collect())
            text, valid = "", True
            for i, (line, line_text, line_valid) in enumerate(rows):
                text = line_text if i == 0 else text + "\n" + line_text
                valid = valid and bool(line_valid)
                if not still_open.match(text):
                    end = line
                    break
                if len(text) > MAX_RECORD_CHARACTERS:
                    break
            if end is None and (rows[-1][0] >= last_line or len(text) > MAX_RECORD_CHARACTERS):
                if opener == last_line:
                    break
                first = rows[0][1]
                raise ExtractError(
                    f"{path}: line {opener}: the reader could not find the end of this record (UNQUOTED VALUE) "
                    f"and read the lines after it into it. The line starts {first[:80]!r}: a quote there is "
                    "probably never closed. Close or remove the quote (a field that contains a quote must be "
                    "quoted with the quote doubled) and load again.")
            window *= 2
        if end is None:
            break  # the last line: its own record
        spans.append((opener, end, text, valid))
        covered_to = end
    return spans


def load_csv_table_on_spark(spark: Any, table: Table, path: Path,
                            log: Log = lambda message: None) -> tuple[TableLoad, Any]:
    """Load one CSV file into Spark's staging.<table>; return the counts (loader.TableLoad) and its rejects (a
    DataFrame of ingest.rejects rows, written by the caller with the other tables' in one job)."""
    from pyspark.sql import functions as F

    header = loader.read_csv_header(path)
    delimiter = loader.csv_delimiter(path)
    by_lower, ignored = loader.header_columns(path, table, header)
    log(f"{table.name}: reading {path.name} on Spark")
    grammar, grammar_py = csv_grammar(delimiter), csv_grammar(delimiter, python=True)

    # 1. numbered physical lines; the lines whose quote stays open start records over several lines
    lines = numbered_lines(spark, path)
    data = lines.where(F.col("line") > 1)
    marked = data.select("line", (F.col("text") != "").alias("filled"),
                         opens_quote_column(F.col("text"), grammar).alias("opens"),
                         carriage_return_outside_quotes_column(F.col("text")).alias("inner_cr"))
    summary = marked.agg(F.count("*"), F.coalesce(F.max("line"), F.lit(1)),
                         F.sum(F.when(~F.col("filled"), 1).otherwise(0)),
                         F.sort_array(F.collect_list(F.when(F.col("opens"), F.col("line")))),
                         F.slice(F.sort_array(F.collect_list(F.when(F.col("inner_cr"), F.col("line")))), 1, 100)
                         ).first()
    physical_lines, last_line, empty_lines = int(summary[0]), int(summary[1]), int(summary[2] or 0)
    openers = list(summary[3])
    spans = _spans(lines, path, openers, last_line, grammar_py) if openers else []
    # A CR outside quotes that ends no line: DuckDB's reader refuses the file, so the Spark ingest does too (the
    # lines of records over several lines left out: their quotes span lines).
    inner_crs = [line for line in summary[4] if not any(first <= line <= last for first, last, _, _ in spans)]
    if inner_crs:
        raise loader.inner_carriage_return_error(path, inner_crs[0])

    # 2. records: each line outside a multi-line record that is not blank, and the multi-line records
    single = data.where(F.col("text") != "")
    if spans:
        covered = spark.createDataFrame([(first, last) for first, last, _, _ in spans], "first BIGINT, last BIGINT") \
            .select(F.explode(F.sequence("first", "last")).alias("line"))
        single = single.join(F.broadcast(covered), "line", "left_anti")
        multi = spark.createDataFrame([(first, text, valid) for first, _, text, valid in spans],
                                      "line BIGINT, text STRING, valid_utf8 BOOLEAN")
        records = single.select("line", "text", "valid_utf8").unionByName(multi)
    else:
        records = single.select("line", "text", "valid_utf8")
    fields = record_fields_column("text", grammar, len(header))
    records = records.select(
        "line", "text", fields.alias("fields"),
        F.when(~F.col("valid_utf8"), F.lit("INVALID ENCODING"))
         .when(~follows_grammar_column(F.col("text"), grammar), F.lit("UNQUOTED VALUE"))
         .when(F.size(fields) < len(header), F.lit("MISSING COLUMNS"))
         .when(F.size(fields) > len(header), F.lit("TOO MANY COLUMNS")).alias("error_type"),
    ).localCheckpoint(eager=False)  # stored by the first job that reads it (step 5), not by a job of its own

    # 3. malformed records; one over several lines stops the load (as in loader._reconcile). Only the records
    # joined from several lines (spans) can be one, so a file without them needs no job here.
    [bad_line] = records.agg(F.min(F.when(F.col("error_type").isNotNull() & F.col("text").contains("\n"),
                                          F.col("line")))).first() if spans else [None]
    if bad_line is not None:
        bad = records.where(F.col("line") == bad_line).first()
        raise ExtractError(
            f"{path}: line {bad_line}: the reader could not find the end of this record ({bad['error_type']}) and "
            f"read the lines after it into it. The line starts {bad['text'].split(chr(10))[0][:80]!r}: a quote "
            "there is probably never closed. Close or remove the quote (a field that contains a quote must be "
            "quoted with the quote doubled) and load again.")
    malformed_rejects = records.where(F.col("error_type").isNotNull()).select(
        F.lit(table.name).alias("table_name"), F.lit(path.name).alias("file_name"), F.col("line"),
        F.lit(None).cast("string").alias("column_name"), F.lit("malformed_line").alias("reason"),
        F.concat(F.col("error_type"), F.lit(": "),
                 F.when(F.col("error_type") == "INVALID ENCODING",
                        F.lit("Invalid unicode (byte sequence mismatch) detected. This file is not utf-8 encoded; "
                              + loader.ENCODING_FIX))
                 .when(F.col("error_type") == "UNQUOTED VALUE", F.lit("Value with unterminated quote found."))
                 .otherwise(F.concat(F.lit(f"Expected Number of Columns: {len(header)} Found: "),
                                     F.size("fields").cast("string")))).alias("detail"),
        F.col("text").alias("record"))

    # 4. the well-formed records as the loader's `_source`, typed and checked by the loader's SQL
    good = records.where(F.col("error_type").isNull())
    good.select(F.col("line").alias("_record"),
                *[F.col("fields")[i].alias(name) for i, name in enumerate(header)]) \
        .createOrReplaceTempView("_source")
    source = loader.OpenedSource.text_records(header, by_lower, ignored)

    # 5. each row's reason: the first parse problem, else a repeated id or an unknown person (the loader's
    # _mark_late_rejects); stored once, then split into the loaded rows and the rejects
    classified = _classified(spark, table, source)
    row_rejects = _write_staging_table(spark, table, path, classified)

    # 6. the counts, from the stored rows; input = loaded + rejected, and the lines = records + blank lines + the
    # line breaks inside quoted fields
    # (one job over the stored rows: the well-formed records' reasons and the malformed records')
    reasons = classified.select("reason").unionByName(
        records.where(F.col("error_type").isNotNull()).select(F.lit("malformed_line").alias("reason")))
    counts = {reason: int(n) for reason, n in reasons.groupBy("reason").count().collect()}
    loaded = counts.pop(None, 0)
    input_records = loaded + sum(counts.values())
    quoted_line_breaks = sum(last - first for first, last, _, _ in spans)
    # Empty lines inside a quoted field belong to their record; the others are blank lines (skipped, as DuckDB does).
    blank_lines = empty_lines - sum(piece == "" for _, _, text, _ in spans for piece in text.split("\n")[1:])
    result = TableLoad(
        table=table.name, file=path.name, input_records=input_records, loaded=loaded,
        rejected_by_reason={reason: counts.get(reason, 0) for reason in spec.REJECT_REASON_CODES},
        ignored_columns=ignored, physical_lines=physical_lines, blank_lines=blank_lines,
        quoted_line_breaks=quoted_line_breaks)
    if result.input_records != result.loaded + result.rejected:
        raise AssertionError(f"{path}: row accounting does not add up: {result}")
    if physical_lines != input_records + blank_lines + quoted_line_breaks:
        raise AssertionError(f"{path}: {physical_lines:,} data lines are not {input_records:,} records, "
                             f"{blank_lines:,} blank lines and {quoted_line_breaks:,} line breaks inside quoted fields")
    for view in ("_source", "_staged"):
        spark.catalog.dropTempView(view)
    log(f"{table.name}: {result.input_records:,} records, {result.loaded:,} loaded, {result.rejected:,} rejected "
        "(on Spark)")
    return result, row_rejects.unionByName(malformed_rejects)


def _classified(spark: Any, table: Table, source: loader.OpenedSource,
                json_kinds: dict[str, str] | None = None) -> Any:
    """The records of the view `_source` typed and checked by the loader's SQL, each with its reason (NULL: it
    loads), column, detail and record (`_classified_sql`); stored by the first job that reads them. `json_kinds`:
    typed sources' JSON kinds (spark_ingest.ingest_spark_sql)."""
    checks = loader.row_checks(table, source)
    spark.sql(ingest_spark_sql(loader.staged_rows_sql(table, source, checks), json_kinds)) \
        .createOrReplaceTempView("_staged")
    # Spark SQL text, not translated: its literals are Spark's (a detail holds an apostrophe)
    first_failing = (loader.check_case(checks, lambda reason, column: reason, quote_spark_literal),
                     loader.check_case(checks, lambda reason, column: column, quote_spark_literal),
                     loader.check_case(checks, lambda reason, column: loader.reject_detail(reason, column, table),
                                       quote_spark_literal))
    return spark.sql(_classified_sql(table, *first_failing)).localCheckpoint(eager=False)


def _write_staging_table(spark: Any, table: Table, path: Path, classified: Any) -> Any:
    """Write the loaded rows of `classified` as staging.<table>; return its rejected rows as ingest.rejects rows
    (the line: the record's number, its physical line for CSV, its row for Parquet)."""
    from pyspark.sql import functions as F

    names = [column.name for column in table.columns]
    spark.sql(f"DROP TABLE IF EXISTS staging.{table.name}")
    classified.where("reason IS NULL").select(*names).write.format("parquet").saveAsTable(f"staging.{table.name}")
    if table.name == spec.PERSON.name:
        # The event tables' unknown_person test reads the person ids: found once, not once per table.
        spark.table(f"staging.{table.name}").select(F.col("person_id").alias("_known_person")).distinct() \
            .localCheckpoint(eager=True).createOrReplaceTempView(KNOWN_PERSONS)
    return classified.where("reason IS NOT NULL").select(
        F.lit(table.name).alias("table_name"), F.lit(path.name).alias("file_name"), F.col("_record").alias("line"),
        "column_name", "reason", "detail", "record")


def _classified_sql(table: Table, reason_case: str, column_case: str, detail_case: str) -> str:
    """Every well-formed record of `_staged` with its reason (NULL: it loads), column, detail and record: the first
    parse problem (the loader's first failing check `_check`, named by the CASEs of loader.check_case), else a
    repeated id (every copy after the first record of an id), else a person the staging.person table does not have
    (loader._mark_late_rejects decides the same way)."""
    pk = table.primary_key
    typed_record = duckdb_json_object([(c.name, quote_spark_identifier(c.name), STAGING_JSON_KINDS[c.type])
                                       for c in table.columns])
    copy = (f"CASE WHEN _check IS NULL THEN row_number() OVER (PARTITION BY _check IS NULL, {quote_spark_identifier(pk)} "
            "ORDER BY _record) END") if pk else "1"
    unknown, persons = "FALSE", ""
    if table.references_person:
        unknown = "_check IS NULL AND known._known_person IS NULL"
        persons = f"LEFT JOIN {KNOWN_PERSONS} known ON known._known_person = s.person_id"
    pk_literal = quote_spark_literal(pk or "")
    duplicate_detail = quote_spark_literal(loader.reject_detail("duplicate_primary_key", pk or "", table))
    return f"""
        SELECT *,
               CASE WHEN _check IS NOT NULL THEN {reason_case} WHEN _copy > 1 THEN 'duplicate_primary_key'
                    WHEN _unknown THEN 'unknown_person' END AS reason,
               CASE WHEN _check IS NOT NULL THEN {column_case} WHEN _copy > 1 THEN {pk_literal}
                    WHEN _unknown THEN 'person_id' END AS column_name,
               CASE WHEN _check IS NOT NULL THEN {detail_case}
                    WHEN _copy > 1 THEN {duplicate_detail}
                    WHEN _unknown THEN 'person_id ' || person_id || ' is not in the person table' END AS detail,
               CASE WHEN _check IS NOT NULL THEN _raw_record WHEN _copy > 1 OR _unknown THEN {typed_record}
                    END AS record
        FROM (SELECT s.*, {copy} AS _copy, {unknown} AS _unknown FROM _staged s {persons})"""


def spark_ingest_refusal(extract_format: str, sources: dict[str, TableSource | None]) -> str | None:
    """Why the Spark ingest cannot read these sources (of the layout labelled `extract_format`) with the DuckDB
    loader's accounting, or None when it can: it reads the canonical layout's files, unshaped: CSV (.csv, .csv.gz),
    and Parquet of the types `parquet_refusal` accepts. A run on Spark ingests the others on DuckDB and says why
    (pipelines/ingest/formats/__init__.py)."""
    if any(source.shape_sql is not None for source in sources.values() if source is not None):
        return (f"the {extract_format} layout is shaped into canonical tables by DuckDB SQL over DuckDB's reader "
                "(sql/staging/); the Spark ingest reads the canonical layout's files only")
    for name, source in sources.items():
        if source is not None and loader.is_parquet(source.path):
            refusal = parquet_refusal(source.path, spec.TABLES_BY_NAME[name])
            if refusal is not None:
                return refusal
    return None


# The Parquet (Arrow) types the Spark ingest reads for a staging column of each type with DuckDB's results: the
# typed value, the checks and the record of a rejected row (as DuckDB's to_json writes it). Arrow type ids, as
# pyarrow.types names them.
_SIGNED = ("int8", "int16", "int32", "int64")
_UNSIGNED = ("uint8", "uint16", "uint32")  # UINT64 is DECIMAL(20, 0) on Spark
_TEXT = ("string", "large_string")
SPARK_PARQUET_TYPES = {
    "VARCHAR": _TEXT + _SIGNED + _UNSIGNED,
    "INTEGER": _TEXT + _SIGNED + _UNSIGNED + ("float", "double"),
    "BIGINT": _TEXT + _SIGNED + _UNSIGNED + ("float", "double"),
    "DOUBLE": _TEXT + _SIGNED + _UNSIGNED + ("float", "double"),
    "DATE": _TEXT + ("date", "timestamp[s]", "timestamp[ms]", "timestamp[us]"),
}
# DuckDB's name of each of those types (what loader.typed_expr and number_expr choose the typing SQL by), and how
# a value of it is written in a rejected row's record.
_DUCKDB_TYPES = {"string": "VARCHAR", "large_string": "VARCHAR", "int8": "TINYINT", "int16": "SMALLINT",
                 "int32": "INTEGER", "int64": "BIGINT", "uint8": "UTINYINT", "uint16": "USMALLINT",
                 "uint32": "UINTEGER", "float": "FLOAT", "double": "DOUBLE", "date": "DATE",
                 "timestamp[s]": "TIMESTAMP", "timestamp[ms]": "TIMESTAMP", "timestamp[us]": "TIMESTAMP"}
_JSON_KINDS = {"VARCHAR": TEXT, "DATE": TEXT, "FLOAT": DOUBLE, "DOUBLE": DOUBLE, "TIMESTAMP": TIMESTAMP}
STAGING_JSON_KINDS = {"VARCHAR": TEXT, "DATE": TEXT, "INTEGER": INTEGER, "BIGINT": INTEGER, "DOUBLE": DOUBLE}
# Types Spark reads without error, for the file's other columns (read past, never typed).
_READABLE = tuple(_DUCKDB_TYPES) + ("bool", "binary", "large_binary")


def _arrow_type_name(arrow_type: Any) -> str:
    """The Arrow type's name (`str`: int64, timestamp[us, tz=UTC], decimal128(10, 2)), a dictionary-encoded column by
    its values' type, and "date" for either Arrow date (Parquet has one DATE type)."""
    import pyarrow as pa

    if isinstance(arrow_type, pa.DictionaryType):
        arrow_type = arrow_type.value_type
    return "date" if pa.types.is_date(arrow_type) else str(arrow_type)


def _parquet_columns(path: Path) -> dict[str, str]:
    """{column name: Arrow type name} of the Parquet file, from its footer (no data read)."""
    import pyarrow.parquet as pq

    return {field.name: _arrow_type_name(field.type) for field in pq.read_schema(path)}


def parquet_refusal(path: Path, table: Table) -> str | None:
    """Why the Spark ingest does not read this Parquet file with DuckDB's results, or None when it does: a
    canonical column of a type outside SPARK_PARQUET_TYPES (a DuckDB load then reads it, or names the type it
    cannot read), or a column Spark cannot read or numbers differently from DuckDB (nested, nanoseconds, names
    equal but for case)."""
    columns = _parquet_columns(path)
    lower = [name.lower() for name in columns]
    if len(set(lower)) < len(lower):
        return (f"{path.name} has columns whose names differ only in case, which DuckDB's loader and Spark's reader "
                "resolve differently")
    for name, arrow_type in columns.items():
        canonical = next((c for c in table.columns if c.name == name.lower()), None)
        if canonical is not None and arrow_type not in SPARK_PARQUET_TYPES[canonical.type]:
            return (f"{path.name}: column {name} is {arrow_type}; the Spark ingest reads a {canonical.type} column "
                    f"from {', '.join(SPARK_PARQUET_TYPES[canonical.type])} only (DuckDB's casts, and the way its "
                    "to_json writes a rejected row's record, are not reproduced on Spark for other types: "
                    "docs/extract_formats.md)")
        if canonical is None and arrow_type not in _READABLE:
            return (f"{path.name}: column {name} is {arrow_type}, which the Spark ingest does not read (nested "
                    "columns are named by their fields in DuckDB's loader; Spark refuses nanosecond timestamps)")
    return None


def load_parquet_table_on_spark(spark: Any, table: Table, path: Path,
                                log: Log = lambda message: None) -> tuple[TableLoad, Any]:
    """Load one Parquet file into Spark's staging.<table> as loader.load_table loads it on DuckDB: rows numbered
    from 1 in file order (DuckDB's file_row_number + 1, the `line` of their rejects), typed and checked by the
    loader's SQL for the file's own column types; return the counts and the rejects (as load_csv_table_on_spark).
    The file's types must pass `parquet_refusal`."""
    columns = _parquet_columns(path)
    header = list(columns)
    by_lower, ignored = loader.header_columns(path, table, header)
    log(f"{table.name}: reading {path.name} on Spark")
    read = [by_lower[c.name] for c in table.columns if c.name in by_lower]
    numbered_parquet_rows(spark, path, read).createOrReplaceTempView("_source")
    source = loader.OpenedSource(header, header, by_lower, {name.lower(): _DUCKDB_TYPES.get(arrow_type, "VARCHAR")
                                                            for name, arrow_type in columns.items()},
                                 ignored, numbered=True)
    # A rejected row's record holds the file's typed values, written as DuckDB's to_json writes each type.
    raw_kinds = {f"_raw_{column.name}": _JSON_KINDS.get(source.source_types[by_lower[column.name].lower()], INTEGER)
                 for column in table.columns if column.name in by_lower}
    classified = _classified(spark, table, source, raw_kinds)
    rejects = _write_staging_table(spark, table, path, classified)
    counts = {reason: int(n) for reason, n in classified.groupBy("reason").count().collect()}
    loaded = counts.pop(None, 0)
    result = TableLoad(table=table.name, file=path.name, input_records=loaded + sum(counts.values()), loaded=loaded,
                       rejected_by_reason={reason: counts.get(reason, 0) for reason in spec.REJECT_REASON_CODES},
                       ignored_columns=ignored)
    for view in ("_source", "_staged"):
        spark.catalog.dropTempView(view)
    log(f"{table.name}: {result.input_records:,} records, {result.loaded:,} loaded, {result.rejected:,} rejected "
        "(on Spark)")
    return result, rejects


def load_sources_on_spark(spark: Any, sources: dict[str, TableSource | None],
                          log: Log = lambda message: None) -> dict[str, TableLoad]:
    """Load every canonical table from its CSV or Parquet file into Spark (person first, so events can be checked
    against it): staging.<table>, ingest.rejects and ingest.load_counts, as loader.load_tables writes them on DuckDB.
    `sources`: loader.canonical_sources, whose files resolve inside the extract folder (containment.inside_folder)."""
    refusal = spark_ingest_refusal("given", sources)
    if refusal is not None:
        raise ExtractError(f"the Spark ingest cannot read this extract: {refusal}; load it with the DuckDB ingest "
                           "(the default engine).")
    create_ingest_tables(spark)
    loads: dict[str, TableLoad] = {}
    rejects: list[Any] = []
    for table in spec.TABLES:
        source = sources.get(table.name)
        if source is None:
            create_empty_staging_table(spark, table)
            loads[table.name] = TableLoad(table.name, "", 0, 0, {r: 0 for r in spec.REJECT_REASON_CODES})
            log(f"{table.name}: no file in the extract (optional table), created empty")
            continue
        load_table = load_parquet_table_on_spark if loader.is_parquet(source.path) else load_csv_table_on_spark
        loads[table.name], table_rejects = load_table(spark, table, source.path, log)
        rejects.append(table_rejects)
    for table_rejects in rejects[1:]:
        rejects[0] = rejects[0].unionByName(table_rejects)
    if rejects:
        rejects[0].write.insertInto(tables.INGEST_REJECTS)
    write_load_counts(spark, loads)
    spark.catalog.dropTempView(KNOWN_PERSONS)
    return loads


def load_extract_on_spark(spark: Any, extract_dir: Path, log: Log = lambda message: None) -> dict[str, TableLoad]:
    """`load_sources_on_spark` of a canonical extract folder."""
    return load_sources_on_spark(spark, loader.canonical_sources(Path(extract_dir)), log)


def load_tables_on_spark_into_duckdb(spark: Any, con: Any, extract_dir: Path, sources: dict[str, TableSource | None],
                                     exchange_folder: Path, log: Log = lambda message: None) -> dict[str, TableLoad]:
    """A run's ingest on Spark: `load_sources_on_spark`, then Spark's staging tables and ingest.rejects copied into
    DuckDB `con` (the run's build database, which the staging suites check and the run publishes) in the DuckDB
    loader's own table definitions, and ingest.load_counts, ingest.manifest and the staging comments written as
    loader.load_tables writes them. The files are hashed for the manifest while Spark reads them, and each CSV
    file's physical lines, counted from its bytes, must be those Spark accounted for."""
    files = [source.path for source in sources.values() if source is not None]
    fingerprints = loader.FileFingerprints(files)
    loads = load_sources_on_spark(spark, sources, log)
    for load, source in ((loads[name], source) for name, source in sources.items() if source is not None):
        counted = fingerprints[source.path].physical_lines
        if counted != load.physical_lines:
            raise ExtractError(f"{source.path}: {counted:,} data lines counted in the file's bytes, but the Spark "
                               f"ingest read {load.physical_lines:,}: the file changed while it was read, or the "
                               "Spark reader split it differently. Load it again, or with the DuckDB ingest.")
    loader.create_ingest_schema(con)
    for table in spec.TABLES:
        loader.create_empty_staging_table(con, table)
    staging = [f"staging.{table.name}" for table in spec.TABLES]
    copy_tables_to_duckdb(spark, con, staging + [tables.INGEST_REJECTS], exchange_folder)
    # The later Spark stages of the run read these tables where they are instead of DuckDB's copy (transfer.py
    # hand_stage_inputs): the folder is the run's own, so it tells this run's tables from another run's.
    mark_loaded_for(spark, staging, str(exchange_folder))
    loader.write_load_counts(con, loads)
    loader.write_manifest(con, Path(extract_dir), {name: (source.path if source is not None else None)
                                                   for name, source in sources.items()}, loads, fingerprints)
    loader.comment_tables(con)
    return loads


def write_load_counts(spark: Any, loads: dict[str, TableLoad]) -> None:
    """ingest.load_counts on Spark, with loader.write_load_counts's columns."""
    import json

    reason_columns = ", ".join(f"{reason} BIGINT" for reason in spec.REJECT_REASON_CODES)
    schema = (f"table_name STRING, file_name STRING, input_records BIGINT, loaded BIGINT, rejected BIGINT, "
              f"{reason_columns}, ignored_columns STRING")
    rows = [(load.table, load.file, load.input_records, load.loaded, load.rejected,
             *[load.rejected_by_reason[r] for r in spec.REJECT_REASON_CODES], json.dumps(load.ignored_columns))
            for load in loads.values()]
    spark.sql(f"DROP TABLE IF EXISTS {tables.INGEST_LOAD_COUNTS}")
    spark.createDataFrame(rows, schema).write.format("parquet").saveAsTable(tables.INGEST_LOAD_COUNTS)
