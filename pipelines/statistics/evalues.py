"""E-values (VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the E-value.
Ann Intern Med 2017;167:268-74).

The E-value of a risk ratio RR is the minimum strength of association, on the risk-ratio scale, that an unmeasured
confounder would need with both the exposure and the outcome, conditional on the measured covariates, to fully
explain away the estimate:

    E = RR + sqrt(RR x (RR - 1))      for RR >= 1;  for RR < 1 the same formula applied to 1 / RR.

The E-value of the confidence interval is that of the limit closest to 1 (the lower limit of an RR above 1, the
upper of an RR below 1), and 1 when the interval includes 1 (no confounding is needed to move it to the null).

Hazard ratios (the paper's Table, as the R package EValue's `evalues.HR` does): with a rare outcome (below
RARE_OUTCOME_SHARE at the end of follow-up) HR approximates RR and is used as it is; with a common outcome the
square-root transform RR ~ (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR)) is applied to the estimate and each limit
first. Rate ratios are treated as risk ratios (rare-outcome approximation, as the paper does for rate ratios).
Which applies is decided per estimate from the persons it analysed: the share of them with the outcome.
"""

from __future__ import annotations

import math

# VanderWeele & Ding 2017: an outcome is rare when fewer than 15% have it by the end of follow-up.
RARE_OUTCOME_SHARE = 0.15


def e_value_of_risk_ratio(risk_ratio: float) -> float:
    """The E-value of a point estimate on the risk-ratio scale (RR < 1 is inverted first)."""
    if not (math.isfinite(risk_ratio) and risk_ratio > 0):
        raise ValueError(f"a risk ratio must be finite and positive, got {risk_ratio!r}")
    ratio = risk_ratio if risk_ratio >= 1 else 1 / risk_ratio
    return ratio + math.sqrt(ratio * (ratio - 1))


def e_value_of_interval(risk_ratio: float, ci_lower: float, ci_upper: float) -> float:
    """The E-value of the 95% interval: of the limit closest to 1, or 1 when the interval includes 1."""
    if ci_lower <= 1 <= ci_upper:
        return 1.0
    return e_value_of_risk_ratio(ci_lower if risk_ratio > 1 else ci_upper)


def hazard_ratio_as_risk_ratio(hazard_ratio: float) -> float:
    """VanderWeele & Ding's square-root transform of a hazard ratio of a common outcome to the risk-ratio scale."""
    return (1 - 0.5 ** math.sqrt(hazard_ratio)) / (1 - 0.5 ** math.sqrt(1 / hazard_ratio))


def outcome_is_common(outcome_share: float | None) -> bool:
    """True when at least RARE_OUTCOME_SHARE of the persons analysed had the outcome (unknown share: rare)."""
    return outcome_share is not None and outcome_share >= RARE_OUTCOME_SHARE


def e_values(estimand: str, estimate: float, ci_lower: float, ci_upper: float,
             outcome_share: float | None = None) -> tuple[float, float]:
    """(E-value of the estimate, E-value of its interval) of a hazard, rate or risk ratio.

    `outcome_share`: the share of the persons analysed who had the outcome; a hazard ratio of a common outcome
    (RARE_OUTCOME_SHARE or more) goes through the square-root transform first.
    """
    if "ratio" not in estimand or "sequence" in estimand:
        raise ValueError(f"E-values apply to hazard, rate and risk ratios, not to {estimand!r}")
    values = (estimate, ci_lower, ci_upper)
    if "hazard ratio" in estimand and outcome_is_common(outcome_share):
        values = tuple(hazard_ratio_as_risk_ratio(v) for v in values)
    risk_ratio, lower, upper = values
    return e_value_of_risk_ratio(risk_ratio), e_value_of_interval(risk_ratio, lower, upper)
