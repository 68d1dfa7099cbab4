"""Profile the ingest of one table: seconds per SQL statement, and per operator of the main parse statement.

    python bench/profile_ingest.py --extract bench/data/csv_1000000 --table drug_exposure [--memory-limit 6GB]

The ingest is the slowest stage of the study (docs/performance.md). This runs the real loader
(pipelines/ingest/loader.py) on one table of an extract into a throw-away database, with the DuckDB settings of a
run's build file (`Warehouse.connection_settings`), and prints
- every statement that took at least 0.1 s, in order, with its wall and CPU seconds (this process's, DuckDB's
  threads included: on a shared machine the CPU seconds say what the work cost, the wall seconds what it waited);
- the operator tree of the statement that parses the file into staging (DuckDB's EXPLAIN ANALYZE, which also
  executes it), as one line per operator with its rows and seconds;
- DuckDB's plain load of the same file (CREATE TABLE AS SELECT * FROM read_csv(...)) for comparison.
The person table is loaded first when the profiled table references persons (the unknown-person check needs it).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import duckdb

from pipelines import extract_spec as spec
from pipelines.ingest import loader
from pipelines.sql_quoting import quote_literal
from pipelines.warehouse import Warehouse

PARSE_STATEMENT = re.compile(r"^\s*CREATE TABLE staging\.")
OPERATOR = re.compile(r"─\s*([A-Z][A-Za-z_ ]+?)\s*─")
ROWS_AND_TIME = re.compile(r"([\d,]+) rows?\s+([\d.]+)(µs|ms|s)\b")
UNIT_SECONDS = {"µs": 1e-6, "ms": 1e-3, "s": 1.0}


class ProfiledConnection:
    """Passes statements to DuckDB, timing each; the staging parse statement runs under EXPLAIN ANALYZE."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.statements: list[tuple[float, float, str]] = []  # (wall s, CPU s, statement)
        self.parse_plan: str | None = None

    def execute(self, sql: str, *args):
        started, cpu = time.time(), time.process_time()
        if PARSE_STATEMENT.match(sql):
            result = self.con.execute("EXPLAIN ANALYZE " + sql, *args)
            self.parse_plan = result.fetchall()[0][1]
        else:
            result = self.con.execute(sql, *args)
        self.statements.append((time.time() - started, time.process_time() - cpu, " ".join(sql.split())))
        return result

    def __getattr__(self, name):
        return getattr(self.con, name)


def operators(plan: str) -> list[tuple[str, int, float]]:
    """(operator, rows, seconds) for every operator box of an EXPLAIN ANALYZE tree, top to bottom; the operator
    is named with the start of its first detail line (which projections, which function)."""
    found, current = [], None
    for line in plan.splitlines():
        name = OPERATOR.search(line)
        if name and "╭" in line:
            current, detail = name.group(1).strip(), ""
            continue
        figures = ROWS_AND_TIME.search(line)
        if figures and current:
            rows, value, unit = figures.groups()
            detail = re.sub(r"^(Projections|Function):\s*", "", detail.strip())
            label = f"{current}: {detail[:70]}" if detail else current
            found.append((label, int(rows.replace(",", "")), float(value) * UNIT_SECONDS[unit]))
            current = None
        elif current:
            detail += " " + line.strip("│╰╯─ \t")
    return found


def profile_connection(path: Path, memory_limit: str, threads: int | None) -> duckdb.DuckDBPyConnection:
    """A connection to `path` with the settings of a run's build file (`Warehouse.connection_settings`): with
    DuckDB's default vacuum on, the automatic checkpoint that each late UPDATE's commit runs rewrote the whole
    table, 6 CPU s each for drug_exposure at 200,000 patients, which a run does not pay (docs/performance.md,
    session 15)."""
    settings = Warehouse(memory_limit=memory_limit, threads=threads).connection_settings()
    return duckdb.connect(str(path), config=settings)


def main() -> None:
    parser = argparse.ArgumentParser(description="Profile the ingest of one table.")
    parser.add_argument("--extract", type=Path, default=Path("bench/data/csv_1000000"))
    parser.add_argument("--table", default="drug_exposure", choices=[t.name for t in spec.TABLES])
    parser.add_argument("--memory-limit", default="6GB")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB's threads (default: a run's, the cores)")
    args = parser.parse_args()

    table = next(t for t in spec.TABLES if t.name == args.table)
    path = loader.find_table_file(args.extract, table)
    if path is None:
        raise SystemExit(f"{args.extract}: no file for table {args.table}")
    with tempfile.TemporaryDirectory(prefix="legcramp-profile-") as tmp:
        con = profile_connection(Path(tmp) / "profile.duckdb", args.memory_limit, args.threads)
        loader.create_ingest_schema(con)
        if table.references_person:
            loader.load_table(con, spec.PERSON, loader.find_table_file(args.extract, spec.PERSON))
        profiled = ProfiledConnection(con)
        started, cpu = time.time(), time.process_time()
        load = loader.load_table(profiled, table, path)
        ingest_seconds, ingest_cpu = time.time() - started, time.process_time() - cpu

        reader = "read_parquet" if path.name.endswith(".parquet") else "read_csv"
        options = "" if reader == "read_parquet" else ", ignore_errors = true"
        started, cpu = time.time(), time.process_time()
        con.execute(f"CREATE TABLE plain_load AS SELECT * FROM {reader}({quote_literal(path)}{options})")
        plain_seconds, plain_cpu = time.time() - started, time.process_time() - cpu

    print(f"{table.name}: {load.input_records:,} records from {path.name}")
    print(f"\nstatements of at least 0.1 s (wall, CPU; {ingest_seconds:.1f} s, {ingest_cpu:.1f} CPU s in all; "
          f"load average {os.getloadavg()[0]:.1f}):")
    for seconds, cpu_seconds, sql in profiled.statements:
        if seconds >= 0.1:
            print(f"{seconds:8.2f} s {cpu_seconds:8.2f} s  {sql[:100]}")
    if profiled.parse_plan:
        print("\noperators of the parse statement (EXPLAIN ANALYZE, top = last):")
        for name, rows, seconds in operators(profiled.parse_plan):
            print(f"{seconds:8.2f} s  {rows:>13,} rows  {name}")
    print(f"\nDuckDB's plain load of the same file: {plain_seconds:.1f} s, {plain_cpu:.1f} CPU s "
          f"(ingest / plain load = {ingest_seconds / plain_seconds:.1f}, in CPU {ingest_cpu / plain_cpu:.1f})")


if __name__ == "__main__":
    main()
