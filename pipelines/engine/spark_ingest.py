"""What ingest on Spark needs from Spark itself: a CSV file as records numbered by their PHYSICAL line, split into
fields as DuckDB's reader splits them, and the loader's typing SQL in Spark's dialect with DuckDB's results.

Spark's CSV reader keeps a malformed row's text but neither its line nor why it failed, so the file is read as
text lines instead and parsed in Spark SQL (pipelines/ingest/spark_loader.py does the accounting):

    numbered_lines(spark, path)   every physical line (header = 1) with its exact number: Spark's file splits are
                                  ordered by their byte offset (input_file_block_start) and each split's lines by
                                  their position in it (monotonically_increasing_id is consecutive within a
                                  split), so the number is a running count, not monotonically_increasing_id itself
    csv_grammar(delimiter)        DuckDB's quoting rules as regular expressions (one place, for Spark's Java regex
                                  and the driver's `re` alike): a field is quoted ("..." with "" for a quote, one
                                  space before and spaces after allowed) or unquoted (a quote later is text: a"b);
                                  a record whose quote stays open continues on the next physical line
    IngestSpark                   the project dialect plus the typing functions whose DuckDB results Spark's own
                                  functions do not give (below)
    numbered_parquet_rows(spark, path)
                                  a Parquet file's rows numbered as DuckDB's read_parquet(file_row_number) numbers
                                  them (+1): Spark's `_metadata.row_index`, the row's position in the file
    duckdb_json_object(fields)    a JSON object text as DuckDB's to_json writes it, for the records of rejected rows
                                  (parquet_ingest_sql: the loader's typing SQL over typed Parquet columns)

DuckDB's casts from text, as the loader uses them (checked on DuckDB 2.0.1, 2026-12-05, and held identical by
tests/spark/test_spark_ingest.py):

- try_strptime(x, '%Y-%m-%d') takes 1-4 digit years and 1-2 digit months and days ('2019-1-5'), and refuses
  anything else ('20190105', '2019-01-05T00:00', 30 February); Spark's try_to_date is stricter: the text is
  checked against that shape and padded first.
- TRY_CAST(x AS DOUBLE) takes digits with single underscores between them (1_000), 'inf', 'infinity' and 'nan'
  in any case, and beyond-range numbers as +-inf (1e400); it refuses Java's type suffixes ('1.5d'), which
  Spark's cast takes. The text is checked against DuckDB's shape, underscores removed, then cast.
- TRY_CAST(x AS INTEGER/BIGINT) takes scientific notation and rounds fractions (1e3 -> 1000); Spark's refuses
  them. Only whole numbers reach a staging integer (the loader rejects fractions first), so Spark casts the
  digits, or else the number read as a DOUBLE when it is whole.
- to_json(struct) writes a NULL field as null; Spark's leaves it out unless told. DuckDB writes a DOUBLE as the
  shortest text that reads back as the same double, in ECMAScript's notation with ".0" after a whole number
  (100.0, 100000000000000000000.0, 1e21, 0.000001, 1e-7, NaN, Infinity; checked on 9,016 values, DuckDB 2.0.1,
  2026-12-06), a FLOAT as its DOUBLE; Spark's to_json writes Java's Double.toString (1.0E7), and Java 17's is not
  always the shortest text. `duckdb_json_double` finds the shortest of format_string('%.<p>e') that reads back
  as the value and writes it in DuckDB's notation.
- TRY_CAST of a typed (Parquet) number to a staging integer: DuckDB rounds a fraction, Spark truncates it; only
  whole numbers reach a staging integer (the loader rejects fractions first), so Spark's own cast is used.
- isinf(x) and trunc(x) on a DOUBLE: Spark has no isinf, and sqlglot writes trunc as a cast to BIGINT, which
  overflows (an error under ANSI) where DuckDB returns the double.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlglot import exp

from pipelines.engine.dialect import ProjectSpark, _duckdb_functions
from pipelines.sql_quoting import quote_spark_identifier, quote_spark_literal

# The text between a field's quotes: anything but a quote, or a quote doubled.
_QUOTED_TEXT = '(?:[^"]|"")*'
# The end of the text: Java's \z; Python's re spells it \Z (csv_grammar(..., python=True)).
_JAVA_END, _PYTHON_END = r"\z", r"\Z"
# The loader's row columns that hold a field as trimmed text, NULL when empty (its text expression computed once
# per row: pipelines/ingest/loader.py, `_text_ref`): TRY_CAST of such a column is a cast from text.
TEXT_FIELD_PREFIX = "_text_"


@dataclass(frozen=True)
class CsvGrammar:
    """Regular expressions of one delimiter's records (see the module docstring)."""

    delimiter: str  # the delimiter
    delimiter_pattern: str  # the delimiter as a regular expression
    field: str  # one field, at a field start
    record: str  # a whole record: fields separated by the delimiter, nothing else
    still_open: str  # a text whose last field opened a quote that is not closed yet
    field_at: str  # one field where a field starts (preceded by the start or a delimiter), for extract_all
    quoted_value: str  # group 1: the content of a quoted field, "" still doubled
    quoted_start: str  # a field that is quoted starts so


