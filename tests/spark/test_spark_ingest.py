"""Ingest on Spark keeps the DuckDB loader's promise (pipelines/ingest/spark_loader.py): the same extract loaded by
DuckDB (pipelines/ingest/loader.py) and by Spark gives the same rejects, at the same physical lines, columns and
reasons, the same counts per reason, and staging tables with the same fingerprints (pipelines/engine/
fingerprint.py); a quote that is never closed stops both loads at the same line.

The extracts: the hand-written one with a planted reject on most lines (tests/support/planted_rejects.py), and the
generated extract of the same-study comparison (300 patients, seed 1: its planted defects) with hostile corruptions
on top (tests/support/hostile_extracts.py and the CSV cases below): a record over two physical lines, blank lines,
CRLF line ends from one line on, a byte-order mark, a Latin-1 byte, a gzip-compressed file, quoted fields with the
delimiter, a doubled quote and spaces around them, a quote inside an unquoted field, text after a closing quote,
a line of spaces, an unclosed quote on the last line, and numbers and dates DuckDB's casts read in their own way.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from pipelines import extract_spec as spec
from pipelines.engine import as_engine
from pipelines.engine.fingerprint import table_fingerprint
from pipelines.ingest.loader import DELIMITERS, ExtractError, load_extract
from pipelines.ingest.spark_loader import load_extract_on_spark
from tests.support import hostile_extracts as hostile
from tests.support.planted_rejects import EXPECTED_REJECTS, write_fixture

pytestmark = pytest.mark.spark

PATIENTS, SEED = 300, 1  # the extract of tests/spark/test_same_study_on_spark.py: generated once per test run
REJECT_KEY = "table_name, file_name, line, column_name, reason"

# Values DuckDB's casts read in their own way (pipelines/engine/spark_ingest.py), each on its own physical line.
DAYS_SUPPLY = ["1e3", "1_000", "1.5", "1e30", "0x10", " 0005 ", "-0", "1E1", "99999999999", ".5e1"]
VALUE_AS_NUMBER = ["inf", "-Infinity", "nan", "1e400", "1.5d", ".5", "5.", "1_000.5", "+2", "1__0"]
VISIT_END_DATE = ["2019-1-5", "19-01-05", "2020-02-30", "20190101", " 2019-01-05 ", "2019-01-05T00:00",
                  "2020-2-29", "02019-01-05"]
# Lines appended to procedure_occurrence.csv (procedure_occurrence_id,person_id,procedure_vocabulary,procedure_code,
# procedure_date,visit_occurrence_id), each a case of DuckDB's quoting rules; the last one leaves its quote open.
PROCEDURE_LINES = [
    "9008,1,CPT,93922,2016-08-25,,,",  # empty fields after the last column: DuckDB's reader drops them
    '9009,1,CPT,  "93922",2016-08-25,',  # two spaces before a quote: the quote is text
    '9010,1,CPT,\t"93922",2016-08-25,',  # a tab before a quote: the quote is text
    '9011,1,CPT,"93\r922",2016-08-25,',  # a carriage return inside a quoted field is text
    '9001,1,CPT,"93,922",2016-08-25,',  # a quoted delimiter
    '9002,1,CPT, "93922" ,2016-08-25,',  # spaces around a quoted field
    '9003,1,CPT,9"3922,2016-08-25,',  # a quote inside an unquoted field is text
    '9004,1,"CPT""4",93922,2016-08-25,',  # a doubled quote
    '9005,1,CPT,"93922"x,2016-08-25,',  # text after the closing quote: malformed
    '9006,1,CPT,"",2016-08-25,',  # a quoted empty field: missing_required_field
    "   ",  # spaces only: malformed
    '9007,1,CPT,93922,2016-08-25,"',  # a quote opened on the last line: malformed
]


def load_on_both_engines(con, spark, folder) -> None:
    """`folder` loaded by DuckDB into `con` in a thread of its own while Spark loads it here: DuckDB's statements run
    without holding Python's lock, and the Spark driver mostly waits for its jobs, so the two loads overlap."""
    with ThreadPoolExecutor(1) as thread:
        on_duckdb = thread.submit(load_extract, con, folder)
        load_extract_on_spark(spark, folder)
        on_duckdb.result()


def rejects_on_duckdb(con) -> set[tuple]:
    return set(con.execute(f"SELECT {REJECT_KEY} FROM ingest.rejects").fetchall())


def rejects_on_spark(spark) -> set[tuple]:
    return {tuple(row) for row in spark.sql(f"SELECT {REJECT_KEY} FROM ingest.rejects").collect()}


