"""The parse statement keeps the file's order: its plan is the CSV scan and projections only.

The canonical CSV path numbers records by the staging table's rowid (loader.OpenedSource.numbered), which follows
the file only while CREATE TABLE AS keeps the insertion order. A join in the statement loses it on DuckDB 2.0.1
(checked on 3,000,000 drug_exposure rows: blocks of about 150,000 rows came out of order), and DuckDB adds a join
unasked for an IN list of five or more constants in a CASE's first WHEN (loader._value_set_case).
"""

from __future__ import annotations

import duckdb
import pytest

from pipelines import extract_spec as spec
from pipelines.ingest import loader


def _parse_plan(table: spec.Table, tmp_path) -> str:
    path = tmp_path / f"{table.name}.csv"
    path.write_text(",".join(table.column_names) + "\n")
    con = duckdb.connect()
    loader.create_ingest_schema(con)
    source = loader._open_source(con, table, path, path, None, None)
    sql = loader.staged_rows_sql(table, source, loader.row_checks(table, source))
    return "\n".join(row[1] for row in con.execute("EXPLAIN " + sql).fetchall())


@pytest.mark.parametrize("table", spec.TABLES, ids=lambda table: table.name)
def test_the_parse_statement_has_no_join(table, tmp_path):
    plan = _parse_plan(table, tmp_path)
    assert "READ_CSV" in plan
    assert "JOIN" not in plan.upper(), plan


def test_an_in_list_in_a_first_when_would_be_seen(tmp_path, monkeypatch):
    """The test above fails when the parse holds such an IN list (here: the sex spellings tested first)."""
    def first_when_in_list(expr, values, fold):
        listed = ", ".join(f"'{spelling}'" for spellings in values.values() for spelling in spellings)
        return f"CASE WHEN {fold} IN ({listed}) THEN {expr} END"

    monkeypatch.setattr(loader, "_value_set_case", first_when_in_list)
    assert "JOIN" in _parse_plan(spec.PERSON, tmp_path).upper()
