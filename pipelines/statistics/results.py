"""The one result type every estimator returns, and helpers to show results as tables.

Every estimator in this package returns an `EstimateResult`: a small, frozen dataclass with the estimate, its
95% confidence interval, a p-value and the counts behind it. `to_row()` gives exactly the columns of
`RESULT_COLUMNS`, so a list of results becomes one table (`results_table`) that the pipeline can store in
`results.associations` after `suppress_small_counts`.

Printing a result (`print(result)`) shows a short table in the style of statsmodels/lifelines summaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from pipelines.disclosure import (
    DEFAULT_SITE_FLOOR,
    SUPPRESSED_TEXT,
    count_text,
    small_cell_text,
    suppress_estimates,
)

# The first attrition step of every analysis: the cohort (cohort.study_population, per arm), as the cohort stage
# prints it. Here, below both the analyses that write it and the disclosure ledger that fixes it.
COHORT_STEP = "in the study population"

# The columns of a result row, in order. `EstimateResult.to_row()` returns exactly these keys.
RESULT_COLUMNS = (
    "method",
    "estimand",
    "estimate",
    "ci_lower",
    "ci_upper",
    "p_value",
    "n_exposed",
    "n_unexposed",
    "events_exposed",
    "events_unexposed",
    "person_years_exposed",
    "person_years_unexposed",
    "not_estimable_reason",
    "ps_auc",
    "effective_sample_size",
    "covariates_balanced",
    "imbalanced_covariates",
    "proportional_hazards_p_value",
    "proportional_hazards_violated",
)

# The analysis a row belongs to and the estimate on the log scale, beside RESULT_COLUMNS in results.associations
# (results_frame). An analysis id is short, stable text that tools key on (the forest plot, meta-analysis); the
# method name is its label. CohortMethod publishes the same pair of log-scale columns (logRr, seLogRr).
ANALYSIS_COLUMNS = ("analysis_id", "method_name")
LOG_SCALE_COLUMNS = ("log_estimate", "se_log_estimate")
# Computed over a study's published rows after small-cell suppression (multiplicity.py), so never suppressed itself.
MULTIPLICITY_COLUMNS = ("q_value",)
# Sensitivity to unmeasured confounding of every adjusted ratio (pipelines/statistics/evalues.py): the E-value of the
# estimate and of its 95% CI limit closest to 1 (VanderWeele & Ding 2017).
E_VALUE_COLUMNS = ("e_value", "e_value_ci")
# The primary analysis calibrated on the study's negative controls, outcomes and exposures (pipelines/statistics/
# empirical_calibration.py, OHDSI EmpiricalCalibration); calibration_note says why a row is not calibrated.
CALIBRATION_COLUMNS = ("calibrated_estimate", "calibrated_ci_lower", "calibrated_ci_upper", "calibrated_p_value")
CALIBRATION_NOTE_COLUMN = "calibration_note"
ANALYSES: dict[str, str] = {
    "incidence_rate": "Incidence rate (exact Poisson CI)",
    "crude_irr": "Incidence rate ratio, crude (exact CI)",
    "cox_adjusted": "Cox PH, adjusted",
    "cox_current_exposure": "Cox PH, adjusted, time-varying current use",
    "cox_risk_window": "Cox PH, adjusted, time-varying risk window",
    "km_risk": "Risk at horizon (Kaplan-Meier)",
    "km_risk_difference": "Risk difference at horizon (Kaplan-Meier)",
    "km_risk_ratio": "Risk ratio at horizon (Kaplan-Meier)",
    "aj_risk": "Cumulative incidence at horizon, death competing (Aalen-Johansen)",
    "aj_risk_difference": "Cumulative incidence difference at horizon, death competing (Aalen-Johansen)",
    "aj_risk_ratio": "Cumulative incidence ratio at horizon, death competing (Aalen-Johansen)",
    "ps_matched_cox": "Cox PH, 1:1 PS-matched",
    "ps_strata_cox": "Cox PH, stratified on PS deciles",
    "ps_iptw_cox": "Cox PH, stabilised IPTW",
    "ssa_crude": "Sequence ratio, crude",
    "ssa_adjusted": "Sequence ratio, adjusted for trend",
}

# Count columns that small-cell suppression applies to (person-years are not counts of people).
COUNT_COLUMNS = ("n_exposed", "n_unexposed", "events_exposed", "events_unexposed")
# Columns that recompute a hidden count (with the counts shown beside them), hidden with it. The effective sample
# size of a matched analysis is the number of matched persons.
# The log-scale estimate and its standard error go with the estimate (SE of a log rate ratio = sqrt(1/a + 1/c)).
# E-values and calibrated values are functions of the estimate and its interval, so they recompute them too.
# The reason a row is not estimable is a function of its counts (fewer than 10 events per coefficient bounds the
# events, and the coefficients are published in results.analysis_covariates), so it goes with them: a row whose
# counts are hidden says neither its estimate nor why there is none (pipelines/statistics/estimability.py).
DERIVED_COLUMNS = ("estimate", "ci_lower", "ci_upper", "p_value", "person_years_exposed", "person_years_unexposed",
                   "effective_sample_size", *LOG_SCALE_COLUMNS, "proportional_hazards_p_value",
                   "proportional_hazards_violated", *E_VALUE_COLUMNS, *CALIBRATION_COLUMNS, "not_estimable_reason")

# The site's floor is the threshold when a caller names none (the rule itself: pipelines/disclosure.py).
DEFAULT_SMALL_CELL_THRESHOLD = DEFAULT_SITE_FLOOR

DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class EstimateResult:
    """One estimate with its 95% confidence interval and the counts it rests on.

    Fields that do not apply to a method are None (for example person-years for an odds ratio, or the
    "unexposed" counts of the exposed group's incidence rate). A result that is not estimable
    (pipelines/statistics/estimability.py) has estimate, interval and p-value None and says why in
    `not_estimable_reason`; its counts stay. The propensity-score fields are set for propensity-score results only.
    """

    method: str
    estimand: str
    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None
    p_value: float | None
    n_exposed: int | None = None
    n_unexposed: int | None = None
    events_exposed: int | None = None
    events_unexposed: int | None = None
    person_years_exposed: float | None = None
    person_years_unexposed: float | None = None
    not_estimable_reason: str | None = None
    ps_auc: float | None = None  # area under the ROC curve of the propensity model (c statistic)
    effective_sample_size: float | None = None  # Kish's (sum w)^2 / sum w^2, target plus comparator
    covariates_balanced: bool | None = None  # every |SMD| <= 0.1 after adjustment
    imbalanced_covariates: str | None = None  # "age (SMD 0.124), ..." when not balanced
    # Cox models: the scaled Schoenfeld residual test of the exposure term (proportional_hazards.py), and whether its
    # p-value is below PROPORTIONAL_HAZARDS_ALPHA.
    proportional_hazards_p_value: float | None = None
    proportional_hazards_violated: bool | None = None
    # Standard error of log(estimate) behind the interval, for ratio estimands (None: derived from the interval).
    se_log_estimate: float | None = None
    covariates: tuple[str, ...] = ()  # the model's adjustment set (results.analysis_covariates)
    analysis_id: str | None = None  # key of ANALYSES, set by the study analysis that ran the estimator

    @property
    def estimable(self) -> bool:
        return self.not_estimable_reason is None

    def to_row(self) -> dict:
        """The result as a dict with exactly the keys of RESULT_COLUMNS."""
        return {name: getattr(self, name) for name in RESULT_COLUMNS}

    def contains(self, value: float) -> bool:
        """True when `value` lies inside the confidence interval (bounds included)."""
        if self.ci_lower is None or self.ci_upper is None:
            return False
        return self.ci_lower <= value <= self.ci_upper

    def summary(self) -> str:
        """A plain-text table of the result, like a statsmodels or lifelines summary."""
        width = 78
        lines = [
            self.method.center(width),
            "=" * width,
            f"Estimand: {self.estimand}",
            "-" * width,
            f"{'estimate':>14}{'95% CI lower':>16}{'95% CI upper':>16}{'p-value':>12}",
            f"{_number(self.estimate):>14}{_number(self.ci_lower):>16}{_number(self.ci_upper):>16}"
            f"{_p_value(self.p_value):>12}",
        ]
        if self.not_estimable_reason is not None:
            lines.append(f"Not estimable: {self.not_estimable_reason}")
        has_counts = any(getattr(self, name) is not None for name in (*COUNT_COLUMNS, "person_years_exposed"))
        if has_counts:
            lines += [
                "-" * width,
                f"{'':<14}{'persons':>14}{'events':>14}{'person-years':>16}",
                f"{'exposed':<14}{_count(self.n_exposed):>14}{_count(self.events_exposed):>14}"
                f"{_number(self.person_years_exposed, 1):>16}",
                f"{'unexposed':<14}{_count(self.n_unexposed):>14}{_count(self.events_unexposed):>14}"
                f"{_number(self.person_years_unexposed, 1):>16}",
            ]
        lines.append("=" * width)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def results_table(results: list[EstimateResult]) -> pd.DataFrame:
    """Many results as one DataFrame with the columns RESULT_COLUMNS (one row per result)."""
    return pd.DataFrame([result.to_row() for result in results], columns=list(RESULT_COLUMNS))


def format_results_table(
    results: list[EstimateResult], small_cell_threshold: int | None = DEFAULT_SMALL_CELL_THRESHOLD
) -> str:
    """Many results as one printable table: method, estimand, estimate (95% CI), p-value and counts.

    Counts from 1 to small_cell_threshold-1 print as "<threshold" (default "<11"); None shows every count.
    """
    rows = []
    for result in results:
        row = result.to_row()
        if small_cell_threshold is not None:
            row = suppress_small_counts(row, small_cell_threshold)
        rows.append(
            {
                "method": row["method"],
                "estimand": row["estimand"],
                # A reason hidden with the row's counts says nothing, not even that the row is not estimable.
                "estimate (95% CI)": "not estimable" if row["not_estimable_reason"] not in (None, SUPPRESSED_TEXT) else
                f"{_number(row['estimate'], 2)} ({_number(row['ci_lower'], 2)}-{_number(row['ci_upper'], 2)})",
                "p": _p_value(row["p_value"]),
                "n exp/unexp": f"{_count(row['n_exposed'])}/{_count(row['n_unexposed'])}",
                "events exp/unexp": f"{_count(row['events_exposed'])}/{_count(row['events_unexposed'])}",
            }
        )
    return pd.DataFrame(rows).to_string(index=False)


def suppress_small_count(count: int | float | None, threshold: int = DEFAULT_SMALL_CELL_THRESHOLD) -> str:
    """A count as text for publication: "<11" (for threshold 11) when it is between 1 and 10, otherwise the count.

    Zero is shown: it reveals no individual. None shows as "-".
    """
    return count_text(count, threshold)


def suppress_small_counts(row: dict, threshold: int = DEFAULT_SMALL_CELL_THRESHOLD) -> dict:
    """A copy of a result row in which every count between 1 and threshold-1 is replaced by "<threshold", and
    everything that would recompute it (its complement, the estimate, interval, p-value and person-years) by
    "suppressed" (pipelines/disclosure.py).

    Suppressed cells become strings, so store the columns as text where a table mixes both.
    """
    frame = pd.DataFrame([{**{name: row.get(name) for name in RESULT_COLUMNS}, "group": 0}])
    hidden = suppress_estimates(frame, threshold, DERIVED_COLUMNS, group_columns=("group",)).iloc[0]
    suppressed = dict(row)
    for name in (hidden["suppressed_columns"] or "").split(","):
        if name:
            suppressed[name] = small_cell_text(threshold)
    for name in (hidden["complementary_columns"] or "").split(","):
        if name:
            suppressed[name] = SUPPRESSED_TEXT
    return suppressed


# ---------------------------------------------------------------------------------------------------------------
# Formatting helpers
# ---------------------------------------------------------------------------------------------------------------
def _number(value: float | str | None, decimals: int = 4) -> str:
    if isinstance(value, str):  # a suppressed cell
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:,.{decimals}f}"


def _count(value: int | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{int(value):,}"


def _p_value(value: float | str | None) -> str:
    if isinstance(value, str):  # a suppressed cell
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value < 0.0001:
        return "<0.0001"
    return f"{value:.4f}"
