"""Does the pipeline's sequence symmetry analysis recover Garrison-sized planted ratios? (run by hand)

    .venv/bin/python bench/validate_sequence_symmetry.py [--patients 1000000] [--seeds 2012 2013 ...]

1. Generates (once; reused when its manifest matches) an extract with the generator's `sequence_symmetry` effects
   profile: only thiazides (1.47), long-acting beta-2 agonists (2.42) and statins (1.16) act on cramp onset, so no
   other cause of cramps starts near a drug's first fill and each sequence ratio should equal the planted ratio.
2. Runs the pipeline's own path through Dagster: the ingest, phenotype and sequence symmetry assets, materialised
   with `dagster.materialize` into a throwaway database (no cohort, quality or publish step: the SSA does not read
   them).
3. Reads `results.associations` (study `sequence_symmetry`) and prints, per drug, the sequence counts, crude SR,
   null-effect SR, adjusted SR with its 95% CI, and whether the planted ratio (from the truth file) is inside.
4. With several seeds (independent replicates), pools each planted drug's adjusted ratios across them with the
   pipeline's own fixed-effect meta-analysis and reports how many replicate intervals hold the planted ratio. One
   extract's interval misses its planted ratio 5% of the time by design; the pooled interval is narrower and shows
   whether a miss is chance or bias.

Adds each run to bench/results/sequence_symmetry_validation.json (one entry per size and seed), and the pooled
figures of the latest multi-seed call under "pooled". The other drugs of
the studies are listed for information only: they share indications, and so start dates, with the three planted
drugs (docs/synthetic_data.md). Time: about 2.5 minutes per seed at 1,000,000 patients (2 cores).
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
from pipelines.statistics.meta_analysis import meta_analysis_of_results  # noqa: E402
from pipelines.statistics.results import EstimateResult  # noqa: E402
from pipelines.synthetic import GENERATOR_VERSION, generate_extract  # noqa: E402
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
        if (manifest.get("effects_profile"), manifest["patients"], manifest["seed"], manifest.get("version")) == (
                PROFILE, patients, seed, GENERATOR_VERSION):
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
        crude, adjusted = drug["crude"]["estimate"], drug["adjusted"]["estimate"]
        drug["null_effect_ratio"] = crude / adjusted if adjusted else None  # 0 / 0 on tiny extracts
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
              f"{r['null_effect_ratio'] or float('nan'):>6.3f} {a['estimate']:>7.3f} {a['ci_lower']:>7.3f}-{a['ci_upper']:<7.3f} "
              f"{planted:>7} {inside}")


def pool_replicates(runs: list[dict]) -> list[dict]:
    """Per planted drug: the fixed-effect pooled adjusted ratio over the replicates and their coverage count."""
    pooled = []
    for record in runs[0]["drugs"]:
        if record["planted_ratio"] is None:
            continue
        drug = record["drug"]
        per_run = [next(r for r in run["drugs"] if r["drug"] == drug) for run in runs]
        results = [EstimateResult(method="sequence symmetry", estimand="sequence ratio", **r["adjusted"])
                   for r in per_run]
        fixed = meta_analysis_of_results(results, [str(run["seed"]) for run in runs]).fixed_effect
        pooled.append({
            "drug": drug, "planted_ratio": record["planted_ratio"], "replicates": len(runs),
            "replicates_inside": sum(r["planted_inside_adjusted_ci"] for r in per_run),
            "estimate": fixed.estimate, "ci_lower": fixed.ci_lower, "ci_upper": fixed.ci_upper,
            "planted_inside_pooled_ci": fixed.ci_lower <= record["planted_ratio"] <= fixed.ci_upper,
        })
    return pooled


def print_pooled(pooled: list[dict], patients: int) -> None:
    print(f"\nPooled over {pooled[0]['replicates']} replicates of {patients:,} patients (fixed effect, inverse variance)")
    header = f"{'index drug':32} {'pooled SR':>9} {'95% CI':>15} {'planted':>7} {'inside':>6} {'replicates inside':>18}"
    print(header)
    print("-" * len(header))
    for p in pooled:
        inside = "yes" if p["planted_inside_pooled_ci"] else "NO"
        print(f"{p['drug']:32} {p['estimate']:>9.3f} {p['ci_lower']:>7.3f}-{p['ci_upper']:<7.3f} "
              f"{p['planted_ratio']:>7.2f} {inside:>6} {p['replicates_inside']:>10} of {p['replicates']}")


def store_runs(path: Path, new_runs: list[dict], pooled: list[dict] | None) -> None:
    """Add the runs to the results file, replacing earlier runs with the same size and seed; `pooled` replaces the
    stored pooled figures when given."""
    stored = json.loads(path.read_text()) if path.exists() else {}
    replaced = {(r["patients"], r["seed"]) for r in new_runs}
    runs = [r for r in stored.get("runs", []) if (r["patients"], r["seed"]) not in replaced]
    content = {"runs": sorted([*runs, *new_runs], key=lambda r: (r["patients"], r["seed"]))}
    if pooled is not None:
        content["pooled"] = {"patients": new_runs[0]["patients"], "seeds": [r["seed"] for r in new_runs],
                             "generator_version": new_runs[0]["generator_version"], "drugs": pooled}
    elif "pooled" in stored:
        content["pooled"] = stored["pooled"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def remove_run_files(run_database: Path) -> None:
    """Delete this run's throwaway database and its side files, not those of runs still going in the same folder."""
    for path in run_database.parent.glob(run_database.stem + "*"):  # .duckdb, .duckdb.wal, .duckdb.tmp/, _outputs/
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def validate_one(patients: int, seed: int, memory_limit: str, keep_extract: bool) -> dict:
    """Generate, run and compare one replicate; prints its table and returns its stored record."""
    folder = extract_folder(patients, seed)
    truth, generate_seconds = ensure_extract(folder, patients, seed)
    database = ROOT / "build" / "validation" / f"{PROFILE}_{patients}_seed{seed}.duckdb"
    started = time.perf_counter()
    run_database = run_sequence_symmetry(folder, database, memory_limit)
    pipeline_seconds = time.perf_counter() - started
    records = compare_with_truth(sequence_ratios(run_database), truth)
    print(f"\n{patients:,} patients, effects profile {PROFILE!r}, seed {seed}, generator {GENERATOR_VERSION}; "
          f"pipeline (ingest + phenotypes + SSA through Dagster) {pipeline_seconds:.0f} s\n")
    print_table(records)
    targets = [r for r in records if r["planted_ratio"] is not None]
    inside = sum(r["planted_inside_adjusted_ci"] for r in targets)
    print(f"\nplanted ratio inside the adjusted 95% CI: {inside} of {len(targets)}")
    remove_run_files(run_database)
    if not keep_extract:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "patients": patients, "seed": seed, "effects_profile": PROFILE,
        "generator_version": truth["generator"]["version"],
        "persons_with_leg_cramps": truth["phenotype_persons"]["leg_cramps"],
        "window_days": 365,
        "generate_seconds": generate_seconds, "pipeline_seconds": round(pipeline_seconds, 1),
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "drugs": records,
        "planted_inside_adjusted_ci": f"{inside} of {len(targets)}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2012],
                        help="one extract per seed; with several, the ratios are also pooled across them")
    parser.add_argument("--memory-limit", default="8GB", help="DuckDB memory limit of the run")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    parser.add_argument("--keep-extract", action="store_true", help="keep the generated extracts for later runs")
    parser.add_argument("--rerun", action="store_true",
                        help="run every seed again, even one stored for this size and generator version")
    args = parser.parse_args(argv)

    stored = json.loads(args.out.read_text()).get("runs", []) if args.out.exists() else []
    runs = []
    for seed in args.seeds:
        done = next((r for r in stored if (r["patients"], r["seed"], r["generator_version"])
                     == (args.patients, seed, GENERATOR_VERSION)), None)
        if done and not args.rerun:
            print(f"seed {seed}: stored run of generator {GENERATOR_VERSION} reused ({args.out.name}; --rerun to redo)")
            runs.append(done)
            continue
        runs.append(validate_one(args.patients, seed, args.memory_limit, args.keep_extract))
        store_runs(args.out, runs, None)  # keep what is done if a later replicate fails
    pooled = pool_replicates(runs) if len(runs) > 1 else None
    if pooled:
        print_pooled(pooled, args.patients)
    store_runs(args.out, runs, pooled)
    print(f"written: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if pooled:
        return 0 if all(p["planted_inside_pooled_ci"] for p in pooled) else 1
    return 0 if all(r["planted_inside_adjusted_ci"] for r in runs[0]["drugs"] if r["planted_ratio"]) else 1


if __name__ == "__main__":
    sys.exit(main())
