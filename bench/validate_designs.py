"""Validate study designs on the generator's "on_drug" profile: bias and 95% CI coverage over replicates.

Not a unit test: run it by hand (nice it, the machine is shared):

    nice -n 10 .venv/bin/python bench/validate_designs.py [--replicates 200] [--persons 20000] [--workers 1]

Each replicate simulates one population with the synthetic generator's latent model (pipelines/synthetic, profile
"on_drug": drug effects act only while on drug, in treatment episodes with stops and restarts; low magnesium acts
for 6 weeks after each low result; a lab work-up follows a cramp onset; a gamma frailty depletes the susceptible),
takes per-person data (birth date, sex, observation, cramp onset, drug eras, magnesium results), splits follow-up
where the exposure switches and fits a Poisson regression on the person-time (a proportional-hazards model with a
baseline constant within age band and sex) directly, not through the Dagster pipeline, so that hundreds of
replicates run in minutes. A counting-process Cox model in lifelines took about 45 s per model on the shared
machine, eight models per replicate: too slow for 200 replicates.
This is the comparison at the estimator level; the study pipeline's own incident-user and time-varying designs are
built beside it (docs/statistics.md).

Cohort: every person from index = max(observation start + 365 days of lookback, 2015-01-01) to the first cramp
onset or the end of observation; persons with a cramp before index are excluded. Covariates: 5-year band of age
at index, sex.
Designs, per drug (long-acting beta-2 agonists, planted on-drug HR 2.42; thiazides, 1.47):
- prevalent user, frozen: exposed = a first fill on or before index (ever used), fixed for all follow-up; users who
  start after index count as unexposed. What the bundled screening study does today.
- new user, on treatment: persons with a fill before index are excluded (washout); exposure is time-varying,
  "current use" = an era from a fill to the end of its supply plus a 30-day grace, refills within the grace joined
  (CohortMethod / LEGEND on-treatment risk window with a persistence window of 30 days).
- new user, intention to treat: the same cohort, exposed from the first fill to the end of follow-up.
- current use, time-varying: everyone (prevalent users included), exposed during each era plus the 30-day grace,
  unexposed before, between and after; the study pipeline's own estimator (exposure_time current, analysis
  cox_current_exposure): the counting-process Cox model of pipelines/statistics/time_varying.py, adjusted for age
  at index and sex.
And for low magnesium (planted HR 1.8 for 42 days after each low result):
- ever low, look-ahead: exposed = any low result in the extract at any date (after index and after the cramp
  included, as a phenotype judged over all time does), fixed at index. The work-up after a cramp finds low values
  because of the cramp (detection bias).
- risk window: time-varying, exposed for 42 days from each low result before the cramp (a short risk window for a
  transient state); with the Poisson model and with the pipeline's counting-process Cox model (cox_risk_window).

Truths: the on-treatment designs and the risk window target the planted hazard ratio (conditional on the frailty;
the truth JSON's on_treatment_hazard_ratio). The ITT design targets the truth JSON's intention_to_treat_rate_ratio,
computed by the generator for the same population among the exposed from their first exposure; it averages over
all follow-up after the first fill (up to 12 years), the design over follow-up after index, so the two differ
somewhat by construction. The prevalent-user and look-ahead designs are scored against the planted HR: their bias
is the point. Results: printed, and written to bench/results/design_validation.json.

Empirical calibration under a planted systematic error (`--negative-control-bias LOG_HR,SD`, default 0.5,0.1;
`--calibration-only` runs just this part, without the slow Cox fits): the generator's 22 negative-control outcomes
(pipelines/synthetic/negative_controls.py: true HR 1 for every exposure) with the planted detection bias exp(b_c),
b_c ~ N(LOG_HR, SD^2), from the first thiazide or thiazide-like fill on. For each control, the new-user,
intention-to-treat design of thiazides (as above, the control's first record as the outcome, persons with it before
index excluded) estimates a rate ratio whose truth is 1: a null exposure-outcome pair. Its interval is calibrated
on the other 21 controls (leave one out, Schuemie et al. Stat Med 2014; the pipeline's
pipelines/statistics/empirical_calibration.py: fit_null, calibrated_confidence_interval, calibrated_p_value), and
the coverage of 1 by the raw and the calibrated 95% intervals is reported, with the share of p < 0.05. Results go to
bench/results/negative_control_calibration.json.
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pipelines.synthetic import parameters as P  # noqa: E402
from pipelines.synthetic.arrays import DAY_KEY, in_intervals, merge_intervals, sorted_unique, to_day  # noqa: E402
from pipelines.synthetic.generator import chunk_rng  # noqa: E402
from pipelines.synthetic.model import DAYS_PER_YEAR, FEMALE, ChunkSimulation  # noqa: E402
from pipelines.statistics.empirical_calibration import (calibrated_confidence_interval,  # noqa: E402
                                                         calibrated_p_value, fit_null)
from pipelines.statistics.time_varying import counting_process_cox  # noqa: E402
from pipelines.synthetic import catalog as cat  # noqa: E402
from pipelines.synthetic.negative_controls import (negative_control_rng, planted_log_hr_biases,  # noqa: E402
                                                   simulate_negative_controls)

RESULTS_FILE = REPO_ROOT / "bench" / "results" / "design_validation.json"
CALIBRATION_RESULTS_FILE = REPO_ROOT / "bench" / "results" / "negative_control_calibration.json"
CALIBRATION_DRUG = "thiazide_diuretics"
PROFILE = P.ON_DRUG_PROFILE
DRUGS = ("long_acting_beta2_agonists", "thiazide_diuretics")
LOOKBACK_DAYS = 365
STUDY_START = "2015-01-01"
GRACE_DAYS = 30  # persistence window of an on-treatment era
SEED_BASE = 7000


def simulate(persons: int, seed: int) -> ChunkSimulation:
    sim = ChunkSimulation(chunk_rng(seed, 0), persons, 1, P.CRAMP_EFFECTS_PROFILES[PROFILE],
                          P.EXPOSURE_DYNAMICS[PROFILE])
    sim.simulate(through="cramps")
    return sim


def counting_process(n: int, person: np.ndarray, t0: np.ndarray, t1: np.ndarray, event: np.ndarray,
                     exposed: tuple[np.ndarray, np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Rows (start, stop] in days since index for each cohort person (of n simulated), cut where the exposure
    switches; ``exposed`` holds the merged (person, first day, last day) intervals in which a person is exposed."""
    i_person, i_start, i_end = exposed
    t0_of = np.full(n, -1, dtype=np.int64)
    t1_of = np.full(n, -2, dtype=np.int64)  # persons outside the cohort get no cut inside (t0, t1]
    t0_of[person], t1_of[person] = t0, t1
    cut_person, cut_day = [person], [t0]
    for day in (i_start, i_end + 1):
        inside = (day > t0_of[i_person]) & (day <= t1_of[i_person])
        cut_person.append(i_person[inside])
        cut_day.append(day[inside])
    key = sorted_unique(np.concatenate(cut_person) * DAY_KEY + np.concatenate(cut_day))
    row_person, row_start = key // DAY_KEY, key % DAY_KEY
    last = np.r_[row_person[1:] != row_person[:-1], True]
    row_stop = np.where(last, t1_of[row_person] + 1, np.r_[row_start[1:], 0])
    event_of = np.zeros(n, dtype=np.int8)
    event_of[person] = event
    return pd.DataFrame({
        "person": row_person,
        "start": row_start - t0_of[row_person],
        "stop": row_stop - t0_of[row_person],
        "event": np.where(last, event_of[row_person], 0),
        "exposed": in_intervals(exposed, row_person, row_start).astype(np.int8),
    })


