"""Profile the phenotype stage on its own: seconds (wall and CPU) per SQL step and of the COMMIT, on a copy of a
staged database; optionally compare the phenotype tables with another database's, row for row.

    python bench/profile_phenotypes.py --db staged.duckdb [--work /tmp/profile] [--memory-limit 6GB]
                                       [--keep result.duckdb] [--compare other.duckdb]

--db is a database after the ingest (staging.*), e.g. one `legcramp-run` built, or one `bench/phenotype_truth.py`
reads; it is copied first (the stage writes the phenotype schema) and never written. The stage is this tree's
`run_phenotypes` (pipelines/phenotypes/compiler.py), unchanged: one transaction on one DuckDB connection with a run's
settings (`Warehouse.connection_settings`: preserve_insertion_order and the vacuum off). CPU seconds are this process's
(DuckDB's threads included), so they say what the work cost on a machine shared with others; wall seconds say what a
run waits.

--keep keeps the copy with its phenotype tables; --compare counts, for phenotype.events and person_summary, the rows
of each database the other lacks (EXCEPT ALL both ways: 0 and 0 means the same rows, duplicates included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.engine.duckdb_engine import DuckDBEngine  # noqa: E402
from pipelines.phenotypes.compiler import compile_phenotypes, run_phenotypes  # noqa: E402
from pipelines.phenotypes.loader import phenotype_library  # noqa: E402
from pipelines.sql_quoting import quote_literal  # noqa: E402
from pipelines.warehouse import Warehouse  # noqa: E402

COMPARED_TABLES = ("phenotype.events", "phenotype.person_summary")


class TimedEngine(DuckDBEngine):
    """The DuckDB engine, timing every statement it runs (named by its SQL file) and the transaction's COMMIT."""

    def __init__(self, con: duckdb.DuckDBPyConnection, files_by_sql: Mapping[str, str]):
        super().__init__(con)
        self.files_by_sql = files_by_sql
        self.timings: list[tuple[str, float, float]] = []  # (step, wall s, CPU s)

    @contextmanager
    def _timed(self, label: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.timings.append((label, time.perf_counter() - wall, time.process_time() - cpu))

    def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        label = self.files_by_sql.get(sql, "other")
        if parameters and "depth" in parameters:
            label += f" (depth {parameters['depth']})"
        with self._timed(label):
            super().execute(sql, parameters)

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._timed(self.files_by_sql.get(sql, "other")):
            super().execute_many(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.begin()
        try:
            yield
        except BaseException:
            self.con.rollback()
            raise
        with self._timed("COMMIT"):
            self.con.commit()


def rows_missing(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int]:
    """(rows of `table` here that the attached database `other` lacks, rows there that this one lacks)."""
    here, there = f"SELECT * FROM {table}", f"SELECT * FROM other.{table}"
    return (con.execute(f"SELECT count(*) FROM ({here} EXCEPT ALL {there})").fetchone()[0],
            con.execute(f"SELECT count(*) FROM ({there} EXCEPT ALL {here})").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description="Profile the phenotype stage on a staged database.")
    parser.add_argument("--db", type=Path, required=True, help="a database after the ingest (only read)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the copy (default: a temporary one)")
    parser.add_argument("--memory-limit", default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the copy, with its phenotype tables, here")
    parser.add_argument("--compare", type=Path, default=None, help="a database whose phenotype tables to compare")
    args = parser.parse_args()

    library = phenotype_library()
    files_by_sql = {step.sql: step.file for step in compile_phenotypes(library).steps}
    work = Path(tempfile.mkdtemp(prefix="legcramp-phenotypes-", dir=args.work))
    try:
        copy = work / "profile.duckdb"
        shutil.copy(args.db, copy)
        settings = Warehouse(memory_limit=args.memory_limit or None).connection_settings()
        con = duckdb.connect(str(copy), config=settings)
        engine = TimedEngine(con, files_by_sql)
        wall, cpu = time.perf_counter(), time.process_time()
        run_phenotypes(engine, library)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        events = con.execute("SELECT count(*) FROM phenotype.events").fetchone()[0]
        print(f"phenotype stage on a copy of {args.db}: {events:,} events; load average {os.getloadavg()[0]:.1f}")
        print(f"{'step':<48}{'wall s':>9}{'CPU s':>9}")
        for label, step_wall, step_cpu in engine.timings:
            if step_wall >= 0.05 or label == "COMMIT":
                print(f"{label:<48}{step_wall:9.2f}{step_cpu:9.2f}")
        print(f"{'whole stage (run_phenotypes, counts included)':<48}{wall:9.2f}{cpu:9.2f}")
        if args.compare:
            con.execute(f"ATTACH {quote_literal(str(args.compare))} AS other (READ_ONLY)")
            for table in COMPARED_TABLES:
                only_here, only_there = rows_missing(con, table)
                print(f"{table}: {only_here:,} rows only here, {only_there:,} only in {args.compare}")
            con.execute("DETACH other")
        con.close()
        if args.keep:
            shutil.move(copy, args.keep)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
