"""Bad inputs to the ingest: nothing lost, nothing read that should not be, every error names file, line and fix.

Each test applies one corruption of tests/support/hostile_extracts.py to a copy of a small generated extract (or of
the hand-written extract of tests/ingest/test_ingest.py, where exact lines are easier to state) and loads it for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from pipelines import extract_spec as spec
from pipelines.ingest.assets import staging_key, staging_tables
from pipelines.ingest.formats import load_extract_any_format
from pipelines.ingest.loader import ExtractError, TableLoad, load_extract
from pipelines.ingest.reject_share import CASCADE_CHECK, TABLE_CHECK, reject_share_verdicts
from pipelines.ingest.resources import ExtractSource
from pipelines.warehouse import Warehouse
from tests.support import hostile_extracts as hostile
from tests.support.planted_rejects import EXPECTED_REJECTS, write_fixture


@pytest.fixture(scope="module")
def generated(generated_extract) -> Path:
    return generated_extract(300, 1).path


@pytest.fixture
def extract(generated, tmp_path) -> Path:
    return hostile.copy_extract(generated, tmp_path / "extract")


def load(folder: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    load_extract(con, folder)
    return con


def staged(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM staging.{table} ORDER BY ALL").fetchall()


def rejects(con: duckdb.DuckDBPyConnection, table: str | None = None) -> set[tuple]:
    where = "WHERE table_name = ?" if table else ""
    return set(con.execute(f"SELECT table_name, line, reason, column_name FROM ingest.rejects {where}",
                           [table] if table else []).fetchall())


# ------------------------------------------------------------------------------------------ lost or wrong data
def test_an_unterminated_quote_stops_the_load_naming_the_file_and_line(extract):
    hostile.unterminated_quote(extract, "person", line=11, column="race")
    with pytest.raises(ExtractError, match=r"person\.csv: line 11: the reader could not find the end of this "
                                           r"record .* a quote there is probably never closed"):
        load(extract)


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_carriage_return_inside_a_line_stops_the_load_naming_its_line(extract, gzipped):
    """DuckDB's reader refuses a CR outside quotes that no LF follows and cannot say where; the file's own byte
    count (the fingerprint) names the line."""
    path = extract / "condition_occurrence.csv"
    lines = path.read_bytes().split(b"\n")
    lines[39] = lines[39].replace(b",", b"\r,", 1)  # physical line 40
    path.write_bytes(b"\n".join(lines))
    if gzipped:
        hostile.gzip_table(extract, "condition_occurrence")
    with pytest.raises(ExtractError, match=r"condition_occurrence\.csv(\.gz)?: line 40 holds a carriage return "
                                           r".*Remove the CR"):
        load(extract)


def test_the_first_inner_carriage_return_is_found_across_blocks():
    """The fingerprint reads a file in blocks: a CR at the end of one block is judged by the next block's first
    byte (an LF: a line end; anything else: inside the line)."""
    from pipelines.ingest.loader import _LineCounter

    counter = _LineCounter()
    for block in (b"a,b\n1,2\r", b"\n3,4\r", b"5\n6,7\n"):
        counter.feed(block)
    assert counter.first_inner_cr == 3
    clean = _LineCounter()
    for block in (b"a,b\r", b"\n1,2\r", b"\n"):
        clean.feed(block)
    assert clean.first_inner_cr is None


def test_an_unterminated_quote_deep_in_a_large_table_names_its_line(extract):
    hostile.unterminated_quote(extract, "visit_occurrence", line=5_000, column="visit_type")
    with pytest.raises(ExtractError, match=r"visit_occurrence\.csv: line 5000: "):
        load(extract)


def test_reject_lines_are_physical_after_blank_lines(tmp_path):
    folder = write_fixture(tmp_path / "extract")
    hostile.blank_lines(folder, "condition_occurrence", after=[2, 6])  # new lines 3 and 8 are blank
    hostile.blank_lines(folder, "person", after=[1])
    con = load(folder)
    shifted = {("condition_occurrence", 3): 4, ("condition_occurrence", 5): 6, ("condition_occurrence", 6): 7,
               ("condition_occurrence", 7): 9, ("condition_occurrence", 8): 10}
    expected = {(t, shifted.get((t, line), line + 1 if t == "person" else line), reason, column)
                for t, line, reason, column in EXPECTED_REJECTS}
    assert rejects(con) == expected
    # The lines hold what the rejects say: the raw record of line 10 is the row with the bad date.
    lines = (folder / "condition_occurrence.csv").read_text().splitlines()
    assert lines[10 - 1].startswith("C6,P5,SNOMED,449918009,31/12/2019")
    assert con.execute("SELECT input_records FROM ingest.load_counts WHERE table_name = 'condition_occurrence'"
                       ).fetchone()[0] == 8


def test_reject_lines_are_physical_after_a_quoted_line_break(tmp_path):
    folder = write_fixture(tmp_path / "extract")
    hostile.set_field(folder, "condition_occurrence", 2, "visit_occurrence_id", '"V1\nnote"')
    con = load(folder)
    assert rejects(con, "condition_occurrence") == {
        (t, line + 1, reason, column) for t, line, reason, column in EXPECTED_REJECTS
        if t == "condition_occurrence"}
    assert staged(con, "condition_occurrence")[0][-1] == "V1\nnote"


def test_reject_lines_and_records_reconcile_on_a_generated_extract(extract):
    """Every reject of a generated table sits on the physical line holding its record, after blank lines and
    quoted line breaks in either order, with rejected rows right after a blank line."""
    hostile.set_field(extract, "drug_exposure", 51, "days_supply", "abc")
    hostile.set_field(extract, "drug_exposure", 52, "days_supply", "1.5")
    hostile.set_field(extract, "drug_exposure", 53, "drug_exposure_start_date", "2019-13-45")
    hostile.blank_lines(extract, "drug_exposure", after=[3, 40, 41])  # bad rows now at 54-56
    hostile.quoted_line_break(extract, "drug_exposure", 45, "drug_code")  # bad rows now at 55-57
    hostile.quoted_line_break(extract, "drug_exposure", 47, "drug_code")  # bad rows now at 56-58
    hostile.blank_lines(extract, "drug_exposure", after=[55, 56, 2_000])  # bad rows at 57, 59, 60
    con = load(extract)
    lines = (extract / "drug_exposure.csv").read_text().split("\n")
    checked = 0
    for line, reason, record in con.execute(
            "SELECT line, reason, record FROM ingest.rejects WHERE table_name = 'drug_exposure'").fetchall():
        text = lines[line - 1]
        if reason == "malformed_line":
            assert text == record
        else:
            assert text.startswith(json.loads(record)["drug_exposure_id"] + ","), (line, record)
        checked += 1
    assert checked == con.execute("SELECT rejected FROM ingest.load_counts WHERE table_name = 'drug_exposure'"
                                  ).fetchone()[0] > 10
    assert {row[0] for row in con.execute("SELECT line FROM ingest.rejects WHERE table_name = 'drug_exposure' "
                                          "AND line < 100").fetchall()} == {57, 59, 60}


@pytest.mark.parametrize("folder_name", ["site[ab]", "site*", "site?"])
def test_a_folder_named_with_glob_characters_reads_only_its_own_files(tmp_path, folder_name):
    own = write_fixture(tmp_path / folder_name)
    other = write_fixture(tmp_path / "sitea")
    (other / "person.csv").write_text("person_id,year_of_birth,sex\nOTHER1,1950,F\nOTHER2,1951,M\n")
    con = load(own)
    assert [row[0] for row in con.execute("SELECT person_id FROM staging.person ORDER BY 1").fetchall()] == \
        ["P1", "P3", "P5"]
    assert rejects(con) == EXPECTED_REJECTS


def test_integer_fields_reject_fractions_overflow_and_infinities_with_their_own_reasons(extract):
    hostile.set_field(extract, "drug_exposure", 2, "days_supply", "1.5")
    hostile.set_field(extract, "drug_exposure", 3, "days_supply", "99999999999")
    hostile.set_field(extract, "drug_exposure", 4, "days_supply", "1e400")
    hostile.set_field(extract, "drug_exposure", 5, "quantity", "1e400")
    hostile.set_field(extract, "drug_exposure", 6, "days_supply", "30.0")  # a whole number: loads as 30
    hostile.set_field(extract, "drug_exposure", 7, "quantity", "nan")
    hostile.set_field(extract, "person", 2, "year_of_birth", "-1")
    day_supply_6 = hostile.fields(extract, "drug_exposure", 6)["drug_exposure_id"]
    con = load(extract)
    found = {(row[0], row[1]): row[2:] for row in con.execute(
        "SELECT table_name, line, reason, column_name, detail FROM ingest.rejects "
        "WHERE (table_name = 'drug_exposure' AND line <= 7) OR (table_name = 'person' AND line = 2)").fetchall()}
    assert found == {
        ("drug_exposure", 2): ("non_integer_number", "days_supply", "days_supply must be a whole number"),
        ("drug_exposure", 3): ("number_out_of_range", "days_supply",
                               "days_supply is outside -2,147,483,648 to 2,147,483,647"),
        ("drug_exposure", 4): ("infinite_number", "days_supply",
                               "days_supply is infinite (or beyond the range of a floating-point number)"),
        ("drug_exposure", 5): ("infinite_number", "quantity",
                               "quantity is infinite (or beyond the range of a floating-point number)"),
        ("drug_exposure", 7): ("unparseable_number", "quantity", "quantity cannot be read as a number"),
        ("person", 2): ("number_out_of_range", "year_of_birth", "year_of_birth is outside 1,850 to 2,100"),
    }
    assert con.execute("SELECT days_supply FROM staging.drug_exposure WHERE drug_exposure_id = ?",
                       [day_supply_6]).fetchone()[0] == 30
    counts = dict(zip(("non_integer_number", "infinite_number", "number_out_of_range"), con.execute(
        "SELECT non_integer_number, infinite_number, number_out_of_range FROM ingest.load_counts "
        "WHERE table_name = 'drug_exposure'").fetchone()))
    assert counts == {"non_integer_number": 1, "infinite_number": 2, "number_out_of_range": 1}
    assert con.execute("SELECT count(*) FROM staging.drug_exposure WHERE isinf(quantity)").fetchone()[0] == 0


def test_ids_are_trimmed_alike_in_every_table(tmp_path):
    folder = write_fixture(tmp_path / "extract")
    text = (folder / "person.csv").read_text().replace("P5,1990,Male,B", " 77 ,1990,Male,B")
    (folder / "person.csv").write_text(text)
    visits = (folder / "visit_occurrence.csv").read_text() + "V4,77,OP,2018-01-01,\nV5,  77,OP,2018-01-02,\n"
    (folder / "visit_occurrence.csv").write_text(visits)
    con = load(folder)
    assert con.execute("SELECT count(*) FROM staging.person WHERE person_id = '77'").fetchone()[0] == 1
    assert con.execute("SELECT person_id FROM staging.visit_occurrence WHERE visit_occurrence_id IN ('V4', 'V5')"
                       ).fetchall() == [("77",), ("77",)]
    assert rejects(con, "visit_occurrence") == set()


# ----------------------------------------------------------------------------- reject shares: blocking checks
def test_reject_shares_of_a_generated_extract_pass_and_one_threshold_applies_to_both(generated):
    con = duckdb.connect()
    loads = load_extract(con, generated)
    verdicts = reject_share_verdicts(loads, 0.01)
    assert all(v.passed for v in verdicts)
    assert {v.check for v in verdicts} == {TABLE_CHECK, CASCADE_CHECK}
    strict = reject_share_verdicts(loads, 0.0)
    assert {v.table for v in strict if not v.passed and v.check == TABLE_CHECK} == {
        load.table for load in loads.values() if load.rejected}


def test_the_threshold_counts_whole_records_so_a_small_table_may_lose_one():
    def verdict(rejected: int, input_records: int, max_share: float = 0.01) -> bool:
        loads = {"death": TableLoad("death", "death.csv", input_records, input_records - rejected,
                                    {"duplicate_primary_key": rejected})}
        return next(v for v in reject_share_verdicts(loads, max_share) if v.table == "death").passed

    assert verdict(1, 2) and not verdict(2, 2)  # one of a 2-row table: 50%, but one record
    assert verdict(2, 193) and not verdict(3, 193)  # 1% of 193 rounds up to 2 records
    assert verdict(21, 2100) and not verdict(22, 2100)  # exactly 1%
    assert not verdict(1, 2, max_share=0.0)


def _materialize(folder: Path, tmp_path: Path, **extract_config) -> dg.ExecuteInProcessResult:
    @dg.asset(deps=[staging_key("person")])
    def downstream_of_person() -> None:
        """Stands for everything downstream of the ingest, publishing included."""

    return dg.materialize(
        [staging_tables, downstream_of_person],
        resources={"extract": ExtractSource(folder=str(folder), **extract_config),
                   "warehouse": Warehouse(database_path=str(tmp_path / "published.duckdb"))},
        raise_on_error=False,
    )


def _check_results(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}


def test_a_person_file_cut_short_fails_the_run_before_anything_downstream(extract, tmp_path):
    hostile.keep_first_lines(extract, "person", 11)  # 10 of 300 persons: their events become unknown_person
    result = _materialize(extract, tmp_path)
    assert not result.success
    checks = _check_results(result)
    assert checks[("person", CASCADE_CHECK)] is False
    assert checks[("visit_occurrence", TABLE_CHECK)] is False
    assert checks[("person", TABLE_CHECK)] is True  # the person file itself lost nothing it held
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey("downstream_of_person") not in materialized


def test_the_threshold_is_configurable(extract, tmp_path):
    hostile.keep_first_lines(extract, "person", 201)  # 200 of 300 persons: about a third of the events rejected
    assert not _materialize(extract, tmp_path).success
    assert _materialize(extract, tmp_path, max_reject_share=0.5).success


def test_a_clean_generated_extract_passes_every_share_check(generated, tmp_path):
    result = _materialize(generated, tmp_path)
    assert result.success
    checks = _check_results(result)
    assert len(checks) == 9 and all(checks.values())


# --------------------------------------------------------------------------------- unreadable files, clear errors
def test_a_latin1_byte_in_the_header_names_file_line_and_fix(extract):
    hostile.latin1_byte(extract, "measurement", line=1)
    with pytest.raises(ExtractError, match=r"measurement\.csv: line 1 \(the header\).*not UTF-8.*iconv -f latin1"):
        load(extract)


def test_a_latin1_byte_in_the_first_lines_is_a_reject_naming_line_and_fix(extract):
    hostile.latin1_byte(extract, "person", line=3)
    con = load(extract)
    line, reason, detail = con.execute(
        "SELECT line, reason, detail FROM ingest.rejects WHERE table_name = 'person' AND line = 3").fetchone()
    assert (line, reason) == (3, "malformed_line")
    assert "not utf-8 encoded" in detail and "iconv -f latin1 -t utf-8" in detail


def test_a_duplicated_column_names_file_line_and_column(extract):
    hostile.duplicate_column(extract, "condition_occurrence", "condition_code")
    with pytest.raises(ExtractError, match=r"condition_occurrence\.csv: line 1 \(the header\) names the column "
                                           r"'condition_code' twice.*rename or remove"):
        load(extract)


def test_a_parquet_column_of_the_wrong_type_names_file_column_and_fix(extract):
    hostile.parquet_with_type(extract, "condition_occurrence", "condition_start_date",
                              "CAST(replace(condition_start_date, '-', '') AS INTEGER)")
    with pytest.raises(ExtractError, match=r"condition_occurrence\.parquet: column type\(s\) the ingest cannot "
                                           r"read: condition_start_date is INTEGER, expected DATE.*Write these"):
        load(extract)


def test_a_plain_text_file_named_csv_gz_names_the_fix(extract):
    hostile.plain_text_named_gzip(extract, "death")
    with pytest.raises(ExtractError, match=r"death\.csv\.gz: not a gzip-compressed file.*rename it to death\.csv"):
        load(extract)


def test_a_byte_order_mark_is_handled(generated, extract):
    hostile.byte_order_mark(extract, "measurement")
    hostile.byte_order_mark(extract, "person")
    reference, con = load(generated), load(extract)
    for table in ("person", "measurement"):
        assert staged(con, table) == staged(reference, table)
        assert rejects(con, table) == rejects(reference, table)


@pytest.mark.parametrize("gzipped", [False, True])
def test_mixed_line_endings_are_handled(generated, extract, gzipped):
    hostile.mixed_line_endings(extract, "visit_occurrence", from_line=2_000)
    hostile.mixed_line_endings(extract, "person", from_line=1)  # CRLF throughout is not mixed
    if gzipped:
        hostile.gzip_table(extract, "visit_occurrence")
    reference, con = load(generated), load(extract)
    for table in ("person", "visit_occurrence"):
        assert staged(con, table) == staged(reference, table)
        assert rejects(con, table) == rejects(reference, table)
    records = con.execute("SELECT record FROM ingest.rejects WHERE table_name = 'visit_occurrence' "
                          "AND reason = 'malformed_line'").fetchall()
    assert records and not any("\r" in r[0] for r in records)


def test_a_shaped_source_keeps_physical_lines_after_a_quoted_line_break_and_a_blank_line(tmp_path):
    """A site-mapped extract (shaped by SQL before the canonical checks) numbers its rejects the same way."""
    folder = write_fixture(tmp_path / "site")
    hostile.set_field(folder, "condition_occurrence", 2, "visit_occurrence_id", '"V1\nnote"')
    hostile.blank_lines(folder, "condition_occurrence", after=[4])
    mapping = {"tables": {t.name: {"file": f"{t.name}.csv", "columns": {c: c for c in hostile.header(folder, t.name)
                                                                        if c in t.column_names}}
                          for t in spec.TABLES}}
    (folder / "extract_mapping.yaml").write_text(yaml.safe_dump(mapping))
    con = duckdb.connect()
    result = load_extract_any_format(con, folder)
    assert result.extract_format == "site_mapping"
    # Line 2's record now spans lines 2-3; line 5 is blank; the original lines 3, 5, 6, 7, 8 are 4, 7, 8, 9, 10.
    shift = {3: 4, 5: 7, 6: 8, 7: 9, 8: 10}
    assert rejects(con, "condition_occurrence") == {
        (t, shift[line], reason, column) for t, line, reason, column in EXPECTED_REJECTS
        if t == "condition_occurrence"}
    assert result.loads["condition_occurrence"].quoted_line_breaks == 1
    assert result.loads["condition_occurrence"].blank_lines == 1
