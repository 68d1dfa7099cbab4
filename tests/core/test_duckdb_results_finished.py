"""No DuckDB result is left half-read in the pipeline's code: DuckDB 2.0 keeps a connection busy while a result from
execute() has not been fetched to its end, and then refuses relation work on it (register, sql, from_arrow, table)
with "unfinished result". `fetchone()` reads one row and leaves the result unfinished even when that was the only
row (a count), so the pipeline reads results with fetchall() (`[(count,)] = con.execute(...).fetchall()`)."""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa
import pytest

from tests.support.paths import REPO_ROOT

FETCHONE = re.compile(r"\.fetchone\(\)")


def test_duckdb_refuses_relation_work_after_a_partly_read_result_and_not_after_fetchall():
    con = duckdb.connect()
    con.execute("SELECT count(*) FROM range(10)").fetchone()
    with pytest.raises(duckdb.Error, match="unfinished result"):
        con.register("rows", pa.table({"a": [1]}))
    con.execute("SELECT count(*) FROM range(10)").fetchall()
    con.register("rows", pa.table({"a": [1]}))
    assert con.sql("SELECT a FROM rows").fetchall() == [(1,)]


def test_the_pipeline_never_reads_a_result_with_fetchone():
    found = [f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
             for path in sorted((REPO_ROOT / "pipelines").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if FETCHONE.search(line)]
    assert not found, "read DuckDB results with fetchall() (module docstring):\n" + "\n".join(found)
