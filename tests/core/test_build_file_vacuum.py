"""Every connection that writes a run's build file keeps DuckDB's checkpoints from vacuuming
(pipelines/warehouse.py BUILD_FILE_WRITER_SETTINGS): a table whose row groups a vacuum would merge still has them
after the checkpoint of each writer (a stage's, the data-quality checks', the publish step's comments, the ingest
profiler's), while a plain connection's checkpoint merges them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import duckdb
import pytest
from bench.profile_ingest import profile_connection

from pipelines.data_dictionary import comment_database_file
from pipelines.ingest.loader import write_load_counts
from pipelines.quality.checks import duckdb_settings
from pipelines.warehouse import Warehouse

ROW_GROUP_ROWS = 122_880  # DuckDB's default row_group_size
# A table the data dictionary describes (so the publish step's comments write to the file); any table would do.
TABLE = "ingest.load_counts"
RUN_ID = "vacuum-run"


def _write_mergeable_table(path: Path) -> None:
    """Three full row groups, the first two with every other row deleted: a vacuum merges those two into one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path), config={"max_vacuum_tasks": "0"}) as con:
        con.execute("CREATE SCHEMA ingest")
        write_load_counts(con, {})
        con.execute(f"INSERT INTO {TABLE} (input_records) SELECT range FROM range({3 * ROW_GROUP_ROWS})")
        con.execute(f"DELETE FROM {TABLE} WHERE input_records % 2 = 0 AND input_records < {2 * ROW_GROUP_ROWS}")


def _row_groups(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('{TABLE}')").fetchone()[0]


def _write_something(con: duckdb.DuckDBPyConnection) -> None:
    """A write elsewhere in the file: closing the connection then checkpoints it."""
    con.execute("CREATE TABLE main.written_after (x INTEGER)")


def _plain_connection(warehouse: Warehouse, path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        _write_something(con)


def _stage_connection(warehouse: Warehouse, path: Path) -> None:
    with warehouse.connect(RUN_ID) as con:
        _write_something(con)


def _check_connection(warehouse: Warehouse, path: Path) -> None:
    # The settings the data-quality checks give every connection they open (pipelines/quality/runner.py run_suite).
    with duckdb.connect(str(path), config=duckdb_settings(warehouse)) as con:
        _write_something(con)


def _publish_comments(warehouse: Warehouse, path: Path) -> None:
    comment_database_file(path)


def _ingest_profiler(warehouse: Warehouse, path: Path) -> None:
    # bench/profile_ingest.py: profiling with the vacuum on charged the late UPDATEs a rewrite a run does not pay.
    with profile_connection(path, "1GB", 1) as con:
        _write_something(con)


@pytest.mark.parametrize("writer, row_groups", [
    (_plain_connection, 2),  # the vacuum is on by default: this table is one it merges
    (_stage_connection, 3),
    (_check_connection, 3),
    (_publish_comments, 3),
    (_ingest_profiler, 3),
])
def test_writers_of_the_build_file_leave_row_groups_unmerged(
        tmp_path: Path, writer: Callable[[Warehouse, Path], None], row_groups: int) -> None:
    warehouse = Warehouse(database_path=str(tmp_path / "study.duckdb"), threads=1)
    path = warehouse.build_path(RUN_ID)
    _write_mergeable_table(path)
    assert _row_groups(path) == 3
    writer(warehouse, path)
    assert _row_groups(path) == row_groups
