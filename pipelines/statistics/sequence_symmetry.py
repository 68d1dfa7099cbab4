"""Sequence symmetry analysis (SSA / prescription sequence symmetry analysis, Hallas 1996).

Population: persons who initiate both the index drug (e.g. a diuretic) and the marker (cramp onset, or a quinine
start as the cramp proxy), with the two first-initiation dates within the window of each other (default 365 days
either side; same-day pairs are excluded because their order is unknown, as in CohortSymmetry's
`combinationWindow = c(0, 365)`, a gap > 0 and <= 365 days).

- Crude sequence ratio (CSR) = persons with index first / persons with marker first.
- Null-effect sequence ratio (NSR; Tsiropoulos et al. 2009): the CSR expected without any causal link, given the
  day-by-day initiation counts of both. With a_d index initiators on day d, b_m marker initiators on day m and
  window T:
      P = sum_d a_d * (sum_{m=d+1}^{d+T} b_m)  /  sum_d a_d * (sum_{m=d-T}^{d+T} b_m - b_d)
      NSR = P / (1 - P)
  (the expected share of index-first pairs, turned into odds). It corrects for trends in prescribing and for
  windows cut short at the ends of the data. Computed by `null_effect_sequence_ratio` from daily counts only.
- Adjusted sequence ratio (ASR) = CSR / NSR.
- Confidence interval (CohortSymmetry `getConfidenceInterval.R`): the share index-first gets the interval
  qbeta(alpha/2, n_index_first + 0.5, n_marker_first + 0.5) .. qbeta(1 - alpha/2, ...), turned into odds p/(1-p)
  for the CSR and divided by the NSR for the ASR. scipy.stats.beta gives the quantiles. With no pairs in one order
  the ratio is 0 or infinite and is not estimable (`estimability.judged`); CohortSymmetry replaces the zero count by
  0.5 for the interval only, which gives an interval that excludes its own estimate (0.00, CI 0.02-10.5).
- p-value: exact binomial test (scipy.stats.binomtest) of n_index_first out of all pairs against the share
  expected under the null: 1/2 for the CSR, P = NSR/(1+NSR) for the ASR.

Which daily counts feed the NSR (Tsiropoulos 2009; OHDSI CohortSymmetry, whose `inc_cohort_summary` counts the
first entry of every person in the index and in the marker cohort per day): a_d are the initiations of **every
incident user of the index drug** in the input (whose window is observed), with or without the marker, and b_m
those of every incident user of the marker. Counting only the persons in pairs would make the NSR follow the
marker's incidence among index users near their index date, not the prescribing trends it adjusts for. Pass
`index_initiations_by_day` / `marker_initiations_by_day` to use counts aggregated elsewhere (e.g. in DuckDB over
the whole database). The NSR window defaults to the SSA window T (the formula's T); `nsr_window_days=548` uses
CohortSymmetry's `movingAverageRestriction` default instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pipelines.engine import as_engine
from pipelines.sql import AGES_SQL, read_sql
from pipelines.statistics.estimability import judged
from pipelines.statistics.inputs import require_columns
from pipelines.statistics.results import EstimateResult

INDEX_DATE = "index_date"  # first initiation of the index drug (NaT when never)
MARKER_DATE = "marker_date"  # first initiation of the marker: cramp onset or quinine start (NaT when never)
WINDOW_DAYS = 365


def daily_initiation_counts(dates: pd.Series) -> pd.Series:
    """Number of initiations per calendar day (index: day, value: count); missing dates are ignored."""
    days = pd.to_datetime(dates.dropna()).dt.normalize()
    return days.value_counts().sort_index().rename("initiations")


def _day_numbers(index: pd.Index) -> np.ndarray:
    """Days as integers: dates become days since 1970-01-01, integer day numbers are kept."""
    if pd.api.types.is_datetime64_any_dtype(index):
        return ((pd.DatetimeIndex(index).normalize() - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy()
    return np.asarray(index, dtype=np.int64)


def null_effect_sequence_ratio(
    index_initiations_by_day: pd.Series,
    marker_initiations_by_day: pd.Series,
    window_days: int = WINDOW_DAYS,
) -> float:
    """Tsiropoulos 2009 null-effect sequence ratio from daily initiation counts.

    Each Series holds the number of initiations per day, indexed by date (or by an integer day number). See the
    module docstring for the formula. Returns NaN when no marker initiation falls within the window of any index
    initiation.
    """
    if index_initiations_by_day.empty or marker_initiations_by_day.empty:
        return float("nan")
    index_days = _day_numbers(index_initiations_by_day.index)
    marker_days = _day_numbers(marker_initiations_by_day.index)
    # Lay both series out on one axis of consecutive days, padded by the window on each side so every window fits.
    first_day = min(index_days.min(), marker_days.min()) - window_days
    length = int(max(index_days.max(), marker_days.max()) + window_days - first_day + 1)
    index_counts = np.bincount(index_days - first_day, weights=index_initiations_by_day.to_numpy(float), minlength=length)
    marker_counts = np.bincount(marker_days - first_day, weights=marker_initiations_by_day.to_numpy(float), minlength=length)

    # marker_cumulative[i] = markers on days 0 .. i-1 of the axis, so a window sum is a difference of two entries.
    marker_cumulative = np.concatenate([[0.0], np.cumsum(marker_counts)])
    day = np.arange(window_days, length - window_days)  # every real day (the padding holds no index counts)
    markers_after = marker_cumulative[day + window_days + 1] - marker_cumulative[day + 1]  # days d+1 .. d+T
    markers_around = marker_cumulative[day + window_days + 1] - marker_cumulative[day - window_days]  # d-T .. d+T
    markers_around_not_same_day = markers_around - marker_counts[day]

    numerator = float(np.sum(index_counts[day] * markers_after))
    denominator = float(np.sum(index_counts[day] * markers_around_not_same_day))
    if denominator <= 0:
        return float("nan")
    share_index_first = numerator / denominator
    if share_index_first >= 1:
        return float("inf")
    return share_index_first / (1 - share_index_first)


def _beta_interval(index_first: int, marker_first: int, alpha: float) -> tuple[float, float]:
    """CohortSymmetry's interval for the crude sequence ratio (odds of index-first); both counts positive."""
    a = index_first + 0.5
    b = marker_first + 0.5
    lower_share = stats.beta.ppf(alpha / 2, a, b)
    upper_share = stats.beta.ppf(1 - alpha / 2, a, b)
    return float(lower_share / (1 - lower_share)), float(upper_share / (1 - upper_share))


