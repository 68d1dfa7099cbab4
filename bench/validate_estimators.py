"""Validate the statistics estimators by simulation: mean bias (log scale) and 95% CI coverage.

Not a unit test: run it by hand (about 6-9 minutes on 2 cores) when an estimator changes:

    .venv/bin/python bench/validate_estimators.py [--replicates 200] [--persons 4000] [--workers 2]
    .venv/bin/python bench/validate_estimators.py --replicates 1000 --only "SSA null, rising marker trend"

For each scenario it simulates independent cohorts with planted effects (pipelines/testing/simulation.py),
runs every estimator, and reports per estimator:
- truth: the value the estimator targets (see below);
- mean bias = mean of log(estimate) - log(truth) over replicates;
- coverage = share of replicates whose 95% CI contains the truth (target 93-97%). The Monte Carlo standard error
  of a coverage of 95% is 1.5 points with 200 replicates, so a correct estimator falls outside the 4-point target
  band about one time in five. `--only` reruns chosen scenarios with more replicates (1,000: 0.7 points) and
  stores them beside the full run, under `focused_runs`.
Results are printed as a table and written to bench/results/estimator_validation.json.

Truths. Conditional estimators (covariate-adjusted logistic, Poisson and Cox models, PS-stratified Cox, the
meta-analysis of adjusted site HRs) target the planted conditional OR/HR. Marginal estimators target marginal
effects, which differ slightly from the conditional ones (non-collapsibility) and are computed once per scenario
by Monte Carlo from potential outcomes of a large simulated population: crude OR/RR (marginal causal OR/RR),
crude exact IRR (marginal rate ratio), PS matching (marginal HR in the treated, ATT) and IPTW (marginal HR in
everyone, ATE). In the confounded scenarios the crude estimators are *expected* to be biased and to under-cover:
that is the confounding the adjusted estimators must remove.
Sequence symmetry scenarios plant a rate ratio in the year after the index drug on top of a linear trend in
marker incidence; the adjusted sequence ratio targets the planted ratio; the crude one is expected to be biased.
"""

from __future__ import annotations

import os

# One thread per worker process: the parallelism is across replicates.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from lifelines import CoxPHFitter  # noqa: E402
from scipy.special import expit  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pipelines.statistics import (  # noqa: E402
    adjusted_incidence_rate_ratio,
    adjusted_odds_ratio,
    cox_hazard_ratio,
    crude_odds_ratio,
    crude_risk_ratio,
    fit_propensity_score,
    incidence_rate_ratio,
    meta_analysis_of_results,
    propensity_score_analysis,
    sequence_symmetry_analysis,
)
from pipelines.testing.simulation import (  # noqa: E402
    COHORT_COVARIATES,
    observation_period,
    simulate_cohort,
    simulate_initiations,
)

RESULTS_FILE = REPO_ROOT / "bench" / "results" / "estimator_validation.json"
OUTCOME_COVARIATES = ["age", "diabetes"]  # the covariates that affect the outcome in the simulation
SITES = 4

# Cohort scenarios: planted HR (time to first cramp) and OR (binary outcome), and the confounding by age and
# diabetes (log-odds of exposure per 10 years of age / for diabetes).
COHORT_SCENARIOS = {
    "null, confounded (age, diabetes)": {"hazard_ratio": 1.0, "odds_ratio": 1.0, "age_confounding": 0.8,
                                "diabetes_confounding": 0.4},
    "HR/OR 2, confounded (age, diabetes)": {"hazard_ratio": 2.0, "odds_ratio": 2.0, "age_confounding": 0.8,
                                   "diabetes_confounding": 0.4},
    "HR/OR 2, no confounding": {"hazard_ratio": 2.0, "odds_ratio": 2.0, "age_confounding": 0.0,
                                "diabetes_confounding": 0.0},
}
# Sequence symmetry scenarios: planted rate ratio, linear trend in marker incidence (2 = triples over 8 years).
SSA_SCENARIOS = {
    "SSA null, rising marker trend": {"rate_ratio": 1.0, "marker_trend": 2.0},
    "SSA ratio 2.42, rising marker trend": {"rate_ratio": 2.42, "marker_trend": 2.0},
}
SSA_PERSONS = 600_000
SSA_MARKER_RATE = 0.004