def csv_grammar(delimiter: str, python: bool = False) -> CsvGrammar:
    end = _PYTHON_END if python else _JAVA_END
    d = "\\t" if delimiter == "\t" else "\\" + delimiter
    # DuckDB 2.0.1 (checked line by line: tests/spark/test_spark_ingest_grammar.py): a field is quoted when its
    # quote comes first or after ONE space, and spaces (not tabs) may follow the closing quote; after two spaces or a
    # tab the quote is text of an unquoted field ('  "a"' reads as itself).
    opening, closing = ' ?"', '" *'
    quoted = f"{opening}{_QUOTED_TEXT}{closing}"
    unquoted = rf'(?:[^" {d}][^{d}]*| (?:[^"{d}][^{d}]*)?)?'
    field = f"(?:{quoted}|{unquoted})"
    return CsvGrammar(
        delimiter=delimiter,
        delimiter_pattern=d,
        field=field,
        record=f"^{field}(?:{d}{field})*{end}",
        still_open=f"^(?:{field}{d})*(?:{opening}{_QUOTED_TEXT}){end}",
        field_at=f"(?<=^|{d})({quoted}|{unquoted})(?={d}|{end})",
        quoted_value=f"^{opening}({_QUOTED_TEXT}){closing}{end}",
        quoted_start=f"^{opening}",
    )


def numbered_lines(spark: Any, path: Path) -> Any:
    """The file's physical lines (split at LF only, as DuckDB's reader and the loader's line count do; a CR
    before the LF dropped) as a DataFrame (line BIGINT, text STRING, valid_utf8 BOOLEAN) checkpointed by the first
    job that reads it (the file is read once more only to find where its splits start, when it has several);
    .gz files are decompressed by Spark's codec."""
    from pyspark.sql import functions as F

    valid_utf8 = F.expr("is_valid_utf8(value)")
    # The replacement is a round trip through a Java String, which also writes invalid UTF-8 as U+FFFD; it is
    # identity on any other line, so it runs only where it changes something (it cost a second per million lines).
    text = F.when(F.col("value").endswith("\r") | ~valid_utf8, F.regexp_replace(F.col("value"), "\r\\z", "")) \
        .otherwise(F.col("value"))
    scan = spark.read.option("lineSep", "\n").text(reader_path(path))
    read = scan.select(F.monotonically_increasing_id().alias("_id"), F.input_file_block_start().alias("_block"),
                       F.col("value"))
    if _splits(scan) == 1:
        # One split (every .gz file; plain files below Spark's split size): the ids are 0, 1, 2, ... in file order,
        # so no job is needed to find where the splits start.
        return (read.select((F.col("_id") + 1).alias("line"), text.alias("text"), valid_utf8.alias("valid_utf8"))
                .localCheckpoint(eager=False))
    # A file scan gives every line the same split and id each time it runs, so the ids are read twice (the
    # splits' first ids and sizes, then the lines) without storing the file first.
    blocks = sorted(read.groupBy("_block").agg(F.min("_id").alias("_first"), F.count("*").alias("_n")).collect())
    before, offsets = 0, []
    for block, first, count in blocks:
        offsets.append((block, first, before))
        before += count
    if not offsets:
        return spark.createDataFrame([], "line BIGINT, text STRING, valid_utf8 BOOLEAN")
    starts = spark.createDataFrame(offsets, "_block BIGINT, _first BIGINT, _before BIGINT")
    return (read.join(F.broadcast(starts), "_block")
            .select((F.col("_id") - F.col("_first") + F.col("_before") + 1).alias("line"),
                    text.alias("text"), valid_utf8.alias("valid_utf8"))
            .localCheckpoint(eager=False))


