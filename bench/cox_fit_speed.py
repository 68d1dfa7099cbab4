"""CPU seconds of one adjusted Cox fit: lifelines' CoxPHFitter against `cox_model.fit_cox` (issue #21).

The frame is seeded and shaped like the leg-cramp study's adjusted model: the exposure (15%), age, sex and 18 binary
covariates (prevalence 2-30%), follow-up in whole days up to 8 years (so event times tie heavily), about 8% with an
event. Both fitters get the same matrix; the script prints CPU seconds (process time, all threads) and the largest
difference between the two fits' coefficients (in units of their SE) and relative difference of their model-based
SEs (lifelines stops at its default convergence, norm(step) < 1e-7 among others). A measurement, not a test: the figures
depend on the machine and its load, which go beside them (docs/statistics.md, "Performance").

    .venv/bin/python bench/cox_fit_speed.py --rows 20000 200000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lifelines import CoxPHFitter  # noqa: E402

from pipelines.statistics.cox_model import fit_cox  # noqa: E402

BINARY_COVARIATES = 18


def study_like_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"exposure": (rng.random(rows) < 0.15).astype(float),
                          "age": rng.normal(62, 12, rows).round(), "female": (rng.random(rows) < 0.55).astype(float)})
    prevalence = np.linspace(0.02, 0.30, BINARY_COVARIATES)
    effects = np.linspace(-0.3, 0.4, BINARY_COVARIATES)
    linear = 0.3 * frame.exposure + 0.02 * (frame.age - 62) + 0.1 * frame.female
    for j in range(BINARY_COVARIATES):
        frame[f"c{j}"] = (rng.random(rows) < prevalence[j]).astype(float)
        linear = linear + effects[j] * frame[f"c{j}"]
    event_days = rng.exponential(365.25 / (0.012 * np.exp(linear)))
    censor_days = rng.uniform(30, 8 * 365.25, rows)
    frame["days"] = np.ceil(np.minimum(event_days, censor_days))
    frame["event"] = (event_days <= censor_days).astype(float)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print("rows      covariates events  distinct event days  lifelines CPU s  fit_cox CPU s  "
          "max |diff coef|/SE, rel. diff SE")
    for rows in options.rows:
        frame = study_like_frame(rows, options.seed)
        columns = [c for c in frame.columns if c not in ("days", "event")]
        started = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lifelines = CoxPHFitter().fit(frame, "days", "event")
        lifelines_seconds = time.process_time() - started
        started = time.process_time()
        fit = fit_cox(frame[columns].to_numpy(), frame["days"].to_numpy(), frame["event"].to_numpy(), names=columns)
        own_seconds = time.process_time() - started
        assert not fit.problems, fit.problems
        standard_errors = np.sqrt(np.diag(fit.covariance))
        coefficient_difference = np.max(np.abs(fit.coefficients - lifelines.params_[columns].to_numpy())
                                        / standard_errors)
        se_difference = np.max(np.abs(standard_errors
                                      / np.sqrt(np.diag(lifelines.variance_matrix_.loc[columns, columns])) - 1))
        print(f"{rows:<9} {len(columns):<10} {int(frame.event.sum()):<7} "
              f"{frame.loc[frame.event == 1, 'days'].nunique():<20} {lifelines_seconds:<16.2f} {own_seconds:<14.3f} "
              f"{coefficient_difference:.1e} / {se_difference:.1e}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