def sequence_ratio_from_counts(
    index_first: int,
    marker_first: int,
    null_effect_ratio: float | None = None,
    alpha: float = 0.05,
) -> EstimateResult:
    """Sequence ratio from the two sequence counts; adjusted (divided by it) when `null_effect_ratio` is given.

    Without `null_effect_ratio` this is the crude sequence ratio. Counts go into the result as events: events_exposed = persons
    whose marker came after the index drug, events_unexposed = marker before. Every person contributes both an
    exposed and an unexposed period, so n_exposed/n_unexposed are None.
    """
    adjusted = null_effect_ratio is not None
    if null_effect_ratio is None:
        null_effect_ratio = 1.0
    if adjusted:
        method = "Adjusted sequence ratio (SSA; crude / null-effect SR, Tsiropoulos 2009; CohortSymmetry beta CI)"
        estimand = "sequence ratio adjusted for prescribing trends (marker after vs before index drug)"
    else:
        method = "Crude sequence ratio (SSA; CohortSymmetry beta CI)"
        estimand = "sequence ratio (marker after vs before index drug)"
    counts = {"events_exposed": int(index_first), "events_unexposed": int(marker_first)}
    if index_first == 0 or marker_first == 0:
        # A ratio of 0 or infinity. CohortSymmetry would still give an interval (a zero count replaced by 0.5), which
        # does not contain the estimate: withheld with the reason (estimability.judged).
        return judged(EstimateResult(method=method, estimand=estimand, estimate=None, ci_lower=None, ci_upper=None,
                                     p_value=None, **counts))
    crude_lower, crude_upper = _beta_interval(index_first, marker_first, alpha)
    null_share = null_effect_ratio / (1 + null_effect_ratio)
    p_value = None
    if 0 < null_share < 1:  # no test when the NSR is undefined (NaN) or degenerate; judged() then withholds the row
        p_value = float(stats.binomtest(index_first, index_first + marker_first, null_share).pvalue)
    return judged(EstimateResult(
        method=method,
        estimand=estimand,
        estimate=index_first / marker_first / null_effect_ratio,
        ci_lower=crude_lower / null_effect_ratio,
        ci_upper=crude_upper / null_effect_ratio,
        p_value=p_value,
        **counts,
    ))