def poisson_rate_ratio(frame: pd.DataFrame, covariates: pd.DataFrame) -> tuple[float, float, float]:
    """Rate ratio of `exposed` with its 95% CI: Poisson regression with a log person-time offset on person-time
    and events summed by exposure, 5-year band of age at index and sex (statsmodels GLM). A proportional-hazards
    model with a baseline constant within each age band and sex: its rate ratio is the hazard ratio, and it fits
    in milliseconds where a counting-process Cox (lifelines) takes tens of seconds per model on this machine."""
    data = frame.join(covariates, on="person")
    data["years"] = (data["stop"] - data["start"]) / DAYS_PER_YEAR
    cells = data.groupby(["exposed", "age_band", "female"], as_index=False)[["event", "years"]].sum()
    cells = cells[cells.years > 0]
    design = pd.get_dummies(cells[["age_band"]].astype(str), drop_first=True, dtype=float)
    design.insert(0, "female", cells["female"].astype(float))
    design.insert(0, "exposed", cells["exposed"].astype(float))
    design.insert(0, "const", 1.0)
    model = sm.GLM(cells["event"].astype(float), design, family=sm.families.Poisson(),
                   offset=np.log(cells["years"])).fit()
    coef, se = float(model.params["exposed"]), float(model.bse["exposed"])
    return float(np.exp(coef)), float(np.exp(coef - 1.959964 * se)), float(np.exp(coef + 1.959964 * se))


