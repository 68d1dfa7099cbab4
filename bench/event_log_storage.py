"""Which Dagster event-log storage stores a run's events for the least CPU: the same small job in three instances.

    python bench/event_log_storage.py [--assets 40] [--repeats 2] [--out bench/results/event_log_storage.json]

The job is shaped like the study job at small scale: a chain of assets partitioned by a dynamic partition (the
study's sites), each with one asset check, run in process. It runs, interleaved, in
- `default`: Dagster's default SQLite storage (`dagster.yaml` sets none; the same as `storage: sqlite:`), one
  database per run plus an index database of asset events;
- `consolidated`: Dagster's ConsolidatedSqliteEventLogStorage, every run in one database (Dagster documents it as
  meant for tests);
- `held_open`: the default storage with the run's databases held open as `legcramp-run` does
  (pipelines/run.py, `event_log_held_open`).
Each gets a fresh instance in a temporary folder; CPU seconds (user+sys of this process) and wall seconds of
`execute_in_process`, and per stored event. The machine is shared: compare CPU seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import dagster as dg

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from pipelines.run import event_log_held_open  # noqa: E402

KINDS = ("default", "consolidated", "held_open")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def chain_job(assets: int) -> dg.JobDefinition:
    sites = dg.DynamicPartitionsDefinition(name="site")
    definitions, checks = [], []
    for i in range(assets):
        @dg.asset(name=f"a{i}", partitions_def=sites, deps=[f"a{i - 1}"] if i else [])
        def _asset() -> None:
            return None

        @dg.asset_check(asset=f"a{i}", name=f"c{i}")
        def _check() -> dg.AssetCheckResult:
            return dg.AssetCheckResult(passed=True)

        definitions.append(_asset)
        checks.append(_check)
    return dg.Definitions(assets=definitions, asset_checks=checks,
                          jobs=[dg.define_asset_job("chain", executor_def=dg.in_process_executor)]
                          ).resolve_job_def("chain")


def measure(job: dg.JobDefinition, kind: str) -> dict:
    home = tempfile.mkdtemp(prefix=f"legcramp_event_log_{kind}_")
    overrides = {}
    if kind == "consolidated":
        overrides = {"event_log_storage": {"module": "dagster._core.storage.event_log",
                                           "class": "ConsolidatedSqliteEventLogStorage",
                                           "config": {"base_dir": os.path.join(home, "history", "runs")}}}
    with dg.instance_for_test(overrides=overrides, temp_dir=home) as instance:
        instance.add_dynamic_partitions("site", ["site_1"])
        run_id = str(uuid.uuid4())
        held = event_log_held_open(instance, run_id) if kind == "held_open" else contextlib.nullcontext()
        load = os.getloadavg()[0]
        cpu, wall = time.process_time(), time.time()
        with held:
            result = job.execute_in_process(run_config=QUIET, instance=instance, partition_key="site_1",
                                            run_id=run_id)
        cpu, wall = time.process_time() - cpu, time.time() - wall
        assert result.success
        events = len(instance.all_logs(run_id))
    return {"kind": kind, "events": events, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "cpu_ms_per_event": round(1000 * cpu / events, 2), "wall_ms_per_event": round(1000 * wall / events, 1),
            "load_before": round(load, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "event_log_storage.json")
    args = parser.parse_args(argv)
    job = chain_job(args.assets)
    measure(job, "default")  # warm-up: imports and Dagster's caches, not counted
    runs = [measure(job, kind) for _ in range(args.repeats) for kind in KINDS]
    for run in runs:
        print(json.dumps(run))
    args.out.write_text(json.dumps({
        "how": f"bench/event_log_storage.py --assets {args.assets} --repeats {args.repeats}: one job of "
               f"{args.assets} partitioned assets, each with one check, per storage, interleaved",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "runs": runs,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    sys.exit(main())