@dataclass(frozen=True)
class SequenceSymmetryResult:
    """Crude and adjusted sequence ratios with the counts behind them."""

    crude: EstimateResult
    adjusted: EstimateResult
    null_effect_ratio: float
    index_first: int  # persons whose marker started 1..window days after the index drug
    marker_first: int  # persons whose marker started 1..window days before the index drug
    same_day_excluded: int  # persons who started both on the same day (excluded)
    window_days: int

    def summary(self) -> str:
        return (
            f"Sequence symmetry analysis, window {self.window_days} days either side (same-day pairs excluded: "
            f"{self.same_day_excluded})\n"
            f"index drug first: {self.index_first}, marker first: {self.marker_first}, "
            f"null-effect sequence ratio: {self.null_effect_ratio:.4f}\n\n{self.crude}\n{self.adjusted}"
        )

    def __str__(self) -> str:
        return self.summary()


def sequence_symmetry_analysis(
    data: pd.DataFrame,
    index_date: str = INDEX_DATE,
    marker_date: str = MARKER_DATE,
    window_days: int = WINDOW_DAYS,
    nsr_window_days: int | None = None,
    marker_initiations_by_day: pd.Series | None = None,
    index_initiations_by_day: pd.Series | None = None,
    observation_start=None,
    observation_end=None,
    alpha: float = 0.05,
) -> SequenceSymmetryResult:
    """Sequence symmetry analysis from per-person first-initiation dates.

    `data` has one row per person with `index_date` and `marker_date` (dates or NaT when never initiated). Only
    persons with both dates, 1 to `window_days` days apart, are counted.

    `observation_start` / `observation_end`: the first and last day the data cover. When given, index
    initiations less than `window_days` from either end are left out, so that both sides of every window are
    observed (Garrison 2012 required a year of data before and after; Sllambias' SSA does the same). Recommended:
    without it, the NSR corrects for the cut windows only approximately (simulation: about 2% low with a true
    ratio of 2.4, unbiased under the null).

    `marker_initiations_by_day` overrides the marker trend used for the NSR (default: the daily marker
    initiations of everyone in `data`, which should then hold every marker initiator of the source population,
    not only the index-drug users). `index_initiations_by_day` likewise overrides the index-drug trend (default:
    the daily initiations of every person in `data` with an index date, marker or not, inside the observation
    limits).
    """
    require_columns(data, [index_date, marker_date])
    index_dates = pd.to_datetime(data[index_date]).dt.normalize()
    marker_dates = pd.to_datetime(data[marker_date]).dt.normalize()
    eligible = index_dates.notna() & marker_dates.notna()
    if observation_start is not None:
        eligible &= index_dates >= pd.Timestamp(observation_start) + pd.Timedelta(days=window_days)
    if observation_end is not None:
        eligible &= index_dates <= pd.Timestamp(observation_end) - pd.Timedelta(days=window_days)
    gap_days = (marker_dates - index_dates).dt.days
    in_window = eligible & (gap_days.abs() <= window_days)
    same_day = in_window & (gap_days == 0)
    pair = in_window & (gap_days != 0)
    index_first = int((pair & (gap_days > 0)).sum())
    marker_first = int((pair & (gap_days < 0)).sum())

    if marker_initiations_by_day is None:
        marker_initiations_by_day = daily_initiation_counts(marker_dates)
    if index_initiations_by_day is None:
        # Every incident user of the index drug whose window is observed, with or without the marker (Tsiropoulos
        # 2009; CohortSymmetry), not only the persons in pairs.
        index_observed = index_dates.notna()
        if observation_start is not None:
            index_observed &= index_dates >= pd.Timestamp(observation_start) + pd.Timedelta(days=window_days)
        if observation_end is not None:
            index_observed &= index_dates <= pd.Timestamp(observation_end) - pd.Timedelta(days=window_days)
        index_initiations_by_day = daily_initiation_counts(index_dates[index_observed])
    nsr = null_effect_sequence_ratio(
        index_initiations_by_day,
        marker_initiations_by_day,
        nsr_window_days or window_days,
    )
    return SequenceSymmetryResult(
        crude=sequence_ratio_from_counts(index_first, marker_first, None, alpha),
        adjusted=sequence_ratio_from_counts(index_first, marker_first, nsr, alpha),
        null_effect_ratio=nsr,
        index_first=index_first,
        marker_first=marker_first,
        same_day_excluded=int(same_day.sum()),
        window_days=window_days,
    )