# Hadoop's glob characters (org.apache.hadoop.fs.GlobPattern), and the backslash that escapes them.
_GLOB_CHARACTERS = re.compile(r"([\\\[\]*?{}])")


def reader_path(path: Path) -> str:
    """The path for Spark's file readers, matching that one file only. Spark globs every path that holds a glob
    character and has no option to turn that off: a folder named ``site[ab]`` would read ``sitea``'s files, outside
    the extract. Each such character is escaped with a backslash (as pipelines/ingest/loader.py reader_path_sql
    does for DuckDB's readers)."""
    return _GLOB_CHARACTERS.sub(r"\\\1", str(path))


def _splits(scan: Any) -> int | None:
    """How many splits Spark reads a file scan in, planned on the driver (no job); None where the session cannot
    say (Spark Connect has no RDDs)."""
    try:
        return scan.rdd.getNumPartitions()
    except NotImplementedError:  # pyspark's PySparkNotImplementedError on Spark Connect
        return None


# A text without a quote is a record of unquoted fields whatever else it holds: it follows grammar.record, its fields
# are the pieces between delimiters, and it leaves no quote open. Most records hold no quote, so the grammar's
# regular expressions (the ingest's costliest work per line after reading it) run only on the texts that do; the
# fields are the same either way (tests/spark/test_spark_ingest.py).
def follows_grammar_column(text: Any, grammar: CsvGrammar) -> Any:
    """A Spark column: whether the record text follows DuckDB's quoting rules (grammar.record)."""
    return ~text.contains('"') | text.rlike(grammar.record)


def opens_quote_column(text: Any, grammar: CsvGrammar) -> Any:
    """A Spark column: whether the text starts a record over several lines, its last field opening a quote that
    the line does not close (it does not follow grammar.record, and matches grammar.still_open)."""
    return text.contains('"') & ~text.rlike(grammar.record) & text.rlike(grammar.still_open)


def carriage_return_outside_quotes_column(text: Any) -> Any:
    """A Spark column: whether the line holds a carriage return outside its closed quoted fields (one inside a
    quote the line leaves open, or continues, is not told apart here: the caller leaves out the lines of records
    over several lines)."""
    from pyspark.sql import functions as F

    return text.contains("\r") & F.regexp_replace(text, f'"{_QUOTED_TEXT}"', "").contains("\r")


def split_fields_column(text: Any, grammar: CsvGrammar) -> Any:
    """A Spark column: the record text's fields as an array of raw values (quotes removed, "" as one quote, an
    empty field NULL as DuckDB's reader gives it, quoted or not). Meaningful for texts following grammar.record."""
    from pyspark.sql import functions as F

    return F.when(text.contains('"'), fields_by_grammar_column(text, grammar)) \
        .otherwise(fields_by_delimiter_column(text, grammar))


def fields_by_grammar_column(text: Any, grammar: CsvGrammar) -> Any:
    """split_fields_column for any text: each field found by grammar.field_at, its quotes removed."""
    from pyspark.sql import functions as F

    def value(field: Any) -> Any:
        inner = F.replace(F.regexp_extract(field, grammar.quoted_value, 1), F.lit('""'), F.lit('"'))
        raw = F.when(field.rlike(grammar.quoted_start), inner).otherwise(field)
        return F.nullif(raw, F.lit(""))

    return F.transform(F.regexp_extract_all(text, F.lit(grammar.field_at), F.lit(1)), value)


