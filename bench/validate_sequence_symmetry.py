"""Does the pipeline's sequence symmetry analysis recover Garrison-sized planted ratios? (issue 5; run by hand)

    .venv/bin/python bench/validate_sequence_symmetry.py [--patients 1000000] [--seed 2012]

1. Generates (once; reused when its manifest matches) an extract with the generator's `sequence_symmetry` effects
   profile: only thiazides (1.47), long-acting beta-2 agonists (2.42) and statins (1.16) act on cramp onset, so no
   other cause of cramps starts near a drug's first fill and each sequence ratio should equal the planted ratio.
2. Runs the pipeline's own path through Dagster: the ingest, phenotype and sequence symmetry assets, materialised
   with `dagster.materialize` into a throwaway database (no cohort, quality or publish step: the SSA does not read
   them).
3. Reads `results.associations` (study `sequence_symmetry`) and prints, per drug, the sequence counts, crude SR,
   null-effect SR, adjusted SR with its 95% CI, and whether the planted ratio (from the truth file) is inside.

Adds the run to bench/results/sequence_symmetry_validation.json (one entry per size and seed). The other drugs of
the studies are listed for information only: they share indications, and so start dates, with the three planted
drugs (docs/synthetic_data.md). Time: about 12 minutes at 1,000,000 patients, 16 at 2,000,000 (2 cores, shared).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.ingest.assets import staging_tables  # noqa: E402
from pipelines.ingest.resources import ExtractSource  # noqa: E402
from pipelines.phenotypes.assets import phenotypes_multi_asset  # noqa: E402
from pipelines.statistics.assets import SEQUENCE_SYMMETRY_ID, associations_key  # noqa: E402
from pipelines.statistics.assets import assets as statistics_assets  # noqa: E402
from pipelines.synthetic import generate_extract  # noqa: E402
from pipelines.synthetic.generator import MANIFEST, TRUTH_DIR  # noqa: E402
from pipelines.warehouse import Warehouse  # noqa: E402

PROFILE = "sequence_symmetry"
RESULTS_FILE = ROOT / "bench" / "results" / "sequence_symmetry_validation.json"


def extract_folder(patients: int, seed: int) -> Path:
    return ROOT / "bench" / "data" / f"{PROFILE}_parquet_{patients}_seed{seed}"


def ensure_extract(folder: Path, patients: int, seed: int) -> tuple[dict, float | None]:
    """Generate the extract unless a complete one with the same settings is there; returns (truth, seconds)."""
    manifest_path = folder / MANIFEST
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("effects_profile"), manifest["patients"], manifest["seed"]) == (PROFILE, patients, seed):
            return json.loads((folder / TRUTH_DIR / "ground_truth.json").read_text()), None
    started = time.perf_counter()
    truth = generate_extract(folder, patients, seed=seed, fmt="parquet", effects_profile=PROFILE)
    return truth, time.perf_counter() - started


def run_sequence_symmetry(folder: Path, database: Path, memory_limit: str | None) -> Path:
    """Materialise ingest -> phenotypes -> sequence symmetry through Dagster; returns the run's database file."""
    ssa_asset = next(a for a in statistics_assets if associations_key(SEQUENCE_SYMMETRY_ID) in a.keys)
    warehouse = Warehouse(database_path=str(database), memory_limit=memory_limit)
    result = dg.materialize(
        [staging_tables, phenotypes_multi_asset, ssa_asset],
        resources={"extract": ExtractSource(folder=str(folder)), "warehouse": warehouse},
        instance=dg.DagsterInstance.ephemeral(),
    )
    if not result.success:
        raise RuntimeError(f"Dagster run {result.run_id} failed")
    return warehouse.build_path(result.run_id)


def sequence_ratios(run_database: Path) -> dict[str, dict]:
    """Crude and adjusted rows of results.associations, one dict per index drug."""
    con = duckdb.connect(str(run_database), read_only=True)
    try:
        rows = con.execute(
            """SELECT exposure, method, estimate, ci_lower, ci_upper, p_value, events_exposed, events_unexposed
               FROM results.associations WHERE study_id = ? ORDER BY exposure, method""",
            [SEQUENCE_SYMMETRY_ID]).fetchall()
    finally:
        con.close()
    drugs: dict[str, dict] = {}
    for exposure, method, estimate, lower, upper, p_value, index_first, marker_first in rows:
        kind = "adjusted" if method.startswith("Adjusted") else "crude"
        drug = drugs.setdefault(exposure, {"index_first": index_first, "marker_first": marker_first})
        drug[kind] = {"estimate": estimate, "ci_lower": lower, "ci_upper": upper, "p_value": p_value}
    for drug in drugs.values():
        drug["null_effect_ratio"] = drug["crude"]["estimate"] / drug["adjusted"]["estimate"]
    return drugs