# ---------------------------------------------------------------------------------------------------------------
# Garrison 2012: quinine starts as the marker of leg cramps, adults aged 50 or more, age-stratified
# ---------------------------------------------------------------------------------------------------------------
# The marker: the phenotype's first date, which leaves out quinine given for malaria or babesiosis (a fill with
# either recorded within the phenotype's exclusion_window_days before or after it: phenotypes/outcome/quinine_start.yaml
# says why).
GARRISON_MARKER = "quinine_start"
GARRISON_MIN_AGE = 50
# Age bands (at the index-drug start) of the age-stratified ratios: (label, lowest age, highest age or None).
GARRISON_AGE_BANDS = (("age 50-64", 50, 64), ("age 65-79", 65, 79), ("age 80+", 80, None))



def _in_band(ages: pd.Series, low: int, high: int | None) -> pd.Series:
    return (ages >= low) & (ages <= high if high is not None else True)


def garrison_first_dates(target: Any, drug_phenotypes: list[str]) -> pd.DataFrame:
    """Per person: the first date of each drug and of the quinine marker (sql/statistics/garrison_first_dates.sql),
    the days observed around it and the age on it (completed years, sql/ages.sql: the rule of the age at index)."""
    engine = as_engine(target)
    engine.execute_file(AGES_SQL)
    return engine.query(read_sql("statistics/garrison_first_dates.sql"),
                        {"phenotypes": [*drug_phenotypes, GARRISON_MARKER]})


def garrison_sequence_symmetry(target: Any, drug_phenotypes: list[str], window_days: int = WINDOW_DAYS,
                               washout_days: int = WINDOW_DAYS) -> list[tuple[str, str, EstimateResult]]:
    """Garrison et al. 2012 (Arch Intern Med 172:120-6) as a bundled analysis: crude and adjusted sequence ratios of
    each drug's first fill against the first quinine fill, in persons aged >= 50 at the drug start, overall and per
    age band (`GARRISON_AGE_BANDS`, each with its own null-effect ratio), so they compare with Garrison's table.

    - Marker: the first quinine fill given for no infection (the phenotype `quinine_start`: a fill with malaria or
      babesiosis recorded within its exclusion_window_days before or after it treats the infection; an infection
      further away does not remove a cramp marker, and a later quinine start after a malaria course is one).
    - Incident dates only, as `study_analysis.sequence_symmetry_for_drugs`: `washout_days` of observation before a
      marker; `washout_days + window_days` before and `window_days` after an index-drug start.
    - Null-effect ratio: every incident user of the drug in the age group (pairs or not) and the marker trend of
      persons of that age at their quinine start (Tsiropoulos 2009).
    Rows: (exposure label naming the design and age group, marker, result).
    """
    first = garrison_first_dates(target, drug_phenotypes)
    if first.empty:
        return []
    first["first_date"] = pd.to_datetime(first["first_date"])
    markers = first[(first["phenotype_id"] == GARRISON_MARKER) & (first["days_observed_before"] >= washout_days)]
    if markers.empty:
        return []
    # A pair's marker counts whatever the age at the quinine start (the age limit is on the drug start: a marker in
    # the year before a start at 50 must not be lost); the NSR's marker trend is that of the age group.
    marker_dates = markers.set_index("person_id")["first_date"]
    groups = (("age 50+", GARRISON_MIN_AGE, None), *GARRISON_AGE_BANDS)
    rows = []
    for drug in drug_phenotypes:
        initiators = first[(first["phenotype_id"] == drug)
                           & (first["days_observed_before"] >= washout_days + window_days)
                           & (first["days_observed_after"] >= window_days) & (first["age"] >= GARRISON_MIN_AGE)]
        for label, low, high in groups:
            group = initiators[_in_band(initiators["age"], low, high)]
            group_markers = markers[_in_band(markers["age"], low, high)]
            if group.empty or group_markers.empty:
                continue
            pairs = pd.DataFrame({"index_date": group["first_date"].to_numpy(),
                                  "marker_date": marker_dates.reindex(group["person_id"]).to_numpy()})
            result = sequence_symmetry_analysis(
                pairs, window_days=window_days,
                marker_initiations_by_day=daily_initiation_counts(group_markers["first_date"]))
            exposure = f"{drug} (Garrison 2012 design, {label})"
            rows += [(exposure, GARRISON_MARKER, replace(result.crude, analysis_id="ssa_crude")),
                     (exposure, GARRISON_MARKER, replace(result.adjusted, analysis_id="ssa_adjusted"))]
    return rows