def fields_by_delimiter_column(text: Any, grammar: CsvGrammar) -> Any:
    """split_fields_column for a text without a quote: the pieces between delimiters (-1: trailing empty pieces
    kept), an empty one NULL."""
    from pyspark.sql import functions as F

    return F.transform(F.split(text, grammar.delimiter_pattern, -1), lambda field: F.nullif(field, F.lit("")))


def record_fields_column(text_column: str, grammar: CsvGrammar, columns: int) -> Any:
    """A Spark column: split_fields_column of the record text in `text_column`, less the fields after the
    `columns`-th when nothing but delimiters follows it: DuckDB's reader takes "1,2,3,," under three columns as
    1, 2, 3 (each delimiter at the end starts an empty field, so the empty fields are the last ones)."""
    from pyspark.sql import functions as F

    fields = split_fields_column(F.col(text_column), grammar)
    extra = F.size(fields) - columns
    trailing = F.length(text_column) - F.length(
        F.expr(f"TRIM(TRAILING {quote_spark_literal(grammar.delimiter)} FROM {quote_spark_identifier(text_column)})"))
    return F.when((extra > 0) & (trailing >= extra), F.slice(fields, 1, columns)).otherwise(fields)


# ---------------------------------------------------------------------------------------------------------------
# The loader's typing SQL on Spark
# ---------------------------------------------------------------------------------------------------------------
_DATE_SHAPE = r"^[0-9]{1,4}-[0-9]{1,2}-[0-9]{1,2}$"
_NUMBER_SHAPE = (r"^[+-]?(([0-9]+(_[0-9]+)*)(\.([0-9]+(_[0-9]+)*)?)?|\.[0-9]+(_[0-9]+)*)([eE][+-]?[0-9]+)?$"
                 r"|^[+-]?([iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])$")
_INFINITY = "CAST('Infinity' AS DOUBLE)"


def _duckdb_date(self: Any, text: str) -> str:
    parts = [f"lpad(split_part({text}, '-', {i}), {width}, '0')" for i, width in ((1, 4), (2, 2), (3, 2))]
    return (f"CASE WHEN {text} RLIKE '{_DATE_SHAPE}' "
            f"THEN try_to_date(concat_ws('-', {', '.join(parts)}), 'yyyy-MM-dd') END")


def _duckdb_double(text: str) -> str:
    return (f"CASE WHEN {text} RLIKE '{_NUMBER_SHAPE.replace(chr(92), chr(92) * 2)}' "
            f"THEN TRY_CAST(replace({text}, '_', '') AS DOUBLE) END")


def _anonymous(self: Any, expression: exp.Anonymous) -> str:
    if expression.name.lower() == "try_strptime":
        text, fmt = expression.expressions
        if fmt.name != "%Y-%m-%d":
            raise ValueError(f"try_strptime with format {fmt.name!r} has no Spark translation here")
        return _duckdb_date(self, f"TRIM({self.sql(text)})")
    if expression.name.lower() == "to_json":
        [value] = expression.expressions
        kinds = getattr(self, "JSON_KINDS", None)
        if kinds is not None and isinstance(value, exp.Struct):
            return duckdb_json_object([
                (field.this.name, self.sql(field, "expression"),
                 kinds.get(field.expression.name, TEXT) if isinstance(field.expression, exp.Column) else TEXT)
                for field in value.expressions])
        return json_with_nulls(self.sql(value))
    return _duckdb_functions(self, expression)


# How a value is written in a JSON object as DuckDB's to_json writes it (`duckdb_json_object`).
TEXT = "text"  # strings and dates: as Spark's to_json writes them (the same text, checked by the CSV comparisons)
INTEGER = "integer"  # any integer type: its digits
DOUBLE = "double"  # DOUBLE and FLOAT: `duckdb_json_double`
TIMESTAMP = "timestamp"  # a timestamp without time zone: "yyyy-MM-dd HH:mm:ss[.ffffff]", trailing zeros cut
JSON_KINDS = (TEXT, INTEGER, DOUBLE, TIMESTAMP)