# ---------------------------------------------------------------------------------------------------------------
# Truths
# ---------------------------------------------------------------------------------------------------------------
def marginal_truths(scenario: dict, persons: int = 300_000, seed: int = 999) -> dict[str, float]:
    """Marginal effects from potential outcomes: everyone simulated both exposed and unexposed.

    Uses the same data-generating model as simulate_cohort (same covariates, rates and censoring), with common
    random numbers for the two potential outcomes of each person.
    """
    rng = np.random.default_rng(seed)
    age_decades = rng.normal(0.0, 1.0, persons)
    female = rng.binomial(1, 0.55, persons)
    diabetes = rng.binomial(1, expit(-1.2 + 0.4 * age_decades))
    treated = rng.binomial(
        1,
        expit(-0.2 + scenario["age_confounding"] * age_decades + 0.2 * female
              + scenario["diabetes_confounding"] * diabetes),
    )
    unit_exponential = rng.exponential(size=persons)
    censor_years = rng.uniform(0.5, 3.0, persons)

    rows = []
    risks = {}
    for exposure in (0, 1):
        rate = 0.04 * np.exp(np.log(scenario["hazard_ratio"]) * exposure + 0.5 * age_decades + 0.3 * diabetes)
        event_years = unit_exponential / rate
        rows.append(
            pd.DataFrame(
                {
                    "exposure": exposure,
                    "years": np.minimum(event_years, censor_years),
                    "event": (event_years <= censor_years).astype(int),
                    "treated_in_fact": treated,
                }
            )
        )
        log_odds = -2.5 + np.log(scenario["odds_ratio"]) * exposure + 0.5 * age_decades + 0.3 * diabetes
        risks[exposure] = float(expit(log_odds).mean())
    both = pd.concat(rows, ignore_index=True)
    rate_by_exposure = both.groupby("exposure").apply(lambda g: g.event.sum() / g.years.sum(), include_groups=False)

    def marginal_hazard_ratio(frame: pd.DataFrame) -> float:
        fitter = CoxPHFitter().fit(frame[["exposure", "years", "event"]], "years", "event")
        return float(fitter.hazard_ratios_["exposure"])

    return {
        "marginal_or": (risks[1] / (1 - risks[1])) / (risks[0] / (1 - risks[0])),
        "marginal_rr": risks[1] / risks[0],
        "marginal_irr": float(rate_by_exposure[1] / rate_by_exposure[0]),
        "marginal_hr_ate": marginal_hazard_ratio(both),
        "marginal_hr_att": marginal_hazard_ratio(both[both.treated_in_fact == 1]),
    }


# ---------------------------------------------------------------------------------------------------------------
# One replicate
# ---------------------------------------------------------------------------------------------------------------
def cohort_replicate(arguments: tuple) -> list[dict]:
    """All cohort estimators on one simulated cohort: (estimator, estimate, ci_lower, ci_upper) rows."""
    scenario_name, scenario, persons, seed = arguments
    warnings.simplefilter("ignore")
    data = simulate_cohort(persons, seed=seed, **scenario)
    results = {
        "crude odds ratio (Table2x2)": crude_odds_ratio(data, outcome="outcome_binary"),
        "crude risk ratio (Table2x2)": crude_risk_ratio(data, outcome="outcome_binary"),
        "adjusted odds ratio (GLM Binomial)": adjusted_odds_ratio(data, COHORT_COVARIATES, outcome="outcome_binary"),
        "crude IRR (exact conditional)": incidence_rate_ratio(data),
        "adjusted IRR (GLM Poisson, offset)": adjusted_incidence_rate_ratio(data, OUTCOME_COVARIATES),
        "adjusted HR (Cox)": cox_hazard_ratio(data, OUTCOME_COVARIATES),
    }
    if scenario["age_confounding"] == 0 and scenario["diabetes_confounding"] == 0:
        # The unconfounded scenario checks the crude estimators; the adjusted ones are checked where they matter.
        return _rows(scenario_name, results)
    # One propensity model per replicate, shared by the three adjustments (as an analyst would).
    model = fit_propensity_score(data, COHORT_COVARIATES, seed=seed)
    for adjustment, label in (
        ("matching", "PS 1:1 matched HR (Cox, robust)"),
        ("stratification", "PS 10-strata HR (stratified Cox)"),
        ("weighting", "PS IPTW HR (weighted Cox, robust)"),
    ):
        analysis = propensity_score_analysis(data, COHORT_COVARIATES, adjustment=adjustment, seed=seed, model=model)
        results[label] = analysis.hazard_ratio
    site_of_person = np.arange(len(data)) % SITES
    site_results = [cox_hazard_ratio(data[site_of_person == site], OUTCOME_COVARIATES) for site in range(SITES)]
    pooled = meta_analysis_of_results(site_results)
    results[f"meta-analysis of {SITES} site HRs, fixed effect"] = pooled.fixed_effect
    results[f"meta-analysis of {SITES} site HRs, random effects (DL)"] = pooled.random_effects
    return _rows(scenario_name, results)


