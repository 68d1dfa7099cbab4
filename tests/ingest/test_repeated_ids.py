"""The ingest's duplicate ids (loader.repeated_ids_sql): the same ids as grouping every row, from grouping only
the rows whose id hash repeats.

Grouping every row (a group per row holding the id and three aggregates) filled 40 GB of free disk with spill on
750 million drug rows at 10 million patients (session 14); the hashes are sorted instead, and only candidate rows
reach the aggregate.
"""

from __future__ import annotations

import json

import duckdb
import pytest

from pipelines.ingest.loader import repeated_ids_sql

UNIQUE_ROWS = 100_000


@pytest.fixture()
def con():
    """staging.t: UNIQUE_ROWS ids seen once, 'twice' on records 7 and 70,001, 'thrice' on 3, 5 and 99,999, 'once'
    whose second copy is rejected already (`_check` 2), and two rows without an id."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute(f"""
        CREATE TABLE staging.t AS
        SELECT CAST(i AS VARCHAR) AS id, CAST(NULL AS SMALLINT) AS _check, i AS _record
        FROM range(100, {UNIQUE_ROWS} + 100) r(i)
        UNION ALL VALUES ('twice', NULL, 7), ('twice', NULL, 70001), ('thrice', NULL, 3), ('thrice', NULL, 5),
                         ('thrice', NULL, 99999), ('once', NULL, 11), ('once', 2, 12), (NULL, NULL, 13),
                         (NULL, NULL, 14)""")
    return con


def test_the_repeated_ids_are_those_of_a_group_by_every_row(con):
    found = con.execute(f"{repeated_ids_sql('staging.t', 'id', '_record')} ORDER BY id NULLS FIRST").fetchall()
    every_row = con.execute("""SELECT id, min(_record), max(_record), count(*) FROM staging.t WHERE _check IS NULL
                               GROUP BY 1 HAVING count(*) > 1 ORDER BY id NULLS FIRST""").fetchall()
    assert found == every_row == [(None, 13, 14, 2), ("thrice", 3, 99999, 3), ("twice", 7, 70001, 2)]


def _grouped_rows(con, sql: str, tmp_path) -> int:
    """The rows that entered the statement's hash aggregates (DuckDB 2.0's JSON profile: an operator tree with the
    rows each operator produced)."""
    output = tmp_path / "profile.json"
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{output}'")
    con.execute(sql).fetchall()
    con.execute("PRAGMA disable_profiling")

    def rows_into_aggregates(node: dict) -> int:
        own = (sum(child["intermediate_rows"] for child in node.get("children", []))
               if node.get("type", "").endswith("HASH_GROUP_BY") else 0)
        return own + sum(rows_into_aggregates(child) for child in node.get("children", []))

    return sum(rows_into_aggregates(node) for node in json.loads(output.read_text())["operator"])


def test_only_rows_whose_hash_repeats_are_grouped(con, tmp_path):
    grouped = _grouped_rows(con, repeated_ids_sql("staging.t", "id", "_record"), tmp_path)
    assert 0 < grouped <= 7  # the seven rows of 'twice', 'thrice' and the two without an id (a collision adds two)
    # The statement it replaced grouped every row:
    assert _grouped_rows(con, """SELECT id, min(_record), max(_record), count(*) FROM staging.t
                                 WHERE _check IS NULL GROUP BY 1 HAVING count(*) > 1""", tmp_path) > UNIQUE_ROWS
