"""Incidence rates per 1,000 person-years and incidence rate ratios.

- `incidence_rate`: events / person-years x 1,000 with the exact Poisson (Garwood) interval,
  statsmodels `confint_poisson(method="exact-c")`, i.e. chi2(alpha/2, 2k)/2 and chi2(1-alpha/2, 2k+2)/2
  divided by person-years.
- `incidence_rate_ratio`: crude IRR with the exact *conditional* interval. Given the total number of events
  n = k1 + k0, the exposed events k1 are Binomial(n, p) with p = IRR*PY1 / (IRR*PY1 + PY0). The
  Clopper-Pearson interval for p (statsmodels `proportion_confint(method="beta")`) is turned into an interval
  for the IRR: IRR = p/(1-p) x PY0/PY1. The p-value is the exact conditional binomial test, statsmodels
  `test_poisson_2indep(method="exact-cond")`. This is what R's `poisson.test(c(k1, k0), c(PY1, PY0))` reports.
  (statsmodels' `confint_poisson_2indep` has no exact method yet, hence the Clopper-Pearson route.)
- `adjusted_incidence_rate_ratio` (in regression.py): Poisson GLM with a log person-time offset and covariates.
"""

from __future__ import annotations

import math

import pandas as pd
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson, test_poisson_2indep

from pipelines.statistics.estimability import judged
from pipelines.statistics.inputs import (
    EXPOSURE,
    FOLLOWUP_DAYS,
    OUTCOME,
    binary_column,
    followup_years,
    require_columns,
    to_int,
)
from pipelines.statistics.results import EstimateResult

PER_PERSON_YEARS = 1000


def incidence_rate_from_counts(
    events: int,
    person_years: float,
    persons: int | None = None,
    per: float = PER_PERSON_YEARS,
    alpha: float = 0.05,
    group: str | None = None,
    unexposed: bool = False,
) -> EstimateResult:
    """Incidence rate per `per` person-years with the exact Poisson (Garwood) confidence interval.

    `group` names the group in the estimand ("incidence rate per 1,000 person-years, unexposed"), so that the rates
    of a study's two groups are two distinct rows. Its counts go in the *_exposed fields, or in the *_unexposed
    fields when `unexposed` (the reference group: the unexposed, or the comparator of a new-user design).
    """
    if person_years <= 0:
        raise ValueError("person-years must be positive")
    lower, upper = confint_poisson(events, person_years, method="exact-c", alpha=alpha)
    side = "unexposed" if unexposed else "exposed"
    return EstimateResult(
        method="Incidence rate, exact Poisson CI (Garwood; statsmodels confint_poisson exact-c)",
        estimand=f"incidence rate per {per:,g} person-years" + (f", {group}" if group else ""),
        estimate=events / person_years * per,
        ci_lower=float(lower) * per,
        ci_upper=float(upper) * per,
        p_value=None,
        **{f"n_{side}": persons, f"events_{side}": int(events), f"person_years_{side}": float(person_years)},
    )


def incidence_rate(
    data: pd.DataFrame,
    outcome: str = OUTCOME,
    followup_days: str = FOLLOWUP_DAYS,
    per: float = PER_PERSON_YEARS,
    alpha: float = 0.05,
    group: str | None = None,
    unexposed: bool = False,
) -> EstimateResult:
    """Incidence rate of `outcome` (0/1) per 1,000 person-years over everyone in `data`.

    To get the rate of one group, pass that group's rows (e.g. `data[data.exposure == 0]`) and name it
    (`group="unexposed", unexposed=True`; see `incidence_rate_from_counts`).
    """
    require_columns(data, [outcome, followup_days])
    return incidence_rate_from_counts(
        events=to_int(binary_column(data, outcome).sum()),
        person_years=float(followup_years(data, followup_days).sum()),
        persons=len(data),
        per=per,
        alpha=alpha,
        group=group,
        unexposed=unexposed,
    )


def incidence_rate_ratio_from_counts(
    exposed_events: int,
    exposed_person_years: float,
    unexposed_events: int,
    unexposed_person_years: float,
    exposed_persons: int | None = None,
    unexposed_persons: int | None = None,
    alpha: float = 0.05,
) -> EstimateResult:
    """Crude incidence rate ratio, exposed vs unexposed, with the exact conditional (binomial) interval."""
    if exposed_person_years <= 0 or unexposed_person_years <= 0:
        raise ValueError("both groups need positive person-years")
    total_events = exposed_events + unexposed_events
    counts = {
        "n_exposed": exposed_persons,
        "n_unexposed": unexposed_persons,
        "events_exposed": int(exposed_events),
        "events_unexposed": int(unexposed_events),
        "person_years_exposed": float(exposed_person_years),
        "person_years_unexposed": float(unexposed_person_years),
    }
    method = "Incidence rate ratio, exact conditional CI (Clopper-Pearson on the event split; statsmodels)"
    estimand = "incidence rate ratio, exposed vs unexposed"
    if exposed_events == 0 or unexposed_events == 0:
        # A ratio of 0 or infinity: withheld with the reason (estimability.judged), not computed.
        return judged(EstimateResult(method=method, estimand=estimand, estimate=None, ci_lower=None, ci_upper=None,
                                     p_value=None, **counts))

    # Exact conditional interval: Clopper-Pearson for the share of events that are in the exposed group.
    share_lower, share_upper = proportion_confint(exposed_events, total_events, alpha=alpha, method="beta")
    person_time_ratio = unexposed_person_years / exposed_person_years

    def share_to_rate_ratio(share: float) -> float:
        return share / (1 - share) * person_time_ratio

    estimate = (exposed_events / exposed_person_years) / (unexposed_events / unexposed_person_years)
    test = test_poisson_2indep(
        exposed_events, exposed_person_years, unexposed_events, unexposed_person_years, method="exact-cond"
    )
    return judged(EstimateResult(
        method=method,
        estimand=estimand,
        estimate=estimate,
        ci_lower=share_to_rate_ratio(float(share_lower)),
        ci_upper=share_to_rate_ratio(float(share_upper)),
        p_value=float(test.pvalue),
        # The Wald SE of the log rate ratio (what a Poisson model reports, and CohortMethod's seLogRr), for
        # meta-analysis and calibration; the published interval stays the exact one.
        se_log_estimate=math.sqrt(1 / exposed_events + 1 / unexposed_events),
        **counts,
    ))


def incidence_rate_ratio(
    data: pd.DataFrame,
    exposure: str = EXPOSURE,
    outcome: str = OUTCOME,
    followup_days: str = FOLLOWUP_DAYS,
    alpha: float = 0.05,
) -> EstimateResult:
    """Crude incidence rate ratio of `outcome` for `exposure` from a per-person DataFrame (exact conditional CI)."""
    require_columns(data, [exposure, outcome, followup_days])
    exposed = binary_column(data, exposure) == 1
    events = binary_column(data, outcome)
    years = followup_years(data, followup_days)
    return incidence_rate_ratio_from_counts(
        exposed_events=to_int(events[exposed].sum()),
        exposed_person_years=float(years[exposed].sum()),
        unexposed_events=to_int(events[~exposed].sum()),
        unexposed_person_years=float(years[~exposed].sum()),
        exposed_persons=to_int(exposed.sum()),
        unexposed_persons=to_int((~exposed).sum()),
        alpha=alpha,
    )