def compare_with_truth(drugs: dict[str, dict], truth: dict) -> list[dict]:
    """One record per drug: the SSA figures, the planted ratio (targets only) and whether the CI holds it."""
    planted = {t["index_drug"]: t["sequence_ratio"] for t in truth["sequence_ratios"]["targets"]}
    missing = set(planted) - set(drugs)
    if missing:
        raise RuntimeError(f"no sequence ratio for planted drugs {sorted(missing)}")
    records = []
    for drug in [*planted, *sorted(set(drugs) - set(planted))]:
        figures = drugs[drug]
        record = {"drug": drug, "planted_ratio": planted.get(drug), **figures}
        if drug in planted:
            adjusted = figures["adjusted"]
            record["planted_inside_adjusted_ci"] = adjusted["ci_lower"] <= planted[drug] <= adjusted["ci_upper"]
            record["planted_inside_crude_ci"] = (figures["crude"]["ci_lower"] <= planted[drug]
                                                 <= figures["crude"]["ci_upper"])
        records.append(record)
    return records


def _count(value: int | None) -> str:
    """A published count; None is a suppressed small cell (1-10 persons)."""
    return f"{value:,}" if value is not None else "<11"


def print_table(records: list[dict]) -> None:
    header = (f"{'index drug':32} {'idx first':>9} {'mkr first':>9} {'crude SR':>8} {'NSR':>6} {'adj SR':>7} "
              f"{'95% CI':>15} {'planted':>7} inside")
    print(header)
    print("-" * len(header))
    for r in records:
        a = r["adjusted"]
        planted = f"{r['planted_ratio']:.2f}" if r["planted_ratio"] is not None else "-"
        inside = {True: "yes", False: "NO", None: "(not a target)"}[r.get("planted_inside_adjusted_ci")]
        print(f"{r['drug']:32} {_count(r['index_first']):>9} {_count(r['marker_first']):>9} {r['crude']['estimate']:>8.3f} "
              f"{r['null_effect_ratio']:>6.3f} {a['estimate']:>7.3f} {a['ci_lower']:>7.3f}-{a['ci_upper']:<7.3f} "
              f"{planted:>7} {inside}")


def store_run(path: Path, run: dict) -> None:
    """Add the run to the results file, replacing an earlier run with the same size and seed."""
    stored = json.loads(path.read_text()) if path.exists() else {}
    runs = [r for r in stored.get("runs", []) if (r["patients"], r["seed"]) != (run["patients"], run["seed"])]
    runs = sorted([*runs, run], key=lambda r: (r["patients"], r["seed"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")


def remove_run_files(run_database: Path) -> None:
    """Delete this run's throwaway database and its side files, not those of runs still going in the same folder."""
    for path in run_database.parent.glob(run_database.stem + "*"):  # .duckdb, .duckdb.wal, .duckdb.tmp/, _outputs/
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2012)
    parser.add_argument("--memory-limit", default="8GB", help="DuckDB memory limit of the run")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    parser.add_argument("--keep-extract", action="store_true", help="keep the generated extract for later runs")
    args = parser.parse_args(argv)

    folder = extract_folder(args.patients, args.seed)
    truth, generate_seconds = ensure_extract(folder, args.patients, args.seed)
    database = ROOT / "build" / "validation" / f"{PROFILE}_{args.patients}.duckdb"
    started = time.perf_counter()
    run_database = run_sequence_symmetry(folder, database, args.memory_limit)
    pipeline_seconds = time.perf_counter() - started
    records = compare_with_truth(sequence_ratios(run_database), truth)
    print(f"\n{args.patients:,} patients, effects profile {PROFILE!r}, seed {args.seed}; "
          f"pipeline (ingest + phenotypes + SSA through Dagster) {pipeline_seconds:.0f} s\n")
    print_table(records)
    targets = [r for r in records if r["planted_ratio"] is not None]
    inside = sum(r["planted_inside_adjusted_ci"] for r in targets)
    print(f"\nplanted ratio inside the adjusted 95% CI: {inside} of {len(targets)}")

    store_run(args.out, {
        "patients": args.patients, "seed": args.seed, "effects_profile": PROFILE,
        "generator_version": truth["generator"]["version"],
        "persons_with_leg_cramps": truth["phenotype_persons"]["leg_cramps"],
        "window_days": 365,
        "generate_seconds": generate_seconds, "pipeline_seconds": round(pipeline_seconds, 1),
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "drugs": records,
        "planted_inside_adjusted_ci": f"{inside} of {len(targets)}",
    })
    print(f"written: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    remove_run_files(run_database)
    if not args.keep_extract:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if inside == len(targets) else 1


if __name__ == "__main__":
    sys.exit(main())
