"""Time the disclosure audit of every bundled study (pipelines/statistics/disclosure_audit.py).

    python bench/disclosure_audit.py [--patients 300] [--seed 1] [--work /tmp/disclosure_audit_bench]

Generates an extract (pipelines.synthetic), runs ingest, phenotypes and the cohort build, and analyses and publishes
every study as the statistics asset does (the work folder keeps the published database and each study's ledger, so
a second run only times the audit). Then, per study: seconds of the repair (`protect_derivable_counts` on the
greedy suppression), of the blocking check's audit (`audit_published_study`, every hidden cell's interval), and the
number of LPs the audit solved (the repair's time includes building the ledger's cells, once per study; the audit
reuses them). Prints one line per study and the totals.
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import duckdb

from pipelines.statistics import disclosure_audit
from pipelines.statistics.analysis_attrition import suppress_study_counts_sparing_main


def published(work: Path, patients: int, seed: int) -> tuple[Path, dict]:
    """The published database and {study id: (threshold, ledger)}, built once in `work`."""
    database, saved = work / "study.duckdb", work / "ledgers.pickle"
    if saved.exists():
        return database, pickle.loads(saved.read_bytes())
    from pipelines.cohorts import build_all_studies, load_studies
    from pipelines.ingest.loader import load_extract
    from pipelines.phenotypes import run_phenotypes
    from pipelines.statistics.assets import publish_study_results
    from pipelines.statistics.study_analysis import analyse_study
    from pipelines.synthetic import generate_extract

    work.mkdir(parents=True, exist_ok=True)
    generate_extract(work / "extract", patients, seed=seed, progress=False)
    ledgers = {}
    with duckdb.connect(str(database)) as con:
        load_extract(con, work / "extract")
        run_phenotypes(con)
        build_all_studies(con)
        for study in load_studies().values():
            analysis = analyse_study(con, study)
            publish_study_results(con, study, analysis)
            ledgers[study.id] = (study.threshold, analysis.disclosure_ledger)
    saved.write_bytes(pickle.dumps(ledgers))
    return database, ledgers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/disclosure_audit_bench"))
    arguments = parser.parse_args()
    database, ledgers = published(arguments.work / f"{arguments.patients}_{arguments.seed}", arguments.patients,
                                  arguments.seed)
    totals = [0.0, 0.0]
    with duckdb.connect(str(database), read_only=True) as con:
        for study_id, (threshold, ledger) in ledgers.items():
            greedy = suppress_study_counts_sparing_main(ledger.attrition, ledger.results, threshold, ledger.nested,
                                                        ledger.outcome_count, ledger.controls,
                                                        ledger.varied_exposures, ledger.hidden_arms,
                                                        ledger.control_exposures)
            start = time.perf_counter()
            disclosure_audit.protect_derivable_counts(greedy, ledger, threshold)
            repair = time.perf_counter() - start
            start = time.perf_counter()
            audit = disclosure_audit.audit_published_study(con, study_id, threshold, ledger)
            check = time.perf_counter() - start
            totals[0] += repair
            totals[1] += check
            print(f"{study_id:32s} repair {repair:7.2f} s   audit {check:7.2f} s   "
                  f"{audit.summary()['hidden cells audited']:5d} hidden cells   {audit.solves:5d} LPs   "
                  f"passed={audit.passed}")
    print(f"{'total':32s} repair {totals[0]:7.2f} s   audit {totals[1]:7.2f} s")


if __name__ == "__main__":
    main()
