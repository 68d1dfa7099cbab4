"""The CSV grammar the Spark ingest splits records by (pipelines/engine/spark_ingest.py `csv_grammar`) accepts the
lines DuckDB's reader accepts and refuses those it refuses, splits them into DuckDB's values, and says which lines
leave a quote open; checked against DuckDB itself, without Spark (default test run). Whether DuckDB too finds a
quote left open is checked on the hand-written lines only (a line it left open would end its file)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import duckdb
import pytest

from pipelines.engine.spark_ingest import csv_grammar
from pipelines.ingest.loader import DELIMITERS, reader_path_sql

# Three-column lines: (text, leaves a quote open).
LINES = [
    ("1,2,3", False), ("1,,3", False), (",,", False), ('1,"a,b",3', False), ('1, "x" ,3', False),
    ('1,a"b,3', False), ('1,"a""b",3', False), ('1,"",3', False), ('1,"ab"x,3', False), ("1,2", False),
    ("1,2,3,4", False), ('"1" ,2,3', False), ('1,2,"3', True), ('1,"a""b,3', True), ('"x', True),
]


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_grammar_accepts_what_duckdb_reads(tmp_path, delimiter):
    grammar = csv_grammar(delimiter, python=True)
    record, still_open = re.compile(grammar.record), re.compile(grammar.still_open)
    for text, opens in LINES:
        text = text.replace(",", delimiter)
        assert bool(still_open.match(text)) == opens, text
        if opens:
            continue
        path = tmp_path / "t.csv"
        path.write_text(delimiter.join("abc") + "\n" + text + "\n")
        with duckdb.connect() as con:
            read = con.execute(
                f"SELECT count(*) FROM read_csv({reader_path_sql(path)}, header = true, auto_detect = false, "
                f"columns = {{'a': 'VARCHAR', 'b': 'VARCHAR', 'c': 'VARCHAR'}}, delim = '{delimiter}', "
                "quote = '\"', escape = '\"', ignore_errors = true)").fetchone()[0]
        # The grammar decides the quoting; the field count is Spark's to check (three fields here means two
        # delimiters outside quotes).
        outside_quotes = re.sub(r'"(?:[^"]|"")*"', "", text)
        three_fields = outside_quotes.count(delimiter) == 2
        assert (bool(record.match(text)) and three_fields) == (read == 1), text


def _fields(text: str, delimiter: str) -> list[str | None]:
    """The fields the Spark ingest gives a record that follows the grammar (spark_ingest.split_fields_column, in
    Python's `re`): each field where the previous one ended, quotes removed, "" as one quote, empty as NULL."""
    grammar = csv_grammar(delimiter, python=True)
    field = re.compile(f"(?:{grammar.field})(?={grammar.delimiter_pattern}|\\Z)")
    quoted_start, quoted_value = re.compile(grammar.quoted_start), re.compile(grammar.quoted_value)
    fields, position = [], 0
    while True:
        raw = field.match(text, position).group()
        value = quoted_value.match(raw).group(1).replace('""', '"') if quoted_start.match(raw) else raw
        fields.append(value or None)
        position += len(raw) + 1
        if position > len(text):
            return fields


def _record_fields(text: str, delimiter: str, columns: int) -> list[str | None]:
    """_fields less the fields after the `columns`-th when nothing but delimiters follows it
    (spark_ingest.record_fields_column)."""
    fields = _fields(text, delimiter)
    extra = len(fields) - columns
    return fields[:columns] if extra > 0 and text.endswith(delimiter * extra) else fields


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_every_short_line_splits_into_duckdbs_fields_or_is_refused_as_duckdb_refuses_it(tmp_path, delimiter):
    """Every line of up to four characters from letters, spaces, tabs, quotes and the delimiter that closes its
    quotes: where DuckDB's reader takes it, the grammar does and splits it into DuckDB's three values; where DuckDB
    refuses it, the grammar does or finds another number of fields. One space before a quote makes a quoted field,
    two spaces or a tab make the quote text, and empty fields after the last column are dropped (DuckDB 2.0.1).
    Each line is a file of its own, read in one query, so each record is known by its file."""
    grammar = csv_grammar(delimiter, python=True)
    record, still_open = re.compile(grammar.record), re.compile(grammar.still_open)
    alphabet = sorted({"a", " ", "\t", '"', delimiter})
    lines = sorted({"".join(letters) for length in range(1, 5) for letters in itertools.product(alphabet, repeat=length)
                    if not still_open.match("".join(letters))})
    paths = []
    for number, text in enumerate(lines):
        paths.append(tmp_path / f"{number}.csv")
        paths[-1].write_text(delimiter.join("abc") + "\n" + text + "\n")
    files = "[" + ", ".join(reader_path_sql(path) for path in paths) + "]"
    columns = "{'a': 'VARCHAR', 'b': 'VARCHAR', 'c': 'VARCHAR'}"
    with duckdb.connect() as con:
        read = {Path(name).stem: values for name, *values in con.execute(
            f"SELECT filename, a, b, c FROM read_csv({files}, header = true, auto_detect = false, filename = true, "
            f"columns = {columns}, delim = '{delimiter}', quote = '\"', escape = '\"', ignore_errors = true)"
        ).fetchall()}
    assert 0 < len(read) < len(lines)
    for number, text in enumerate(lines):
        values = read.get(str(number))
        if values is None:
            assert not record.match(text) or len(_record_fields(text, delimiter, 3)) != 3, text
        else:
            assert record.match(text) and _record_fields(text, delimiter, 3) == values, (text, values)