def assert_same_ingest(con, spark) -> None:
    """Rejects (file, line, column, reason; the raw record of every row reject), counts per reason and staging
    tables identical on both engines."""
    assert rejects_on_spark(spark) == rejects_on_duckdb(con)
    row_records = "SELECT table_name, line, record FROM ingest.rejects WHERE reason <> 'malformed_line'"
    assert {tuple(r) for r in spark.sql(row_records).collect()} == set(con.execute(row_records).fetchall())
    counts = f"SELECT table_name, input_records, loaded, rejected, {', '.join(spec.REJECT_REASON_CODES)} " \
             "FROM ingest.load_counts"
    assert {tuple(r) for r in spark.sql(counts).collect()} == set(con.execute(counts).fetchall())
    for table in spec.TABLES:
        duck = table_fingerprint(as_engine(con), f"staging.{table.name}")
        on_spark = table_fingerprint(as_engine(spark), f"staging.{table.name}")
        assert on_spark.differences(duck) == [], f"staging.{table.name} on Spark differs from DuckDB"


def test_planted_rejects_are_found_on_spark_as_on_duckdb(spark, tmp_path):
    folder = write_fixture(tmp_path / "extract")
    con = duckdb.connect()
    load_on_both_engines(con, spark, folder)
    found = {(row["table_name"], row["line"], row["reason"], row["column_name"])
             for row in spark.sql("SELECT * FROM ingest.rejects").collect()}
    assert found == EXPECTED_REJECTS
    assert_same_ingest(con, spark)


def _append_lines(path, lines: list[str]) -> None:
    path.write_bytes(path.read_bytes() + ("\n".join(lines) + "\n").encode())


@pytest.fixture(scope="module")
def hostile_extract(generated_extract, tmp_path_factory):
    folder = hostile.copy_extract(generated_extract(PATIENTS, SEED).path, tmp_path_factory.mktemp("spark_ingest")
                                  / "extract")
    hostile.quoted_line_break(folder, "person", line=12, column="race")
    hostile.byte_order_mark(folder, "person")
    hostile.blank_lines(folder, "condition_occurrence", after=[5, 9, 10])
    hostile.quoted_line_break(folder, "condition_occurrence", line=30, column="condition_code")
    for offset, value in enumerate(DAYS_SUPPLY):
        hostile.set_field(folder, "drug_exposure", 40 + offset, "days_supply", value)
    hostile.mixed_line_endings(folder, "drug_exposure", from_line=100)
    for offset, value in enumerate(VALUE_AS_NUMBER):
        hostile.set_field(folder, "measurement", 50 + offset, "value_as_number", value)
    hostile.latin1_byte(folder, "measurement", line=70)
    for offset, value in enumerate(VISIT_END_DATE):
        hostile.set_field(folder, "visit_occurrence", 60 + offset, "visit_end_date", value)
    hostile.gzip_table(folder, "observation_period")
    _append_lines(hostile.table_path(folder, "procedure_occurrence"), PROCEDURE_LINES)
    return folder


# Compiled, as a run evaluates (the group's other queries run interpreted: tests/spark/conftest.py): every line of the
# extract goes through the CSV grammar's regular expressions, work on the data that compiled code does faster.
def test_hostile_generated_extract_loads_identically_on_both_engines(compiled_evaluation, spark, hostile_extract):
    con = duckdb.connect()
    load_on_both_engines(con, spark, hostile_extract)
    assert_same_ingest(con, spark)
    # The comparison covers what it claims: the planted and added rejects are there, with the reasons expected.
    reasons = {reason for (_, _, _, _, reason) in rejects_on_duckdb(con)}
    assert {"malformed_line", "missing_required_field", "unparseable_date", "unparseable_number",
            "non_integer_number", "infinite_number", "number_out_of_range", "duplicate_primary_key",
            "unknown_person"} <= reasons
    procedure = hostile.table_path(hostile_extract, "procedure_occurrence")
    first = procedure.read_bytes().count(b"\n") - len(PROCEDURE_LINES) + 1  # physical lines: LF ends them, not CR
    assert {(line, reason) for (table, _, line, _, reason) in rejects_on_spark(spark)
            if table == "procedure_occurrence"} == {
        (first + 8, "malformed_line"), (first + 9, "missing_required_field"), (first + 10, "malformed_line"),
        (first + 11, "malformed_line")}
    quoted = spark.sql("SELECT procedure_code, procedure_vocabulary FROM staging.procedure_occurrence "
                       "WHERE procedure_occurrence_id IN ('9001', '9003', '9004', '9008', '9009', '9010', '9011') "
                       "ORDER BY procedure_occurrence_id")
    assert [tuple(row) for row in quoted.collect()] == [
        ("93,922", "CPT4"), ('9"3922', "CPT4"), ("93922", 'CPT"4'), ("93922", "CPT4"), ('"93922"', "CPT4"),
        ('\t"93922"', "CPT4"), ("93\r922", "CPT4")]  # the loader trims spaces (DuckDB's trim), not tabs
    loads = spark.sql("SELECT sum(input_records), sum(loaded), sum(rejected) FROM ingest.load_counts").first()
    assert loads[0] == loads[1] + loads[2]


def test_a_quote_never_closed_stops_both_loads_at_its_line(spark, tmp_path):
    folder = write_fixture(tmp_path / "extract")
    hostile.unterminated_quote(folder, "person", line=4)
    with pytest.raises(ExtractError, match="person.csv: line 4"):
        load_extract(duckdb.connect(), folder)
    with pytest.raises(ExtractError, match="person.csv: line 4"):
        load_extract_on_spark(spark, folder)