def _rows(scenario_name: str, results: dict) -> list[dict]:
    return [
        {"scenario": scenario_name, "estimator": name, "estimate": r.estimate, "ci_lower": r.ci_lower,
         "ci_upper": r.ci_upper}
        for name, r in results.items()
    ]


def ssa_replicate(arguments: tuple) -> list[dict]:
    scenario_name, scenario, seed = arguments
    warnings.simplefilter("ignore")
    data = simulate_initiations(SSA_PERSONS, marker_rate_per_year=SSA_MARKER_RATE, seed=seed, **scenario)
    start, end = observation_period()
    result = sequence_symmetry_analysis(data, observation_start=start, observation_end=end)
    rows = _rows(scenario_name, {"crude sequence ratio": result.crude, "adjusted sequence ratio (NSR)": result.adjusted})
    for row in rows:  # the NSR is estimated too, and its interval ignores that: record its spread
        row["null_effect_ratio"] = result.null_effect_ratio
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------------------------
def truth_for(estimator: str, scenario: dict, truths: dict) -> tuple[float, str]:
    """The value an estimator targets in a scenario and what kind of truth it is."""
    if "sequence ratio" in estimator:
        return scenario["rate_ratio"], "planted rate ratio"
    if estimator.startswith("crude odds ratio"):
        return truths["marginal_or"], "marginal OR (Monte Carlo)"
    if estimator.startswith("crude risk ratio"):
        return truths["marginal_rr"], "marginal RR (Monte Carlo)"
    if estimator.startswith("crude IRR"):
        return truths["marginal_irr"], "marginal IRR (Monte Carlo)"
    if estimator.startswith("adjusted odds ratio"):
        return scenario["odds_ratio"], "planted conditional OR"
    if estimator.startswith("PS 1:1 matched"):
        return truths["marginal_hr_att"], "marginal HR in treated (Monte Carlo)"
    if estimator.startswith("PS IPTW"):
        return truths["marginal_hr_ate"], "marginal HR in all (Monte Carlo)"
    return scenario["hazard_ratio"], "planted conditional HR"


def summarise(rows: pd.DataFrame, scenarios: dict, truths: dict) -> pd.DataFrame:
    summary = []
    for (scenario_name, estimator), group in rows.groupby(["scenario", "estimator"], sort=False):
        truth, kind = truth_for(estimator, scenarios[scenario_name], truths.get(scenario_name, {}))
        finite = group[np.isfinite(group.estimate) & (group.estimate > 0)]
        log_error = np.log(finite.estimate) - np.log(truth)
        covered = (group.ci_lower <= truth) & (truth <= group.ci_upper)
        model_se = (np.log(finite.ci_upper) - np.log(finite.ci_lower)) / (2 * 1.959964)
        summary.append(
            {
                "scenario": scenario_name,
                "estimator": estimator,
                "truth": round(truth, 4),
                "truth_kind": kind,
                "replicates": len(group),
                "mean_estimate": round(float(np.exp(np.log(finite.estimate).mean())), 4),
                "mean_bias_log": round(float(log_error.mean()), 4),
                "empirical_se_log": round(float(np.log(finite.estimate).std(ddof=1)), 4),
                # The SE the intervals imply (width on the log scale / 2 x 1.96): compare with the empirical SE.
                "mean_model_se_log": round(float(model_se.mean()), 4),
                "coverage_percent": round(100 * float(covered.mean()), 1),
                "coverage_mc_se": round(100 * float(np.sqrt(covered.mean() * (1 - covered.mean()) / len(group))), 1),
            }
        )
        if "null_effect_ratio" in group and group["null_effect_ratio"].notna().all():
            # Compare with empirical_se_log: how much of the ratio's noise the NSR's own estimation adds.
            summary[-1]["empirical_se_log_null_effect_ratio"] = round(
                float(np.log(group["null_effect_ratio"]).std(ddof=1)), 4)
    return pd.DataFrame(summary)