def calibration_replicate(sim: ChunkSimulation, seed: int, bias: P.NegativeControlBias) -> list[dict]:
    """Each negative control as a null outcome of thiazides (new user, intention to treat), raw and calibrated on
    the other controls: one row per control."""
    planted = planted_log_hr_biases(seed, bias)
    no_visits = {"person": np.empty(0, dtype=np.int64), "day": np.empty(0, dtype=np.int64)}  # links do not matter
    controls = simulate_negative_controls(sim, no_visits, negative_control_rng(seed, 0), planted, bias.exposures)
    n = sim.n
    index = np.maximum(sim.first_start + LOOKBACK_DAYS, to_day(STUDY_START))
    first_fill = sim.drug_first_fill[CALIBRATION_DRUG]
    new_user = ~((first_fill >= 0) & (first_fill <= index))
    estimates = []
    for control in cat.NEGATIVE_CONTROL_IDS:
        onset = controls.first_day[control]
        person = np.flatnonzero((index <= sim.last_end) & ((onset < 0) | (onset > index)) & new_user)
        t0 = index[person]
        event = (onset[person] >= 0).astype(np.int8)
        t1 = np.where(event == 1, onset[person], sim.last_end[person])
        age = (t0 - sim.birth_day[person]) / DAYS_PER_YEAR
        covariates = pd.DataFrame({"age_band": np.minimum(age // 5, 18).astype(np.int64),
                                   "female": (sim.sex[person] == FEMALE).astype(np.int8)}, index=person)
        who = np.flatnonzero(first_fill >= 0)
        exposed = (who, first_fill[who], np.full(who.size, np.iinfo(np.int32).max, dtype=np.int64))
        frame = counting_process(n, person, t0, t1, event, exposed)
        events_exposed = int(frame.loc[frame.exposed == 1, "event"].sum())
        try:
            estimate, lower, upper = poisson_rate_ratio(frame, covariates)
        except Exception:  # noqa: BLE001 - a control without events in one arm: left out, as fitNull does
            continue
        if events_exposed == 0 or not np.isfinite([estimate, lower, upper]).all():
            continue
        log_estimate = float(np.log(estimate))
        se = float((np.log(upper) - np.log(lower)) / (2 * 1.959964))
        estimates.append((control, log_estimate, se, events_exposed))
    rows = []
    for position, (control, log_estimate, se, events_exposed) in enumerate(estimates):
        others = [e for i, e in enumerate(estimates) if i != position]
        null = fit_null([e[1] for e in others], [e[2] for e in others])
        _, lower, upper = calibrated_confidence_interval(null, log_estimate, se)
        raw_p = float(2 * (1 - 0.5 * (1 + math.erf(abs(log_estimate / se) / math.sqrt(2)))))
        rows.append({"seed": seed, "control": control, "planted_log_hr_bias": planted[control],
                     "log_estimate": log_estimate, "se_log_estimate": se, "events_exposed": events_exposed,
                     "raw_ci_lower": float(np.exp(log_estimate - 1.959964 * se)),
                     "raw_ci_upper": float(np.exp(log_estimate + 1.959964 * se)), "raw_p": raw_p,
                     "null_mean": null.mean, "null_sd": null.sd, "calibrated_ci_lower": lower,
                     "calibrated_ci_upper": upper, "calibrated_p": calibrated_p_value(null, log_estimate, se)})
    return rows


def summarise_calibration(rows: pd.DataFrame) -> dict:
    raw = (rows.raw_ci_lower <= 1) & (1 <= rows.raw_ci_upper)
    calibrated = (rows.calibrated_ci_lower <= 1) & (1 <= rows.calibrated_ci_upper)

    def share(mask: pd.Series) -> tuple[float, float]:
        p = float(mask.mean())
        return round(100 * p, 1), round(100 * float(np.sqrt(p * (1 - p) / len(mask))), 1)

    return {
        "null_pairs": len(rows), "replicates": int(rows.seed.nunique()),
        "controls_per_replicate": round(len(rows) / max(rows.seed.nunique(), 1), 1),
        "mean_events_exposed": round(float(rows.events_exposed.mean()), 1),
        "mean_log_estimate": round(float(rows.log_estimate.mean()), 4),
        "mean_planted_log_hr_bias": round(float(rows.planted_log_hr_bias.mean()), 4),
        "mean_fitted_null_mean": round(float(rows.null_mean.mean()), 4),
        "mean_fitted_null_sd": round(float(rows.null_sd.mean()), 4),
        "raw_coverage_percent": share(raw)[0], "raw_coverage_mc_se": share(raw)[1],
        "calibrated_coverage_percent": share(calibrated)[0], "calibrated_coverage_mc_se": share(calibrated)[1],
        "raw_p_below_0_05_percent": share(rows.raw_p < 0.05)[0],
        "calibrated_p_below_0_05_percent": share(rows.calibrated_p < 0.05)[0],
    }


def replicate(arguments: tuple) -> list[dict]:
    persons, seed, bias, calibration_only = arguments
    warnings.simplefilter("ignore")
    sim = simulate(persons, seed)
    calibration = [{**row, "design": "_calibration"} for row in calibration_replicate(sim, seed, bias)]
    if calibration_only:
        return calibration
    n = sim.n
    index = np.maximum(sim.first_start + LOOKBACK_DAYS, to_day(STUDY_START))
    onset = sim.cramp_onset
    eligible = (index <= sim.last_end) & ((onset < 0) | (onset > index))
    person = np.flatnonzero(eligible)
    t0 = index[person]
    event = (onset[person] >= 0).astype(np.int8)
    t1 = np.where(event == 1, onset[person], sim.last_end[person])
    age = (t0 - sim.birth_day[person]) / DAYS_PER_YEAR
    covariates = pd.DataFrame({"age_band": np.minimum(age // 5, 18).astype(np.int64), "age": age,
                               "female": (sim.sex[person] == FEMALE).astype(np.int8)}, index=person)
    everyone = np.arange(n)
    rows = []

    def fit(design: str, exposure: str, frame: pd.DataFrame, cohort: np.ndarray) -> None:
        frame = frame[frame.person.isin(cohort)] if cohort is not None else frame
        try:
            estimate, lower, upper = poisson_rate_ratio(frame, covariates)
        except Exception as error:  # a replicate without events in one arm: recorded, not estimable
            estimate = lower = upper = float("nan")
            print(f"seed {seed} {exposure} {design}: {error}", file=sys.stderr)
        rows.append({"seed": seed, "exposure": exposure, "design": design, "estimate": estimate,
                     "ci_lower": lower, "ci_upper": upper,
                     "events_exposed": int(frame.loc[frame.exposed == 1, "event"].sum())})

    def fit_cox(design: str, exposure: str, frame: pd.DataFrame) -> None:
        """The pipeline's time-varying Cox model (pipelines/statistics/time_varying.py) on the same rows."""
        rows_ = frame.join(covariates[["age", "female"]], on="person").rename(
            columns={"start": "start_day", "stop": "stop_day", "event": "outcome"})
        result = counting_process_cox(rows_, ["age", "female"])
        estimate, lower, upper = (float("nan"),) * 3 if result.estimate is None else \
            (result.estimate, result.ci_lower, result.ci_upper)
        if result.estimate is None:
            print(f"seed {seed} {exposure} {design}: {result.not_estimable_reason}", file=sys.stderr)
        rows.append({"seed": seed, "exposure": exposure, "design": design, "estimate": estimate,
                     "ci_lower": lower, "ci_upper": upper, "events_exposed": result.events_exposed})

    def from_day(day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        who = np.flatnonzero(day >= 0)
        return who, day[who], np.full(who.size, np.iinfo(np.int32).max, dtype=np.int64)

    for drug in DRUGS:
        first_fill = sim.drug_first_fill[drug]
        prevalent = (first_fill >= 0) & (first_fill <= index)
        frozen = from_day(np.where(prevalent, index, -1))
        fit("prevalent user, exposed at index, frozen", drug, counting_process(n, person, t0, t1, event, frozen), None)
        new_users_cohort = person[~prevalent[person]]
        on_person, on_start, on_end = sim.drug_on_intervals[drug]
        eras = merge_intervals(on_person, on_start, on_end + GRACE_DAYS, join_gap_days=0)
        fit("new user, on treatment (30-day grace)", drug, counting_process(n, person, t0, t1, event, eras),
            new_users_cohort)
        fit("new user, intention to treat", drug, counting_process(n, person, t0, t1, event, from_day(first_fill)),
            new_users_cohort)
        fit_cox("current use, time-varying (30-day grace), all persons, counting-process Cox", drug,
                counting_process(n, person, t0, t1, event, eras))

    routine_person, routine_day = sim.low_magnesium_results
    workup_person, workup_day = sim.workup_low_magnesium_results
    ever_low = np.zeros(n, dtype=bool)
    ever_low[routine_person] = True
    ever_low[workup_person] = True
    fit("ever low in the extract (look-ahead), frozen at index", "hypomagnesemia_lab",
        counting_process(n, person, t0, t1, event, from_day(np.where(ever_low, index, -1))), None)
    windows = merge_intervals(routine_person, routine_day,
                              routine_day + P.EXPOSURE_DYNAMICS[PROFILE].transient_state_days - 1)
    fit("risk window, 42 days after each low result", "hypomagnesemia_lab",
        counting_process(n, person, t0, t1, event, windows), None)
    fit_cox("risk window, 42 days after each low result, counting-process Cox", "hypomagnesemia_lab",
            counting_process(n, person, t0, t1, event, windows))

    for exposure, (with_effect, without_effect) in sim.itt_expected_onsets.items():
        if exposure in (*DRUGS, "hypomagnesemia_lab"):
            rows.append({"seed": seed, "exposure": exposure, "design": "_truth_itt",
                         "estimate": with_effect / without_effect})
    return rows + calibration


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows[rows.design != "_calibration"]
    itt = rows[rows.design == "_truth_itt"].groupby("exposure").estimate.mean()
    out = []
    for (exposure, design), group in rows[rows.design != "_truth_itt"].groupby(["exposure", "design"], sort=False):
        planted = P.CRAMP_EFFECTS[exposure][0]
        if "intention to treat" in design:
            truth, kind = float(itt[exposure]), "ITT rate ratio among the exposed (generator truth, mean)"
        else:
            truth, kind = planted, "planted on-treatment HR"
        finite = group[np.isfinite(group.estimate) & (group.estimate > 0)]
        covered = (finite.ci_lower <= truth) & (truth <= finite.ci_upper)
        log_estimate = np.log(finite.estimate)
        out.append({
            "exposure": exposure, "design": design, "truth": round(truth, 4), "truth_kind": kind,
            "replicates": len(group), "estimable": len(finite),
            "mean_estimate": round(float(np.exp(log_estimate.mean())), 4),
            "mean_bias_log": round(float(log_estimate.mean() - np.log(truth)), 4),
            "empirical_se_log": round(float(log_estimate.std(ddof=1)), 4),
            "mean_model_se_log": round(float(((np.log(finite.ci_upper) - np.log(finite.ci_lower))
                                              / (2 * 1.959964)).mean()), 4),
            "coverage_percent": round(100 * float(covered.mean()), 1),
            "coverage_mc_se": round(100 * float(np.sqrt(covered.mean() * (1 - covered.mean()) / len(finite))), 1),
            "mean_events_exposed": round(float(finite.events_exposed.mean()), 1),
        })
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--persons", type=int, default=20_000, help="persons per simulated population")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS_FILE,
                        help="results file (a trial run with few replicates should not replace the published one)")
    parser.add_argument("--negative-control-bias", default="0.5,0.1", metavar="LOG_HR,SD",
                        help="planted systematic error on the negative controls (default 0.5,0.1)")
    parser.add_argument("--calibration-only", action="store_true",
                        help="only the negative-control calibration (no design comparison, no Cox fits)")
    parser.add_argument("--calibration-out", type=Path, default=CALIBRATION_RESULTS_FILE)
    args = parser.parse_args()
    log_hr, sd = (float(x) for x in (args.negative_control_bias.split(",") + ["0"])[:2])
    bias = P.NegativeControlBias(log_hr, sd)
    started = time.time()
    jobs = [(args.persons, SEED_BASE + r, bias, args.calibration_only) for r in range(args.replicates)]
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for done, replicate_rows in enumerate(pool.map(replicate, jobs), start=1):
            rows.extend(replicate_rows)
            if done % 10 == 0 or done == len(jobs):
                # Written as it goes: a run stopped early keeps the summary of the replicates done.
                if not args.calibration_only:
                    summary = write_results(rows, args, done, time.time() - started)
                calibration = write_calibration_results(rows, args, bias, done, time.time() - started)
                print(f"replicates done: {done}/{len(jobs)} ({time.time() - started:.0f} s)", flush=True)
    if not args.calibration_only:
        with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 60):
            print(summary.drop(columns=["truth_kind"]).to_string(index=False))
    print(json.dumps(calibration, indent=2))
    print(f"\n{args.replicates} replicates, {args.persons} persons each; runtime {time.time() - started:.0f} s")


def write_calibration_results(rows: list[dict], args: argparse.Namespace, bias: P.NegativeControlBias, done: int,
                              runtime: float) -> dict:
    frame = pd.DataFrame([row for row in rows if row.get("design") == "_calibration"])
    summary = summarise_calibration(frame)
    args.calibration_out.parent.mkdir(parents=True, exist_ok=True)
    args.calibration_out.write_text(json.dumps({
        "profile": PROFILE, "replicates": done, "replicates_requested": args.replicates,
        "persons_per_replicate": args.persons, "seeds": [SEED_BASE, SEED_BASE + done - 1],
        "planted_bias": {"log_hr": bias.log_hr, "sd": bias.sd, "exposures": list(bias.exposures)},
        "design": f"new user ({CALIBRATION_DRUG}), intention to treat, Poisson regression with age band and sex; "
                  "each negative control's first record as the outcome (true HR 1), calibrated on the other "
                  "controls of its replicate (leave one out)",
        "runtime_seconds": round(runtime, 1), "summary": summary,
    }, indent=2))
    return summary


def write_results(rows: list[dict], args: argparse.Namespace, done: int, runtime: float) -> pd.DataFrame:
    summary = summarise(pd.DataFrame(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "profile": PROFILE, "replicates": done, "replicates_requested": args.replicates,
        "persons_per_replicate": args.persons, "seeds": [SEED_BASE, SEED_BASE + done - 1],
        "grace_days": GRACE_DAYS, "lookback_days": LOOKBACK_DAYS, "study_start": STUDY_START,
        "estimator": "Poisson regression with log person-time offset, exposure + 5-year age band at index + sex "
                     "(statsmodels GLM), on follow-up split where the exposure switches",
        "exposure_dynamics": {k: getattr(P.EXPOSURE_DYNAMICS[PROFILE], k)
                              for k in P.EXPOSURE_DYNAMICS[PROFILE].__dataclass_fields__},
        "runtime_seconds": round(runtime, 1), "results": summary.to_dict(orient="records"),
    }, indent=2))
    return summary


if __name__ == "__main__":
    main()
