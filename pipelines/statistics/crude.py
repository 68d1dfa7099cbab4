"""Crude odds ratio and risk ratio from a 2x2 table, and the Mantel-Haenszel odds ratio across strata.

All intervals come from statsmodels' contingency tables:
- `Table2x2.oddsratio_confint()`: Woolf (logit) interval, exp(log OR +/- z * sqrt(1/a + 1/b + 1/c + 1/d));
- `Table2x2.riskratio_confint()`: log interval, exp(log RR +/- z * sqrt(1/a - 1/(a+b) + 1/c - 1/(c+d)));
- `StratifiedTable.oddsratio_pooled_confint()`: Robins-Breslow-Greenland interval for the Mantel-Haenszel OR.
The p-values are the Wald tests of the log ratio (Table2x2) and the Cochran-Mantel-Haenszel test (strata).

Layout of the 2x2 table used here (rows = exposure, columns = outcome):

                 outcome   no outcome
    exposed          a          b
    unexposed        c          d

When a cell is zero statsmodels adds 0.5 to every cell (its `shift_zeros` default) so the ratios stay finite; a
table with no events in one row is nevertheless not estimable (`estimability.judged`), so that corrected ratio is never
published.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import StratifiedTable, Table2x2

from pipelines.statistics.estimability import judged
from pipelines.statistics.inputs import EXPOSURE, OUTCOME, binary_column, require_columns, to_int
from pipelines.statistics.results import EstimateResult


def two_by_two_counts(
    data: pd.DataFrame, exposure: str = EXPOSURE, outcome: str = OUTCOME
) -> tuple[int, int, int, int]:
    """(exposed events, exposed persons, unexposed events, unexposed persons) from a per-person DataFrame."""
    require_columns(data, [exposure, outcome])
    exposed = binary_column(data, exposure) == 1
    has_outcome = binary_column(data, outcome) == 1
    return (
        to_int((exposed & has_outcome).sum()),
        to_int(exposed.sum()),
        to_int((~exposed & has_outcome).sum()),
        to_int((~exposed).sum()),
    )


def _cells(exposure: pd.Series, outcome: pd.Series) -> np.ndarray:
    """The 2x2 cells [[a, b], [c, d]] from 0/1 exposure and outcome columns."""
    return np.array(
        [
            [((exposure == 1) & (outcome == 1)).sum(), ((exposure == 1) & (outcome == 0)).sum()],
            [((exposure == 0) & (outcome == 1)).sum(), ((exposure == 0) & (outcome == 0)).sum()],
        ],
        dtype=float,
    )


def _table(exposed_events: int, exposed_persons: int, unexposed_events: int, unexposed_persons: int) -> Table2x2:
    if exposed_events > exposed_persons or unexposed_events > unexposed_persons:
        raise ValueError("events cannot outnumber persons")
    if exposed_persons == 0 or unexposed_persons == 0:
        raise ValueError("both the exposed and the unexposed group need at least one person")
    cells = np.array(
        [
            [exposed_events, exposed_persons - exposed_events],
            [unexposed_events, unexposed_persons - unexposed_events],
        ],
        dtype=float,
    )
    return Table2x2(cells)


def odds_ratio_from_counts(
    exposed_events: int,
    exposed_persons: int,
    unexposed_events: int,
    unexposed_persons: int,
    alpha: float = 0.05,
) -> EstimateResult:
    """Crude odds ratio, exposed vs unexposed, with Woolf (logit) confidence interval, from counts."""
    table = _table(exposed_events, exposed_persons, unexposed_events, unexposed_persons)
    lower, upper = table.oddsratio_confint(alpha=alpha)
    return judged(EstimateResult(
        method="Crude odds ratio (2x2 table, Woolf logit CI; statsmodels Table2x2)",
        estimand="odds ratio, exposed vs unexposed",
        estimate=float(table.oddsratio),
        ci_lower=float(lower),
        ci_upper=float(upper),
        p_value=float(table.log_oddsratio_pvalue()),
        n_exposed=exposed_persons,
        n_unexposed=unexposed_persons,
        events_exposed=exposed_events,
        events_unexposed=unexposed_events,
    ))


def risk_ratio_from_counts(
    exposed_events: int,
    exposed_persons: int,
    unexposed_events: int,
    unexposed_persons: int,
    alpha: float = 0.05,
) -> EstimateResult:
    """Crude risk ratio, exposed vs unexposed, with log-scale confidence interval, from counts."""
    table = _table(exposed_events, exposed_persons, unexposed_events, unexposed_persons)
    lower, upper = table.riskratio_confint(alpha=alpha)
    return judged(EstimateResult(
        method="Crude risk ratio (2x2 table, log CI; statsmodels Table2x2)",
        estimand="risk ratio, exposed vs unexposed",
        estimate=float(table.riskratio),
        ci_lower=float(lower),
        ci_upper=float(upper),
        p_value=float(table.log_riskratio_pvalue()),
        n_exposed=exposed_persons,
        n_unexposed=unexposed_persons,
        events_exposed=exposed_events,
        events_unexposed=unexposed_events,
    ))


def crude_odds_ratio(
    data: pd.DataFrame, exposure: str = EXPOSURE, outcome: str = OUTCOME, alpha: float = 0.05
) -> EstimateResult:
    """Crude odds ratio of `outcome` (0/1) for `exposure` (0/1) from a per-person DataFrame."""
    return odds_ratio_from_counts(*two_by_two_counts(data, exposure, outcome), alpha=alpha)


def crude_risk_ratio(
    data: pd.DataFrame, exposure: str = EXPOSURE, outcome: str = OUTCOME, alpha: float = 0.05
) -> EstimateResult:
    """Crude risk ratio of `outcome` (0/1) for `exposure` (0/1) from a per-person DataFrame."""
    return risk_ratio_from_counts(*two_by_two_counts(data, exposure, outcome), alpha=alpha)


def mantel_haenszel_odds_ratio(
    data: pd.DataFrame,
    strata: str,
    exposure: str = EXPOSURE,
    outcome: str = OUTCOME,
    alpha: float = 0.05,
) -> EstimateResult:
    """Mantel-Haenszel odds ratio pooled over the strata in column `strata` (e.g. propensity-score strata).

    Strata in which everyone is exposed or everyone unexposed carry no information and are left out.
    CI: Robins-Breslow-Greenland (statsmodels StratifiedTable); p-value: Cochran-Mantel-Haenszel test.
    """
    require_columns(data, [strata, exposure, outcome])
    tables = []
    for _, stratum in data.groupby(strata, observed=True):
        cells = _cells(binary_column(stratum, exposure), binary_column(stratum, outcome))
        if cells[0].sum() > 0 and cells[1].sum() > 0:
            tables.append(cells)
    if not tables:
        raise ValueError("no stratum has both exposed and unexposed persons")
    pooled = StratifiedTable(tables)
    lower, upper = pooled.oddsratio_pooled_confint(alpha=alpha)
    totals = np.sum(tables, axis=0)
    return judged(EstimateResult(
        method=f"Mantel-Haenszel odds ratio over {len(tables)} strata of {strata!r} (statsmodels StratifiedTable)",
        estimand="odds ratio, exposed vs unexposed, pooled over strata",
        estimate=float(pooled.oddsratio_pooled),
        ci_lower=float(lower),
        ci_upper=float(upper),
        p_value=float(pooled.test_null_odds(correction=False).pvalue),
        n_exposed=to_int(totals[0].sum()),
        n_unexposed=to_int(totals[1].sum()),
        events_exposed=to_int(totals[0, 0]),
        events_unexposed=to_int(totals[1, 0]),
    ))