def duckdb_json_double(value: str) -> str:
    """Spark SQL writing the DOUBLE `value` as DuckDB's to_json does (module docstring): the shortest of
    format_string('%.<p>e') that reads back as the value, its digits and exponent laid out in DuckDB's notation.
    Costly (17 formats): for the records of rejected rows only."""
    magnitude = f"abs({value})"
    shortest = "coalesce(" + ", ".join(
        f"CASE WHEN CAST(format_string('%.{p}e', {magnitude}) AS DOUBLE) = {magnitude} "
        f"THEN format_string('%.{p}e', {magnitude}) END" for p in range(17)) + ")"
    parts = ("named_struct('d', replace(regexp_extract(s, '^([0-9.]+)e', 1), '.', ''), "
             "'e', CAST(regexp_extract(s, 'e([-+][0-9]+)$', 1) AS INT))")
    layout = ("CASE WHEN v.e BETWEEN 0 AND 20 THEN "
              "CASE WHEN length(v.d) <= v.e + 1 THEN v.d || repeat('0', v.e + 1 - length(v.d)) || '.0' "
              "ELSE substr(v.d, 1, v.e + 1) || '.' || substr(v.d, v.e + 2) END "
              "WHEN v.e BETWEEN -6 AND -1 THEN '0.' || repeat('0', -v.e - 1) || v.d "
              "ELSE substr(v.d, 1, 1) || CASE WHEN length(v.d) > 1 THEN '.' || substr(v.d, 2) ELSE '' END "
              "|| 'e' || CAST(v.e AS STRING) END")
    written = (f"element_at(transform(array({shortest}), "
               f"s -> element_at(transform(array({parts}), v -> {layout}), 1)), 1)")
    return (f"CASE WHEN {value} IS NULL THEN 'null' WHEN isnan({value}) THEN 'NaN' "
            f"WHEN {value} = {_INFINITY} THEN 'Infinity' WHEN {value} = -{_INFINITY} THEN '-Infinity' "
            f"WHEN {value} = 0 THEN CASE WHEN CAST({value} AS STRING) LIKE '-%' THEN '-0.0' ELSE '0.0' END "
            f"ELSE CASE WHEN {value} < 0 THEN '-' ELSE '' END || {written} END")


def duckdb_json_value(value: str, kind: str) -> str:
    """Spark SQL writing `value` (of the JSON kind `kind`) as DuckDB's to_json writes it inside an object."""
    if kind == DOUBLE:
        return duckdb_json_double(f"CAST({value} AS DOUBLE)")
    if kind == INTEGER:
        return f"coalesce(CAST({value} AS STRING), 'null')"
    if kind == TIMESTAMP:
        return f"coalesce('\"' || CAST({value} AS STRING) || '\"', 'null')"
    if kind != TEXT:
        raise ValueError(kind)
    # to_json of a one-field object, its braces and key cut: '{"v":' is 5 characters
    wrapped = f"TO_JSON(named_struct('v', {value}))"
    return f"CASE WHEN {value} IS NULL THEN 'null' ELSE substr({wrapped}, 6, length({wrapped}) - 6) END"


def duckdb_json_object(fields: list[tuple[str, str, str]]) -> str:
    """Spark SQL for the JSON object of (name, value SQL, JSON kind) fields as DuckDB's to_json writes it: fields in
    order, NULL as null, no spaces. Names are the extract's column names, written as they are."""
    parts = []
    for i, (name, value, kind) in enumerate(fields):
        parts.append(quote_spark_literal(("," if i else "{") + '"' + name + '":'))
        parts.append(duckdb_json_value(value, kind))
    parts.append("'}'" if fields else "'{}'")
    return "concat(" + ", ".join(parts) + ")"


