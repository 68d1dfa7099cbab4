"""Statistics for the leg-cramp cohort studies: estimators, sequence symmetry, meta-analysis and plots.

Every estimator takes a per-person pandas DataFrame (one row per person, pulled once from DuckDB) or
aggregated counts, and returns an `EstimateResult` whose `to_row()` has the columns of `RESULT_COLUMNS`.
Confidence intervals come from statsmodels, scipy and lifelines. See docs/statistics.md.

Default per-person columns: `exposure` (0/1), `outcome` (0/1), `followup_days` (days), covariates as named.
Sequence symmetry takes `index_date` and `marker_date` (first initiation dates).
"""

from pipelines.statistics.crude import (
    crude_odds_ratio,
    crude_risk_ratio,
    mantel_haenszel_odds_ratio,
    odds_ratio_from_counts,
    risk_ratio_from_counts,
    two_by_two_counts,
)
from pipelines.statistics.meta_analysis import MetaAnalysisResult, meta_analysis, meta_analysis_of_results
from pipelines.statistics.plots import forest_plot, kaplan_meier_plot, love_plot
from pipelines.statistics.propensity import (
    PropensityScoreAnalysis,
    PropensityScoreModel,
    covariate_balance,
    equipoise,
    fit_propensity_score,
    inverse_probability_weights,
    match_on_propensity_score,
    preference_scores,
    propensity_score_analysis,
    propensity_score_strata,
    standardized_mean_differences,
    stratified_standardized_mean_differences,
    trim_by_propensity_score,
)
from pipelines.statistics.rates import (
    incidence_rate,
    incidence_rate_from_counts,
    incidence_rate_ratio,
    incidence_rate_ratio_from_counts,
)
from pipelines.statistics.regression import adjusted_incidence_rate_ratio, adjusted_odds_ratio
from pipelines.statistics.results import (
    RESULT_COLUMNS,
    EstimateResult,
    format_results_table,
    results_table,
    suppress_small_count,
    suppress_small_counts,
)
from pipelines.statistics.sequence_symmetry import (
    SequenceSymmetryResult,
    daily_initiation_counts,
    null_effect_sequence_ratio,
    sequence_ratio_from_counts,
    sequence_symmetry_analysis,
)
from pipelines.statistics.survival import cox_hazard_ratio, kaplan_meier_by_exposure

__all__ = [
    "RESULT_COLUMNS",
    "EstimateResult",
    "MetaAnalysisResult",
    "PropensityScoreAnalysis",
    "PropensityScoreModel",
    "SequenceSymmetryResult",
    "adjusted_incidence_rate_ratio",
    "adjusted_odds_ratio",
    "covariate_balance",
    "cox_hazard_ratio",
    "crude_odds_ratio",
    "crude_risk_ratio",
    "daily_initiation_counts",
    "equipoise",
    "fit_propensity_score",
    "forest_plot",
    "format_results_table",
    "incidence_rate",
    "incidence_rate_from_counts",
    "incidence_rate_ratio",
    "incidence_rate_ratio_from_counts",
    "inverse_probability_weights",
    "kaplan_meier_by_exposure",
    "kaplan_meier_plot",
    "love_plot",
    "mantel_haenszel_odds_ratio",
    "match_on_propensity_score",
    "meta_analysis",
    "meta_analysis_of_results",
    "null_effect_sequence_ratio",
    "odds_ratio_from_counts",
    "preference_scores",
    "propensity_score_analysis",
    "propensity_score_strata",
    "results_table",
    "risk_ratio_from_counts",
    "sequence_ratio_from_counts",
    "sequence_symmetry_analysis",
    "standardized_mean_differences",
    "stratified_standardized_mean_differences",
    "suppress_small_count",
    "suppress_small_counts",
    "trim_by_propensity_score",
    "two_by_two_counts",
]
