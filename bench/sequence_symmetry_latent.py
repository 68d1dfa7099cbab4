"""Sequence ratios from the generator's own dates, over many seeds, without writing or reading an extract.

    .venv/bin/python bench/sequence_symmetry_latent.py [--patients 1000000] [--seeds 101 102 ...]

`bench/validate_sequence_symmetry.py` runs the pipeline on one extract per seed, about 2.5 minutes per million
patients. This script asks a cheaper question, about 25 seconds per million: what sequence ratio does the generating
process itself give? It simulates the chunks of each seed in memory exactly as `generate_extract` would (same chunk
size, same per-chunk random streams, `sequence_symmetry` effects profile) and counts, for each planted drug, the
index-first and marker-first pairs from the latent first-fill and cramp-onset days. It applies the eligibility rules
of `pipelines.statistics.study_analysis.sequence_symmetry_for_drugs`: the first fill needs washout + window days of
observation before it and window days after it in the same observation period, the first cramp needs washout days
before it, and the two must be 1 to window days apart.

For a seed that was also run through the pipeline, the counts should equal the pipeline's (up to the few first
records the planted defects remove). Over many seeds, each drug's pooled ratio is the process's expected ratio:
its planted hazard ratio, times about 1.02 for ageing and 0.98-0.99 for first-event depletion (docs/synthetic_data.md).
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.statistics.study_analysis import sequence_symmetry_for_drugs  # noqa: E402
from pipelines.synthetic import parameters as P  # noqa: E402
from pipelines.synthetic.generator import chunk_rng  # noqa: E402
from pipelines.synthetic.model import ChunkSimulation  # noqa: E402

PROFILE = "sequence_symmetry"
CHUNK_SIZE = 50_000  # generate_extract's default: the same chunks, so the same persons
# The pipeline's own defaults, so that both count the same pairs.
_SSA_DEFAULTS = inspect.signature(sequence_symmetry_for_drugs).parameters
WINDOW_DAYS = _SSA_DEFAULTS["window_days"].default
WASHOUT_DAYS = _SSA_DEFAULTS["washout_days"].default


def observed_around(sim: ChunkSimulation, person: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days observed before and after `day` within the observation period that contains it."""
    in_first = (day >= sim.span1_start[person]) & (day <= sim.span1_end[person])
    start = np.where(in_first, sim.span1_start[person], sim.span2_start[person])
    end = np.where(in_first, sim.span1_end[person], sim.span2_end[person])
    return day - start, end - day


def chunk_pairs(sim: ChunkSimulation, drug: str) -> tuple[int, int]:
    """(index-first, marker-first) pairs of one drug in one simulated chunk."""
    first_fill = sim.drug_first_fill[drug]
    person = np.flatnonzero(first_fill >= 0)
    fill = first_fill[person]
    before, after = observed_around(sim, person, fill)
    eligible = (before >= WASHOUT_DAYS + WINDOW_DAYS) & (after >= WINDOW_DAYS)
    person, fill = person[eligible], fill[eligible]
    onset = sim.cramp_onset[person]
    has_onset = onset >= 0
    onset_before, _ = observed_around(sim, person, np.where(has_onset, onset, fill))
    paired = has_onset & (onset_before >= WASHOUT_DAYS) & (np.abs(onset - fill) <= WINDOW_DAYS)
    return int((paired & (onset > fill)).sum()), int((paired & (onset < fill)).sum())


def seed_pairs(seed: int, patients: int) -> dict[str, tuple[int, int]]:
    effects = P.CRAMP_EFFECTS_PROFILES[PROFILE]
    totals = {drug: [0, 0] for drug in P.SEQUENCE_RATIO_TARGETS[PROFILE]}
    for chunk in range(math.ceil(patients / CHUNK_SIZE)):
        size = min(CHUNK_SIZE, patients - chunk * CHUNK_SIZE)
        sim = ChunkSimulation(chunk_rng(seed, chunk), size, chunk * CHUNK_SIZE + 1, effects)  # ids from 1
        sim.simulate(through="cramps")
        for drug, total in totals.items():
            index_first, marker_first = chunk_pairs(sim, drug)
            total[0] += index_first
            total[1] += marker_first
    return {drug: (a, b) for drug, (a, b) in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(101, 111)))
    args = parser.parse_args(argv)

    effects = P.CRAMP_EFFECTS_PROFILES[PROFILE]
    planted = {drug: effects[drug][0] for drug in P.SEQUENCE_RATIO_TARGETS[PROFILE]}  # seed_pairs' order
    pooled = {drug: [0, 0] for drug in planted}
    print(f"{'seed':>6} " + " ".join(f"{drug:>36}" for drug in planted))
    for seed in args.seeds:
        pairs = seed_pairs(seed, args.patients)
        print(f"{seed:>6} " + " ".join(f"{f'{a}/{b} = {a / b:.3f}':>36}" for a, b in pairs.values()), flush=True)
        for drug, (a, b) in pairs.items():
            pooled[drug][0] += a
            pooled[drug][1] += b
    print(f"\nAll {len(args.seeds)} seeds of {args.patients:,} patients (crude sequence ratio, index-first / "
          "marker-first pairs; 95% CI from the log ratio's binomial variance):")
    for drug, (a, b) in pooled.items():
        half_width = 1.959964 * math.sqrt(1 / a + 1 / b)
        ratio = a / b
        print(f"  {drug:32} {ratio:.3f} ({ratio * math.exp(-half_width):.3f}-{ratio * math.exp(half_width):.3f}) "
              f"[{a}/{b}], planted {planted[drug]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