def json_with_nulls(value_sql: str) -> str:
    """Spark's to_json writing NULL fields as null, as DuckDB's to_json does (Spark leaves them out by default)."""
    return f"TO_JSON({value_sql}, map('ignoreNullFields', 'false'))"


def _try_cast(self: Any, expression: exp.TryCast) -> str:
    target = expression.to.this
    text = self.sql(expression, "this")
    if isinstance(expression.this, exp.Column) and not expression.this.name.startswith(TEXT_FIELD_PREFIX):
        # A typed (Parquet) column: the loader casts text only through its text expression (NULLIF(trim(...)))
        # or the column holding it (TEXT_FIELD_PREFIX), so another bare column is a number or a date of the
        # file's own type (module docstring).
        return ProjectSpark.Generator.trycast_sql(self, expression)
    if target in (exp.DataType.Type.DOUBLE,):
        return _duckdb_double(f"TRIM({text})")
    if target in (exp.DataType.Type.INT, exp.DataType.Type.BIGINT):
        spark_type = "INT" if target == exp.DataType.Type.INT else "BIGINT"
        number = _duckdb_double(f"TRIM({text})")
        return (f"COALESCE(TRY_CAST(TRIM({text}) AS {spark_type}), "
                f"CASE WHEN {number} = {_truncated(number)} THEN TRY_CAST({number} AS {spark_type}) END)")
    return ProjectSpark.Generator.trycast_sql(self, expression)


def _truncated(value: str) -> str:
    """DuckDB's trunc of a DOUBLE: the whole part, infinities and NaN as they are."""
    return (f"(CASE WHEN isnan({value}) OR abs({value}) = {_INFINITY} THEN {value} "
            f"ELSE {value} - {value} % 1 END)")


class IngestSpark(ProjectSpark):
    """The project dialect plus DuckDB's casts from text and isinf/trunc (module docstring)."""

    class Generator(ProjectSpark.Generator):
        TRANSFORMS = {
            **ProjectSpark.Generator.TRANSFORMS,
            exp.Anonymous: _anonymous,
            exp.TryCast: _try_cast,
            exp.IsInf: lambda self, e: f"(abs({self.sql(e, 'this')}) = {_INFINITY})",
            exp.Trunc: lambda self, e: _truncated(self.sql(e, "this")),
        }


def ingest_spark_sql(duckdb_sql: str, json_kinds: dict[str, str] | None = None) -> str:
    """One DuckDB statement of the loader's typing SQL in IngestSpark's dialect. `json_kinds`: for typed (Parquet)
    columns, the JSON kind of each column name the SQL passes to to_json (default: every value is text, as CSV
    fields are), so a rejected row's record is written as DuckDB writes it."""
    from pipelines.engine.dialect import parse_statements

    [statement] = parse_statements(duckdb_sql)
    if json_kinds is None:
        return statement.sql(dialect=IngestSpark)
    dialect = IngestSpark()
    dialect.generator_class = type("TypedIngestGenerator", (IngestSpark.Generator,), {"JSON_KINDS": dict(json_kinds)})
    return statement.sql(dialect=dialect)


def numbered_parquet_rows(spark: Any, path: Path, columns: list[str]) -> Any:
    """The Parquet file's `columns` with `_record`, the row's position in the file + 1 (DuckDB's
    read_parquet(file_row_number) + 1, the loader's numbering): Spark's `_metadata.row_index`, its position in the
    file whatever the split that reads it. Dates and timestamps are read in the proleptic Gregorian calendar, as
    DuckDB and the files' writers (Arrow) use it; Spark's default refuses dates before 1582-10-15 from files it did
    not write."""
    from pyspark.sql import functions as F

    rows = (spark.read.option("datetimeRebaseMode", "CORRECTED").option("int96RebaseMode", "CORRECTED")
            .parquet(reader_path(path)))
    return rows.select((F.col("_metadata.row_index") + 1).alias("_record"),
                       *[F.col(quote_spark_identifier(name)) for name in columns])