def run_replicates(cohort_scenarios: dict, ssa_scenarios: dict, replicates: int, persons: int,
                   workers: int, started: float) -> tuple[pd.DataFrame, dict]:
    """Every replicate of the given scenarios: one row per (replicate, estimator), and the marginal truths."""
    # Replicate r of every scenario uses seed 1000 + r: the scenarios differ only in their parameters.
    cohort_jobs = [
        (name, scenario, persons, 1000 + replicate)
        for name, scenario in cohort_scenarios.items()
        for replicate in range(replicates)
    ]
    ssa_jobs = [
        (name, scenario, 5000 + replicate)
        for name, scenario in ssa_scenarios.items()
        for replicate in range(replicates)
    ]
    rows = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        truths = dict(zip(cohort_scenarios, pool.map(marginal_truths, cohort_scenarios.values())))
        for name, values in truths.items():
            print(f"truths for {name}: " + ", ".join(f"{k}={v:.4f}" for k, v in values.items()), flush=True)
        for done, replicate_rows in enumerate(pool.map(cohort_replicate, cohort_jobs, chunksize=4), start=1):
            rows.extend(replicate_rows)
            if done % 50 == 0:
                print(f"cohort replicates done: {done}/{len(cohort_jobs)} ({time.time() - started:.0f} s)", flush=True)
        for replicate_rows in pool.map(ssa_replicate, ssa_jobs, chunksize=4):
            rows.extend(replicate_rows)
    return pd.DataFrame(rows), truths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--persons", type=int, default=4000, help="persons per simulated cohort")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", metavar="SCENARIO",
                        help="run only these scenarios (exact names), e.g. with more replicates to narrow the Monte "
                             "Carlo error of a borderline coverage; the result is stored under 'focused_runs' of "
                             "the results file and the full run's results are kept")
    args = parser.parse_args()
    started = time.time()
    cohort_scenarios, ssa_scenarios = COHORT_SCENARIOS, SSA_SCENARIOS
    if args.only:
        unknown = set(args.only) - set(COHORT_SCENARIOS) - set(SSA_SCENARIOS)
        if unknown:
            parser.error(f"unknown scenarios {sorted(unknown)}; known: {[*COHORT_SCENARIOS, *SSA_SCENARIOS]}")
        cohort_scenarios = {k: v for k, v in COHORT_SCENARIOS.items() if k in args.only}
        ssa_scenarios = {k: v for k, v in SSA_SCENARIOS.items() if k in args.only}

    rows, truths = run_replicates(cohort_scenarios, ssa_scenarios, args.replicates, args.persons, args.workers,
                                  started)
    summary = summarise(rows, {**cohort_scenarios, **ssa_scenarios}, truths)
    runtime = time.time() - started
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 60):
        print(summary.drop(columns=["truth_kind"]).to_string(index=False))
    print(f"\n{args.replicates} replicates per scenario, {args.persons} persons per cohort, "
          f"{SSA_PERSONS} persons per SSA population; runtime {runtime:.0f} s")

    run = {
        "replicates": args.replicates,
        "persons_per_cohort": args.persons,
        "ssa_persons": SSA_PERSONS,
        "ssa_marker_rate_per_year": SSA_MARKER_RATE,
        "cohort_scenarios": cohort_scenarios,
        "ssa_scenarios": ssa_scenarios,
        "marginal_truths": truths,
        "runtime_seconds": round(runtime, 1),
        "results": summary.to_dict(orient="records"),
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    if args.only:
        # Keep the full run; replace the focused runs of the same scenarios.
        stored = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {}
        focused = stored.setdefault("focused_runs", {})
        focused[" + ".join(args.only)] = run
        RESULTS_FILE.write_text(json.dumps(stored, indent=2))
    else:
        # A full run starts afresh: focused runs of an older version of the estimators would be stale.
        RESULTS_FILE.write_text(json.dumps(run, indent=2))
    print(f"written {RESULTS_FILE.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
