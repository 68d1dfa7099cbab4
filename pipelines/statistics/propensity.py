"""Propensity scores for active-comparator new-user designs: fit, diagnose, match, stratify, weight, check balance.

The steps follow OHDSI CohortMethod's defaults where it has one:
1. `fit_propensity_score`: regularised logistic regression (L1 by default, like CohortMethod's Laplace prior; L2 on
   request) with the penalty strength C chosen by cross-validation on log-loss (scikit-learn
   `LogisticRegressionCV`). Covariates are standardised first so the penalty treats them alike. When a group has
   more than 250,000 persons, a random 250,000 of it is used for the fit (CohortMethod's
   `maxCohortSizeForFitting`), and the intercept is shifted back by the log odds of treatment lost in the sampling
   so that the scores of everyone, computed afterwards, are calibrated to the full cohort.
2. `preference_scores` and `equipoise` (Walker et al. 2013): the preference score removes the effect of the
   overall treated share; persons with preference 0.3-0.7 are in "empirical equipoise". A share below about half
   is a warning that the two drugs are used in different people.
3. Adjustment, each returning the data to analyse:
   - `match_on_propensity_score`: 1:1 greedy nearest-neighbour matching on the logit of the PS, without
     replacement, within a caliper of 0.2 standard deviations of the logit (Austin 2011); treated persons are
     taken in random (seeded) order;
   - `propensity_score_strata`: 10 strata at the deciles of the PS of everyone (CohortMethod `stratifyByPs`);
   - `inverse_probability_weights`: stabilised IPT weights, optionally truncated at percentiles; persons with
     extreme scores can first be removed with `trim_by_propensity_score`.
4. `covariate_balance`: standardised mean differences before and after, flagging |SMD| > 0.1.
5. `propensity_score_analysis` runs it all and estimates the hazard ratio: Cox with robust variance clustered
   on the matched pair (matching), stratified Cox (stratification, plus a Mantel-Haenszel odds ratio), or
   weighted Cox with robust variance (weighting).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from pipelines.statistics.crude import mantel_haenszel_odds_ratio
from pipelines.statistics.inputs import (
    EXPOSURE,
    FOLLOWUP_DAYS,
    OUTCOME,
    binary_column,
    covariate_matrix,
    require_columns,
)
from pipelines.statistics.results import EstimateResult
from pipelines.statistics.survival import COX_FIT_NOTE, cox_hazard_ratio

# Column names this module adds to the data it returns.
PROPENSITY_SCORE = "propensity_score"
PREFERENCE_SCORE = "preference_score"
MATCH_ID = "match_id"
PS_STRATUM = "ps_stratum"
IPTW = "iptw"

MAX_PER_GROUP_FOR_FITTING = 250_000  # CohortMethod's maxCohortSizeForFitting
EQUIPOISE_BOUNDS = (0.3, 0.7)  # Walker et al. 2013
CALIPER_SD_OF_LOGIT = 0.2  # Austin 2011
NUMBER_OF_STRATA = 10
IMBALANCE_THRESHOLD = 0.1  # |SMD| above this is flagged as imbalanced
# Forced covariates (and the intercept) are multiplied by this after standardising, which divides their penalty by it
# (by its square for L2): with 1e6 the fit equals the unpenalised one to about 4 digits (tests). liblinear's tolerance
# is tightened to match, since the scaled coefficients are 1e6 times smaller.
UNPENALISED_SCALE = 1e6
LIBLINEAR_TOLERANCE = 1e-7


# ---------------------------------------------------------------------------------------------------------------
# 1. The propensity model
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PropensityScoreModel:
    """A fitted propensity model that can score any DataFrame with the same covariates."""

    covariates: list[str]
    penalty: str
    chosen_c: float  # inverse regularisation strength picked by cross-validation
    persons_used_for_fit: int
    treated_share: float  # share treated among everyone (not only the fitted sample)
    logit_shift: float  # added to the fitted logit to undo the change in treated share caused by sampling
    pipeline: Pipeline
    feature_names: list[str]
    forced_covariates: list[str]  # never penalised (kept in the model whatever C the cross-validation picks)
    feature_scale: np.ndarray  # per feature: UNPENALISED_SCALE for forced covariates, 1 for the others
    fit_warnings: tuple[str, ...] = ()  # scikit-learn convergence warnings of the cross-validation and final fits

    def score(self, data: pd.DataFrame) -> pd.Series:
        """Propensity score (probability of treatment given covariates) for each row of `data`."""
        features = covariate_matrix(data, self.covariates).reindex(columns=self.feature_names, fill_value=0.0)
        linear_predictor = self.pipeline.decision_function(features.to_numpy()) + self.logit_shift
        return pd.Series(expit(linear_predictor), index=data.index, name=PROPENSITY_SCORE)

    def coefficients(self) -> pd.Series:
        """The fitted coefficients per standardised covariate (zeros were dropped by the L1 penalty)."""
        model = self.pipeline[-1]
        return pd.Series(model.coef_[0] * self.feature_scale, index=self.feature_names, name="coefficient")


def _scale_columns(matrix: np.ndarray, factors: np.ndarray) -> np.ndarray:
    return matrix * factors


def fit_propensity_score(
    data: pd.DataFrame,
    covariates: Sequence[str],
    treatment: str = EXPOSURE,
    penalty: str = "l1",
    max_per_group: int = MAX_PER_GROUP_FOR_FITTING,
    folds: int = 5,
    candidate_cs: int | Sequence[float] = 10,
    seed: int = 0,
    forced_covariates: Sequence[str] = (),
) -> PropensityScoreModel:
    """Fit a cross-validated regularised logistic regression of `treatment` (0/1) on `covariates`.

    `penalty` is "l1" (lasso, CohortMethod's default) or "l2" (ridge). `candidate_cs` is a number of C values on
    a log grid from 1e-4 to 1e4, or the list of C values to try. `forced_covariates` (e.g. age and sex) are not
    penalised, like Cyclops' `exclude` in CohortMethod: scikit-learn has no per-covariate penalty, so after
    standardising they are multiplied by UNPENALISED_SCALE, which divides their penalty by that factor (the
    intercept likewise, through liblinear's `intercept_scaling`).
    """
    if penalty not in ("l1", "l2"):
        raise ValueError("penalty must be 'l1' or 'l2'")
    unknown = [name for name in forced_covariates if name not in covariates]
    if unknown:
        raise ValueError(f"forced covariate(s) {unknown} are not among the covariates")
    require_columns(data, [treatment, *covariates])
    treated = binary_column(data, treatment)
    features = covariate_matrix(data, covariates)
    # A categorical forced covariate becomes indicator columns named "<covariate>_<level>".
    forced_columns = [column for column in features.columns
                      if any(column == name or column.startswith(f"{name}_") for name in forced_covariates)]
    feature_scale = np.where(features.columns.isin(forced_columns), UNPENALISED_SCALE, 1.0)
    if treated.nunique() < 2:
        raise ValueError("the propensity model needs both treated and comparator persons")

    # Sample at most max_per_group persons of each group for the fit (for speed, as CohortMethod does).
    rng = np.random.default_rng(seed)
    fit_rows = []
    for group in (0, 1):
        rows = np.flatnonzero(treated.to_numpy() == group)
        if max_per_group and len(rows) > max_per_group:
            rows = np.sort(rng.choice(rows, size=max_per_group, replace=False))
        fit_rows.append(rows)
    fit_rows = np.concatenate(fit_rows)
    treated_share = float(treated.mean())
    sample_share = float(treated.iloc[fit_rows].mean())
    logit_shift = float(logit(treated_share) - logit(sample_share))

    model = LogisticRegressionCV(
        Cs=candidate_cs,
        cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed),
        l1_ratios=(1.0,) if penalty == "l1" else (0.0,),
        # liblinear: coordinate descent, which the large scale of the unpenalised columns does not slow down
        # (saga's step size would shrink with it).
        solver="liblinear",
        intercept_scaling=UNPENALISED_SCALE,
        tol=LIBLINEAR_TOLERANCE,
        scoring="neg_log_loss",
        max_iter=2000,
        random_state=seed,
        use_legacy_attributes=False,
    )
    pipeline = make_pipeline(StandardScaler(),
                             FunctionTransformer(_scale_columns, kw_args={"factors": feature_scale}), model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SklearnConvergenceWarning)
        pipeline.fit(features.to_numpy()[fit_rows], treated.to_numpy()[fit_rows])
    fit_warnings = tuple(dict.fromkeys(str(w.message) for w in caught
                                       if issubclass(w.category, SklearnConvergenceWarning)))
    for other in (w for w in caught if not issubclass(w.category, SklearnConvergenceWarning)):
        warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    return PropensityScoreModel(
        covariates=list(covariates),
        penalty=penalty,
        chosen_c=float(np.atleast_1d(model.C_)[0]),
        persons_used_for_fit=len(fit_rows),
        treated_share=treated_share,
        logit_shift=logit_shift,
        pipeline=pipeline,
        feature_names=list(features.columns),
        forced_covariates=list(forced_covariates),
        feature_scale=feature_scale,
        fit_warnings=fit_warnings,
    )


def preference_scores(propensity: pd.Series, treated_share: float) -> pd.Series:
    """Preference score (Walker et al. 2013): logit(F) = logit(PS) - logit(share treated)."""
    scores = expit(logit(propensity.to_numpy()) - logit(treated_share))
    return pd.Series(scores, index=propensity.index, name=PREFERENCE_SCORE)


def equipoise(preference: pd.Series, bounds: tuple[float, float] = EQUIPOISE_BOUNDS) -> float:
    """Share of persons whose preference score lies within `bounds` (default 0.3-0.7)."""
    lower, upper = bounds
    return float(((preference >= lower) & (preference <= upper)).mean())


# ---------------------------------------------------------------------------------------------------------------
# 2. Matching, stratification, weighting
# ---------------------------------------------------------------------------------------------------------------
def _find_free(parent: list[int], position: int) -> int:
    """Union-find lookup: follow `parent` links to the nearest still-free slot, compressing the path."""
    root = position
    while parent[root] != root:
        root = parent[root]
    while parent[position] != root:
        parent[position], position = root, parent[position]
    return root


def _greedy_nearest_neighbour_pairs(
    treated_logits: np.ndarray, comparator_logits: np.ndarray, caliper: float, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Pairs (treated position, comparator position), each comparator used at most once.

    Treated persons are visited in random order; each takes the nearest unused comparator on the logit scale
    if it lies within the caliper. Comparators are kept sorted, and two union-find arrays jump over used ones,
    so the whole match costs O(n log n) instead of scanning all comparators for each treated person.
    """
    order = np.argsort(comparator_logits, kind="stable")
    sorted_logits = comparator_logits[order]
    n = len(sorted_logits)
    # next_free_right[i]: smallest unused sorted position >= i (n = none left).
    next_free_right = list(range(n + 1))
    # next_free_left[j]: describes sorted position j-1; resolves to the largest unused j' <= j (0 = none left).
    next_free_left = list(range(n + 1))
    pairs = []
    for treated_position in rng.permutation(len(treated_logits)):
        value = treated_logits[treated_position]
        insert_at = int(np.searchsorted(sorted_logits, value))
        right = _find_free(next_free_right, insert_at)
        left = _find_free(next_free_left, insert_at) - 1
        candidates = [p for p in (left, right) if 0 <= p < n]
        if not candidates:
            break  # every comparator is used
        best = min(candidates, key=lambda p: abs(sorted_logits[p] - value))
        if abs(sorted_logits[best] - value) > caliper:
            continue
        next_free_right[best] = best + 1
        next_free_left[best + 1] = best
        pairs.append((int(treated_position), int(order[best])))
    return pairs


def match_on_propensity_score(
    data: pd.DataFrame,
    treatment: str = EXPOSURE,
    propensity_score: str = PROPENSITY_SCORE,
    caliper_sd: float = CALIPER_SD_OF_LOGIT,
    seed: int = 0,
) -> pd.DataFrame:
    """1:1 nearest-neighbour matching on the logit of the PS without replacement, caliper in SDs of the logit.

    Returns the matched persons (rows of `data`, original index kept) with a `match_id` column numbering the
    pairs. Treated persons without a comparator within the caliper are dropped.
    """
    require_columns(data, [treatment, propensity_score])
    treated = binary_column(data, treatment).to_numpy() == 1
    logits = logit(np.clip(data[propensity_score].to_numpy(dtype=float), 1e-12, 1 - 1e-12))
    caliper = caliper_sd * float(np.std(logits, ddof=1))
    treated_rows = np.flatnonzero(treated)
    comparator_rows = np.flatnonzero(~treated)
    pairs = _greedy_nearest_neighbour_pairs(
        logits[treated_rows], logits[comparator_rows], caliper, np.random.default_rng(seed)
    )
    pairs.sort()  # stable output: pairs in order of the treated person's row
    rows = []
    match_ids = []
    for match_id, (treated_position, comparator_position) in enumerate(pairs):
        rows += [treated_rows[treated_position], comparator_rows[comparator_position]]
        match_ids += [match_id, match_id]
    matched = data.iloc[rows].copy()
    matched[MATCH_ID] = match_ids
    return matched


def propensity_score_strata(propensity: pd.Series, number_of_strata: int = NUMBER_OF_STRATA) -> pd.Series:
    """Stratum number 0..k-1 at the quantiles of the PS of everyone (equal-sized strata)."""
    strata = pd.qcut(propensity, number_of_strata, labels=False, duplicates="drop")
    if strata.isna().all():
        # qcut leaves every row without a stratum when all scores are equal (a model that kept no covariate).
        # No count of persons in the message: it is published as the row's not_estimable_reason and logged.
        raise ValueError("no propensity score strata: the scores take too few distinct values")
    return strata.rename(PS_STRATUM)


def inverse_probability_weights(
    treatment: pd.Series,
    propensity: pd.Series,
    stabilized: bool = True,
    truncate_percentiles: tuple[float, float] | None = None,
) -> pd.Series:
    """Inverse probability of treatment weights (average treatment effect in everyone).

    Unstabilised: 1/PS for treated, 1/(1-PS) for comparators. Stabilised (default) multiplies these by the
    share treated (resp. not treated), so the weights average about 1 and the weighted sample keeps its size.
    `truncate_percentiles=(1, 99)` caps the weights at their 1st and 99th percentiles.
    """
    treated = treatment.astype(int).to_numpy() == 1
    ps = propensity.to_numpy(dtype=float)
    weights = np.where(treated, 1 / ps, 1 / (1 - ps))
    if stabilized:
        share = treated.mean()
        weights *= np.where(treated, share, 1 - share)
    if truncate_percentiles is not None:
        lower, upper = np.percentile(weights, truncate_percentiles)
        weights = np.clip(weights, lower, upper)
    return pd.Series(weights, index=propensity.index, name=IPTW)


def trim_by_propensity_score(
    data: pd.DataFrame, bounds: tuple[float, float] = (0.05, 0.95), propensity_score: str = PROPENSITY_SCORE
) -> pd.DataFrame:
    """Keep only persons whose PS lies within `bounds` (removes those treated almost always or almost never)."""
    lower, upper = bounds
    score = data[propensity_score]
    return data[(score >= lower) & (score <= upper)]


# ---------------------------------------------------------------------------------------------------------------
# 3. Covariate balance
# ---------------------------------------------------------------------------------------------------------------
def standardized_mean_differences(
    data: pd.DataFrame,
    covariates: Sequence[str],
    treatment: str = EXPOSURE,
    weights: str | None = None,
) -> pd.DataFrame:
    """Per covariate: (weighted) means in each group and the standardised mean difference.

    SMD = (mean treated - mean comparator) / sqrt((variance treated + variance comparator) / 2), with weighted
    means and variances when `weights` names a weight column (Austin & Stuart 2015). Categorical covariates are
    shown per category (indicator columns).
    """
    require_columns(data, [treatment, *covariates] + ([weights] if weights else []))
    treated = binary_column(data, treatment).to_numpy() == 1
    features = covariate_matrix(data, covariates)
    weight = data[weights].to_numpy(dtype=float) if weights else np.ones(len(data))
    rows = []
    for name in features.columns:
        values = features[name].to_numpy()
        mean_t, var_t = _weighted_mean_and_variance(values[treated], weight[treated])
        mean_c, var_c = _weighted_mean_and_variance(values[~treated], weight[~treated])
        spread = np.sqrt((var_t + var_c) / 2)
        smd = (mean_t - mean_c) / spread if spread > 0 else 0.0
        rows.append({"covariate": name, "mean_treated": mean_t, "mean_comparator": mean_c, "smd": smd})
    table = pd.DataFrame(rows)
    table["imbalanced"] = table["smd"].abs() > IMBALANCE_THRESHOLD
    return table


def _weighted_mean_and_variance(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    if len(values) == 0 or weights.sum() == 0:
        return float("nan"), float("nan")
    mean = np.average(values, weights=weights)
    variance = np.average((values - mean) ** 2, weights=weights)
    return float(mean), float(variance)


def covariate_balance(
    before: pd.DataFrame,
    after: pd.DataFrame,
    covariates: Sequence[str],
    treatment: str = EXPOSURE,
    weights_after: str | None = None,
) -> pd.DataFrame:
    """SMDs before and after adjustment side by side, with flags for |SMD| > 0.1.

    `before` is the unadjusted cohort; `after` the matched persons, or the weighted cohort with `weights_after`
    naming its weight column. For stratification, use `stratified_standardized_mean_differences` for `after`.
    """
    unadjusted = standardized_mean_differences(before, covariates, treatment)
    adjusted = standardized_mean_differences(after, covariates, treatment, weights=weights_after)
    return _side_by_side(unadjusted, adjusted)


def stratified_standardized_mean_differences(
    data: pd.DataFrame, covariates: Sequence[str], strata: str = PS_STRATUM, treatment: str = EXPOSURE
) -> pd.DataFrame:
    """SMDs after stratification: each stratum is weighted to the cohort's stratum sizes.

    Each person gets weight (stratum size / persons of their group in the stratum), which is the weighting a
    stratified estimate implies (ATE-type). Strata with only one group get no weight.
    """
    weighted = data.assign(_stratum_weight=stratum_weights(data, strata, treatment))
    return standardized_mean_differences(weighted, covariates, treatment, weights="_stratum_weight")


def stratum_weights(data: pd.DataFrame, strata: str = PS_STRATUM, treatment: str = EXPOSURE) -> pd.Series:
    """Per person: stratum size / persons of their group in the stratum (0 in strata with only one group)."""
    # Grouping by a column (not a Series) keeps the rows aligned whatever the frame's index is.
    grouped = data.assign(_treated=np.asarray(binary_column(data, treatment)))
    stratum_size = grouped.groupby(strata)["_treated"].transform("size")
    group_size = grouped.groupby([strata, "_treated"])["_treated"].transform("size")
    both_groups = grouped.groupby(strata)["_treated"].transform(lambda s: s.nunique() == 2)
    return pd.Series(np.where(both_groups, stratum_size / group_size, 0.0), index=data.index)


def effective_sample_size(treatment: pd.Series, weights: pd.Series) -> float:
    """Kish's effective sample size, (sum w)^2 / sum w^2, of each group, added up (persons with weight 1: n)."""
    total = 0.0
    treated = treatment.to_numpy() == 1
    values = weights.to_numpy(dtype=float)
    for group in (treated, ~treated):
        w = values[group]
        if (w ** 2).sum() > 0:
            total += float(w.sum() ** 2 / (w ** 2).sum())
    return total


def _side_by_side(unadjusted: pd.DataFrame, adjusted: pd.DataFrame) -> pd.DataFrame:
    table = unadjusted.merge(adjusted, on="covariate", suffixes=("_before", "_after"))
    return table[
        [
            "covariate",
            "mean_treated_before",
            "mean_comparator_before",
            "smd_before",
            "imbalanced_before",
            "mean_treated_after",
            "mean_comparator_after",
            "smd_after",
            "imbalanced_after",
        ]
    ]


# ---------------------------------------------------------------------------------------------------------------
# 4. The whole analysis
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PropensityScoreAnalysis:
    """Everything a propensity-score analysis produced, for reporting and diagnostics."""

    adjustment: str  # "matching", "stratification" or "weighting"
    hazard_ratio: EstimateResult
    balance: pd.DataFrame  # covariate_balance(): SMD before/after with |SMD| > 0.1 flags
    equipoise: float  # share of everyone with preference score 0.3-0.7
    model: PropensityScoreModel
    analysed: pd.DataFrame  # the persons analysed, with propensity/preference score and match_id/stratum/weight
    mantel_haenszel_odds_ratio: EstimateResult | None = None  # stratification only

    @property
    def imbalanced_covariates(self) -> list[str]:
        """Covariates still imbalanced (|SMD| > 0.1) after adjustment."""
        return self.balance.loc[self.balance["imbalanced_after"], "covariate"].tolist()


def outcome_method(
    adjustment: str,
    caliper_sd: float = CALIPER_SD_OF_LOGIT,
    number_of_strata: int = NUMBER_OF_STRATA,
    stabilized: bool = True,
    trim_bounds: tuple[float, float] | None = None,
    truncate_percentiles: tuple[float, float] | None = None,
) -> str:
    """The method text of a propensity-score hazard ratio (also for a row that could not be estimated)."""
    if adjustment == "matching":
        return (f"Cox PH in 1:1 PS-matched cohort (caliper {caliper_sd} SD of logit PS; robust variance clustered on "
                f"pair; {COX_FIT_NOTE})")
    if adjustment == "stratification":
        return f"Cox PH stratified on {number_of_strata} PS strata ({COX_FIT_NOTE})"
    details = ["stabilised" if stabilized else "unstabilised"]
    if trim_bounds:
        details.append(f"PS trimmed to {trim_bounds[0]}-{trim_bounds[1]}")
    if truncate_percentiles:
        details.append(f"weights truncated at percentiles {truncate_percentiles[0]}/{truncate_percentiles[1]}")
    return f"Cox PH weighted by IPTW ({', '.join(details)}; robust variance; {COX_FIT_NOTE})"


def propensity_score_analysis(
    data: pd.DataFrame,
    covariates: Sequence[str],
    adjustment: str = "matching",
    treatment: str = EXPOSURE,
    outcome: str = OUTCOME,
    followup_days: str = FOLLOWUP_DAYS,
    penalty: str = "l1",
    caliper_sd: float = CALIPER_SD_OF_LOGIT,
    number_of_strata: int = NUMBER_OF_STRATA,
    stabilized: bool = True,
    truncate_percentiles: tuple[float, float] | None = None,
    trim_bounds: tuple[float, float] | None = None,
    max_per_group: int = MAX_PER_GROUP_FOR_FITTING,
    seed: int = 0,
    model: PropensityScoreModel | None = None,
    forced_covariates: Sequence[str] = (),
) -> PropensityScoreAnalysis:
    """Fit the PS, adjust by `adjustment` ("matching", "stratification" or "weighting"), check balance, estimate the HR.

    Expects one row per person: `treatment` 0/1 (target vs comparator drug), `outcome` 0/1, `followup_days`
    and the covariates. `trim_bounds` (e.g. (0.05, 0.95)) removes persons with extreme PS before weighting.
    `model`: an already fitted propensity model to reuse (e.g. to compare matching, stratification and
    weighting on the same scores); fitted here when None, with `forced_covariates` unpenalised.

    The hazard ratio carries the diagnostics: the PS model's AUC (c statistic) over everyone scored, the effective
    sample size (Kish) of the persons analysed with their matching/stratum/IPT weights, and whether every covariate
    has |SMD| <= 0.1 after adjustment (`covariates_balanced`; the others are listed in `imbalanced_covariates`).
    """
    if adjustment not in ("matching", "stratification", "weighting"):
        raise ValueError("adjustment must be 'matching', 'stratification' or 'weighting'")
    require_columns(data, [treatment, outcome, followup_days, *covariates])
    if model is None:
        model = fit_propensity_score(
            data, covariates, treatment=treatment, penalty=penalty, max_per_group=max_per_group, seed=seed,
            forced_covariates=forced_covariates,
        )
    scored = data.copy()
    scored[PROPENSITY_SCORE] = model.score(scored)
    scored[PREFERENCE_SCORE] = preference_scores(scored[PROPENSITY_SCORE], model.treated_share)
    share_in_equipoise = equipoise(scored[PREFERENCE_SCORE])
    columns = {"exposure": treatment, "outcome": outcome, "followup_days": followup_days}
    mantel_haenszel = None

    if adjustment == "matching":
        analysed = match_on_propensity_score(scored, treatment, caliper_sd=caliper_sd, seed=seed)
        balance = covariate_balance(scored, analysed, covariates, treatment)
        analysis_weights = pd.Series(1.0, index=analysed.index)
        hazard_ratio = cox_hazard_ratio(
            analysed,
            cluster=MATCH_ID,
            method=outcome_method("matching", caliper_sd=caliper_sd),
            **columns,
        )
    elif adjustment == "stratification":
        analysed = scored.assign(**{PS_STRATUM: propensity_score_strata(scored[PROPENSITY_SCORE], number_of_strata)})
        balance = _side_by_side(
            standardized_mean_differences(scored, covariates, treatment),
            stratified_standardized_mean_differences(analysed, covariates, PS_STRATUM, treatment),
        )
        analysis_weights = stratum_weights(analysed, PS_STRATUM, treatment)
        hazard_ratio = cox_hazard_ratio(
            analysed,
            strata=PS_STRATUM,
            method=outcome_method("stratification", number_of_strata=number_of_strata),
            **columns,
        )
        mantel_haenszel = mantel_haenszel_odds_ratio(analysed, PS_STRATUM, exposure=treatment, outcome=outcome)
    else:
        analysed = trim_by_propensity_score(scored, trim_bounds) if trim_bounds else scored
        analysed = analysed.assign(
            **{
                IPTW: inverse_probability_weights(
                    analysed[treatment], analysed[PROPENSITY_SCORE], stabilized, truncate_percentiles
                )
            }
        )
        balance = covariate_balance(scored, analysed, covariates, treatment, weights_after=IPTW)
        analysis_weights = analysed[IPTW]
        hazard_ratio = cox_hazard_ratio(
            analysed,
            weights=IPTW,
            method=outcome_method("weighting", stabilized=stabilized, trim_bounds=trim_bounds,
                                  truncate_percentiles=truncate_percentiles),
            **columns,
        )
    imbalanced = balance[balance["imbalanced_after"]]
    hazard_ratio = replace(
        hazard_ratio,
        ps_auc=float(roc_auc_score(binary_column(scored, treatment), scored[PROPENSITY_SCORE])),
        effective_sample_size=effective_sample_size(binary_column(analysed, treatment), analysis_weights),
        covariates_balanced=imbalanced.empty,
        imbalanced_covariates=", ".join(f"{row.covariate} (SMD {row.smd_after:.3f})"
                                        for row in imbalanced.itertuples()) or None,
    )
    return PropensityScoreAnalysis(
        adjustment=adjustment,
        hazard_ratio=hazard_ratio,
        balance=balance,
        equipoise=share_in_equipoise,
        model=model,
        analysed=analysed,
        mantel_haenszel_odds_ratio=mantel_haenszel,
    )