def test_a_carriage_return_outside_quotes_stops_both_loads_at_its_line(spark, tmp_path):
    """DuckDB's reader refuses a CR outside quotes that no LF follows (the loader names the line from the file's
    bytes); the Spark ingest, which would read it as text, refuses the file at the same line. (A CR inside a quoted
    field is text to both: PROCEDURE_LINES.)"""
    folder = write_fixture(tmp_path / "extract")
    path = folder / "person.csv"
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b",", b"\r,", 1)  # physical line 4
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ExtractError, match="person.csv: line 4 holds a carriage return"):
        load_extract(duckdb.connect(), folder)
    with pytest.raises(ExtractError, match="person.csv: line 4 holds a carriage return"):
        load_extract_on_spark(spark, folder)


def test_a_folder_name_with_glob_characters_reads_only_its_own_file(spark, tmp_path):
    """Spark globs file paths: without escaping, site[ab]/person.csv reads sitea/person.csv, outside the extract."""
    from pipelines.engine.spark_ingest import numbered_lines

    (tmp_path / "site[ab]").mkdir()
    (tmp_path / "sitea").mkdir()
    (tmp_path / "site[ab]" / "person.csv").write_text("person_id\ninside\n")
    (tmp_path / "sitea" / "person.csv").write_text("person_id\noutside\n")
    lines = numbered_lines(spark, tmp_path / "site[ab]" / "person.csv")
    assert [tuple(row) for row in lines.orderBy("line").collect()] == [(1, "person_id", True), (2, "inside", True)]


# Texts without a quote, each with the delimiter where the comma is: empty pieces first, last and together, spaces
# and tabs around values, a carriage return and other characters inside them, a backslash before a delimiter.
QUOTE_FREE_TEXTS = ["1,2,3", ",", ",,", "a,,b", " a , b ,c ", "\t,\t", "1,2,", ",1", "x\ry,z", "é,ü,😀",
                    "a b c", "  ,  ", "a'b,c", "1\\,2", "", "a;b|c\td,e"]


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_a_text_without_a_quote_has_the_grammars_fields_split_at_its_delimiters(spark, delimiter):
    """The fast path of split_fields_column and follows_grammar_column (pipelines/engine/spark_ingest.py): on a text
    without a quote, the pieces between delimiters are the fields the grammar finds, the text follows the grammar
    and opens no quote."""
    from pyspark.sql import functions as F

    from pipelines.engine.spark_ingest import (csv_grammar, fields_by_delimiter_column, fields_by_grammar_column,
                                               follows_grammar_column, opens_quote_column)

    grammar = csv_grammar(delimiter)
    texts = spark.createDataFrame([(text.replace(",", delimiter),) for text in QUOTE_FREE_TEXTS], "text STRING")
    text = F.col("text")
    rows = texts.select("text", fields_by_grammar_column(text, grammar).alias("by_grammar"),
                        fields_by_delimiter_column(text, grammar).alias("by_delimiter"),
                        text.rlike(grammar.record).alias("follows"),
                        follows_grammar_column(text, grammar).alias("fast"),
                        text.rlike(grammar.still_open).alias("opens"),
                        opens_quote_column(text, grammar).alias("fast_opens")).collect()
    assert len(rows) == len(QUOTE_FREE_TEXTS)
    for row in rows:
        assert row["by_delimiter"] == row["by_grammar"], row
        assert (row["follows"], row["fast"], row["opens"], row["fast_opens"]) == (True, True, False, False), row
    by_text = {row["text"]: row["by_delimiter"] for row in rows}
    assert by_text["a,,b".replace(",", delimiter)] == ["a", None, "b"]
    assert by_text["1,2,".replace(",", delimiter)] == ["1", "2", None]


def test_a_line_keeps_its_text_less_a_final_carriage_return(spark, tmp_path):
    """numbered_lines's text: a line's bytes without the CR before its LF (one, not two), as the regular expression
    on every line gave it before it ran only on the lines it changes: those ending in CR and those not valid UTF-8
    (written with U+FFFD for each invalid byte)."""
    from pyspark.sql import functions as F

    from pipelines.engine.spark_ingest import numbered_lines

    path = tmp_path / "lines.csv"
    path.write_bytes(b"a,b\nplain\ncrlf\r\ntwo\r\r\ninner\rcr\nlatin1 \xe9\nlatin1 crlf \xe9\r\n\xc3\r\n\n")
    lines = numbered_lines(spark, path)
    every_line_replaced = spark.read.option("lineSep", "\n").text(str(path)) \
        .select(F.regexp_replace("value", "\r\\z", "").alias("text"))
    assert [row["text"] for row in lines.orderBy("line").collect()] == \
        [row["text"] for row in every_line_replaced.collect()] == \
        ["a,b", "plain", "crlf", "two\r", "inner\rcr", "latin1 \ufffd", "latin1 crlf \ufffd",
         "\ufffd", ""]
    assert [row["valid_utf8"] for row in lines.orderBy("line").collect()] == \
        [True, True, True, True, True, False, False, False, True]
