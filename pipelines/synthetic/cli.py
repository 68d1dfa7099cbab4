"""legcramp-generate: write a synthetic extract from the command line.

    legcramp-generate --patients 5000 --seed 42 --out data/sample [--format csv|csv.gz|parquet]
                      [--defect-rate 0.002] [--chunk-size 50000] [--workers 2] [--no-progress]
                      [--effects default|sequence_symmetry|on_drug]
                      [--no-negative-controls] [--negative-control-bias LOG_HR[,SD]]
"""

from __future__ import annotations

import argparse
import sys
import time

from .generator import FORMATS, generate_extract
from .parameters import CRAMP_EFFECTS_PROFILES, DEFAULT_EFFECTS_PROFILE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="legcramp-generate", description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, required=True, help="number of persons")
    parser.add_argument("--seed", type=int, default=42, help="random seed (same seed => identical files)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", choices=FORMATS, default="csv", dest="fmt")
    parser.add_argument("--defect-rate", type=float, default=0.002,
                        help="extra defective rows per clean row, per table (default 0.002)")
    parser.add_argument("--chunk-size", type=int, default=50_000, help="persons per chunk (default 50000)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: up to 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--effects", choices=tuple(CRAMP_EFFECTS_PROFILES), default=DEFAULT_EFFECTS_PROFILE,
                        dest="effects_profile",
                        help="planted effects on cramp onset: 'default'; 'sequence_symmetry' (only thiazides, "
                             "LABA and statins act, so a sequence symmetry analysis should recover their ratios); "
                             "or 'on_drug' (the default hazard ratios acting only while on drug, in treatment "
                             "episodes with stops and restarts; low magnesium acting for weeks; a lab work-up after "
                             "cramps; a frailty that depletes the susceptible)")
    parser.add_argument("--no-negative-controls", action="store_false", dest="negative_controls",
                        help="write no records of the negative-control outcomes (they are written by default, "
                             "appended after every other row; the rest of the extract is the same without them)")
    parser.add_argument("--negative-control-bias", type=_bias, default=(0.0, 0.0), metavar="LOG_HR[,SD]",
                        help="planted systematic error: from the first thiazide or thiazide-like diuretic fill on, "
                             "each negative control's hazard is multiplied by exp(LOG_HR + SD * z), one standard "
                             "normal z per control (default 0: none)")
    args = parser.parse_args(argv)
    if not args.negative_controls and args.negative_control_bias != (0.0, 0.0):
        parser.error("--negative-control-bias needs the negative controls (drop --no-negative-controls)")
    return args


def _bias(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) > 2:
        raise argparse.ArgumentTypeError("expected LOG_HR or LOG_HR,SD")
    try:
        log_hr, sd = float(parts[0]), float(parts[1]) if len(parts) == 2 else 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if sd < 0:
        raise argparse.ArgumentTypeError("SD must be >= 0")
    return log_hr, sd


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    truth = generate_extract(args.out, args.patients, seed=args.seed, fmt=args.fmt, defect_rate=args.defect_rate,
                             chunk_size=args.chunk_size, progress=not args.no_progress, workers=args.workers,
                             effects_profile=args.effects_profile, negative_controls=args.negative_controls,
                             negative_control_bias=args.negative_control_bias[0],
                             negative_control_bias_sd=args.negative_control_bias[1])
    seconds = time.perf_counter() - started
    rows = sum(truth["rows_written"].values())
    print(f"wrote {args.patients:,} persons, {rows:,} rows to {args.out} in {seconds:.1f} s "
          f"({truth['phenotype_persons']['leg_cramps']:,} with leg cramps)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
