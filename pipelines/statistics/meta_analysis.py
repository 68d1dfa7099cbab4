"""Fixed-effect (inverse variance) and random-effects (DerSimonian-Laird, with the Hartung-Knapp-Sidik-Jonkman
interval beside its normal one) meta-analysis of per-site estimates.

Each site contributes a log ratio (log OR, log HR, log IRR...) and its standard error. statsmodels
`combine_effects(method_re="dl")` pools them; its normal-based 95% intervals are reported, exponentiated back
to the ratio scale. The p-value of each pooled estimate is the two-sided z test of log ratio = 0.

One correction to statsmodels 0.15: its "dl" tau^2 is (Q - df) / c without truncation, so it goes negative when
the sites agree more than chance predicts (Q < k - 1), which makes the random-effects interval *narrower* than the
fixed-effect one (the bench showed 80% coverage). DerSimonian and Laird (and R metafor) truncate at zero, i.e. the
random-effects result then equals the fixed-effect result; `meta_analysis` does that (and truncates I^2 at 0).

Beside DerSimonian-Laird's normal interval, the Hartung-Knapp-Sidik-Jonkman (HKSJ) interval of the same
random-effects estimate (Hartung & Knapp 2001; Sidik & Jonkman 2002; IntHout, Ioannidis & Borm, BMC Med Res
Methodol 2014;14:25): with w*_i = 1 / (v_i + tau^2_DL) and mu the random-effects estimate,
    Var_HKSJ(mu) = sum w*_i (y_i - mu)^2 / ((k - 1) sum w*_i),   interval mu +- t_{k-1, 0.975} sqrt(Var_HKSJ),
and the p-value from the t distribution with k - 1 degrees of freedom. With few sites the DL interval ignores the
uncertainty in tau^2 and covers far below 95% (IntHout 2014: with fewer than five studies, often below 80%); HKSJ
keeps close to 95%. Its plain form is used (no max(1, q) truncation of the scale factor, the "modified" HKSJ of
Roever et al. 2015), as IntHout 2014 evaluated it.

From site results (`meta_analysis_of_results`) the standard error is recovered from the 95% interval:
SE = (log upper - log lower) / (2 x 1.959964), which is exact for Wald intervals on the log scale (Cox, logistic,
Poisson regression, Woolf) and approximate for exact intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from pipelines.statistics.results import EstimateResult


@dataclass(frozen=True)
class MetaAnalysisResult:
    """Pooled estimates with heterogeneity statistics and the per-site table."""

    fixed_effect: EstimateResult
    random_effects: EstimateResult
    hartung_knapp: EstimateResult  # the random-effects estimate with the HKSJ interval and t-test p-value
    tau_squared: float  # between-site variance of the log ratio (DerSimonian-Laird)
    i_squared: float  # share of variation due to heterogeneity rather than chance (0-1)
    q_statistic: float  # Cochran's Q
    q_p_value: float  # test of homogeneity
    sites: pd.DataFrame  # per site: log estimate, SE, ratio and 95% CI, fixed and random weights

    def summary(self) -> str:
        return (
            f"{self.sites.to_string(index=False)}\n\n{self.fixed_effect}\n{self.random_effects}\n{self.hartung_knapp}\n"
            f"Heterogeneity: Q = {self.q_statistic:.3f} (p = {self.q_p_value:.4f}), I^2 = {100 * self.i_squared:.1f}%, "
            f"tau^2 = {self.tau_squared:.4f}"
        )

    def __str__(self) -> str:
        return self.summary()


def meta_analysis(
    log_estimates: Sequence[float],
    standard_errors: Sequence[float],
    site_names: Sequence[str] | None = None,
    estimand: str = "ratio",
    alpha: float = 0.05,
    counts: dict | None = None,
) -> MetaAnalysisResult:
    """Pool per-site log ratios with inverse-variance fixed-effect and DerSimonian-Laird random-effects models.

    `counts` (optional) holds summed counts to carry into the pooled results (keys of EstimateResult count
    fields, e.g. {"events_exposed": 120}).
    """
    effects = np.asarray(log_estimates, dtype=float)
    variances = np.asarray(standard_errors, dtype=float) ** 2
    if len(effects) < 2:
        raise ValueError("a meta-analysis needs at least two sites")
    if np.any(~np.isfinite(effects)) or np.any(~np.isfinite(variances)) or np.any(variances <= 0):
        raise ValueError("every site needs a finite log estimate and a positive standard error")
    names = list(site_names) if site_names is not None else [f"site {i + 1}" for i in range(len(effects))]
    pooled = combine_effects(effects, variances, method_re="dl", row_names=names, use_t=False, alpha=alpha)
    frame = pooled.summary_frame(alpha=alpha)

    tau_squared = float(pooled.tau2)
    random_row = "random effect"
    if tau_squared < 0:
        # DerSimonian-Laird truncates tau^2 at 0: no between-site variance, random effects = fixed effect.
        tau_squared = 0.0
        random_row = "fixed effect"

    def pooled_result(row_name: str, model: str) -> EstimateResult:
        log_estimate, standard_error = frame.loc[row_name, "eff"], frame.loc[row_name, "sd_eff"]
        return EstimateResult(
            method=f"Meta-analysis of {len(effects)} sites, {model} (statsmodels combine_effects)",
            estimand=f"pooled {estimand}",
            estimate=float(np.exp(log_estimate)),
            ci_lower=float(np.exp(frame.loc[row_name, "ci_low"])),
            ci_upper=float(np.exp(frame.loc[row_name, "ci_upp"])),
            p_value=float(2 * stats.norm.sf(abs(log_estimate / standard_error))),
            **(counts or {}),
        )

    sites = pd.DataFrame(
        {
            "site": names,
            "log_estimate": effects,
            "standard_error": np.sqrt(variances),
            "estimate": np.exp(effects),
            "ci_lower": np.exp(frame["ci_low"].iloc[: len(effects)].to_numpy()),
            "ci_upper": np.exp(frame["ci_upp"].iloc[: len(effects)].to_numpy()),
            "weight_fixed": frame["w_fe"].iloc[: len(effects)].to_numpy(),
            "weight_random": frame["w_re"].iloc[: len(effects)].to_numpy(),
        }
    )
    homogeneity = pooled.test_homogeneity()
    random = pooled_result(random_row, "random effects, DerSimonian-Laird")
    return MetaAnalysisResult(
        fixed_effect=pooled_result("fixed effect", "fixed effect, inverse variance"),
        random_effects=random,
        hartung_knapp=_hartung_knapp(effects, variances, tau_squared, estimand, alpha, counts),
        tau_squared=tau_squared,
        i_squared=max(0.0, float(pooled.i2)),
        q_statistic=float(pooled.q),
        q_p_value=float(homogeneity.pvalue),
        sites=sites,
    )


def _hartung_knapp(effects: np.ndarray, variances: np.ndarray, tau_squared: float, estimand: str, alpha: float,
                   counts: dict | None) -> EstimateResult:
    """The random-effects estimate with the Hartung-Knapp-Sidik-Jonkman interval (module docstring)."""
    k = len(effects)
    weights = 1 / (variances + tau_squared)
    mean = float(np.sum(weights * effects) / np.sum(weights))
    scale = float(np.sum(weights * (effects - mean) ** 2) / (k - 1))
    standard_error = float(np.sqrt(scale / np.sum(weights)))
    quantile = float(stats.t.ppf(1 - alpha / 2, k - 1))
    return EstimateResult(
        method=f"Meta-analysis of {k} sites, random effects, DerSimonian-Laird tau^2 with the "
               "Hartung-Knapp-Sidik-Jonkman interval (t, k - 1 df)",
        estimand=f"pooled {estimand}",
        estimate=float(np.exp(mean)),
        ci_lower=float(np.exp(mean - quantile * standard_error)),
        ci_upper=float(np.exp(mean + quantile * standard_error)),
        p_value=float(2 * stats.t.sf(abs(mean / standard_error), k - 1)) if standard_error > 0 else None,
        se_log_estimate=standard_error,
        **(counts or {}),
    )


def meta_analysis_of_results(
    site_results: Sequence[EstimateResult], site_names: Sequence[str] | None = None, alpha: float = 0.05
) -> MetaAnalysisResult:
    """Pool per-site results of the same estimator (e.g. one Cox HR per site); see the module docstring for the SE."""
    z = stats.norm.ppf(0.975)
    log_estimates, standard_errors = [], []
    for result in site_results:
        if not result.ci_lower or not result.ci_upper or result.ci_lower <= 0 or not np.isfinite(result.ci_upper):
            raise ValueError(f"site result without a usable positive CI: {result.to_row()}")
        log_estimates.append(np.log(result.estimate))
        standard_errors.append((np.log(result.ci_upper) - np.log(result.ci_lower)) / (2 * z))
    counts = {}
    for name in ("n_exposed", "n_unexposed", "events_exposed", "events_unexposed",
                 "person_years_exposed", "person_years_unexposed"):
        values = [getattr(result, name) for result in site_results]
        if all(value is not None for value in values):
            counts[name] = sum(values)
    estimand = site_results[0].estimand if site_results else "ratio"
    return meta_analysis(log_estimates, standard_errors, site_names, estimand, alpha, counts)
