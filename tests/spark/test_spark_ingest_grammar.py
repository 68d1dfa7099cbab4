"""The CSV grammar the Spark ingest splits records by (pipelines/engine/spark_ingest.py `csv_grammar`) accepts the
lines DuckDB's reader accepts and refuses those it refuses, and says which lines leave a quote open; checked against
DuckDB itself, without Spark (default test run)."""

from __future__ import annotations

import re

import duckdb
import pytest

from pipelines.engine.spark_ingest import csv_grammar
from pipelines.ingest.loader import reader_path_sql

# Three-column lines: (text, leaves a quote open).
LINES = [
    ("1,2,3", False), ("1,,3", False), (",,", False), ('1,"a,b",3', False), ('1, "x" ,3', False),
    ('1,a"b,3', False), ('1,"a""b",3', False), ('1,"",3', False), ('1,"ab"x,3', False), ("1,2", False),
    ("1,2,3,4", False), ('"1" ,2,3', False), ('1,2,"3', True), ('1,"a""b,3', True), ('"x', True),
]


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"])
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
