"""Run a study's association analyses: per-person data pulled once from cohort.study_population, estimates out.

For a `first_visit` study (the seed's screening question) every exposure is compared with persons unexposed at
index: crude OR and RR, incidence rates and their ratio, an adjusted OR and a Cox HR adjusted for age, sex, the
study's covariates and co-medication (the study's other drug exposures at index: drugs for the same disease are
prescribed together, so each confounds the others). A co-medication nested in the exposure (hydrochlorothiazide
within thiazides) or containing it is left out of that exposure's model. When the study says so, the unexposed are censored the day before they start the exposure, so
the comparison stays "exposed vs not (yet) exposed".

For a `new_user` study (active comparator) the target and comparator are compared crude, with a Cox model, and
with a propensity score (1:1 matching on the logit with caliper 0.2 SD, 10 strata, stabilised IPTW), with follow-up
censored when a person starts the other drug (on treatment).

Sequence symmetry analyses use first dates from phenotype.person_summary over the whole extract (not the cohort):
each drug exposure of the studies against incident leg cramps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from pipelines.cohorts.study import StudyDefinition
from pipelines.sql_quoting import quote_identifier
from pipelines.statistics.crude import crude_odds_ratio, crude_risk_ratio
from pipelines.statistics.estimability import judged
from pipelines.statistics.propensity import outcome_method, propensity_score_analysis
from pipelines.statistics.rates import incidence_rate, incidence_rate_ratio
from pipelines.statistics.regression import adjusted_odds_ratio
from pipelines.statistics.results import EstimateResult
from pipelines.statistics.sequence_symmetry import sequence_symmetry_analysis
from pipelines.statistics.survival import HAZARD_RATIO_ESTIMAND, cox_hazard_ratio
from pipelines.tables import STUDY_POPULATION

# Regression models on very large cohorts are fitted on a random sample of persons (CohortMethod samples its
# propensity model the same way); counts, rates and crude ratios always use everyone.
MAX_PERSONS_FOR_MODELS = 250_000
DRUG_DOMAIN_WINDOW = "current_use"
# 0/1 covariates are held as one byte per person (the models convert their sample to floats): at 10 million patients
# the cohort has millions of persons and dozens of covariates.
COVARIATE_FLAG = "int8"


@dataclass
class StudyAnalysis:
    study_id: str
    results: list[tuple[str, str, EstimateResult]] = field(default_factory=list)  # (exposure, outcome, result)
    balance: pd.DataFrame | None = None  # PS covariate balance (new-user designs)
    equipoise: float | None = None
    km_data: pd.DataFrame | None = None  # exposure/outcome/followup_days for the Kaplan-Meier plot
    km_exposure: str | None = None
    km_labels: tuple[str, str] = ("Unexposed", "Exposed")  # (exposure 0, exposure 1)
    notes: list[str] = field(default_factory=list)


# The columns of cohort.study_population the analyses read, besides the study's own phenotype columns.
POPULATION_COLUMNS = ("index_date", "age_at_index", "sex", "time_at_risk_start", "followup_end", "outcome_flag",
                      "outcome_date", "treatment")


def study_population(con: duckdb.DuckDBPyConnection, study: StudyDefinition) -> pd.DataFrame:
    """The study's per-person rows (one per person), the only person-level data pandas sees: the columns the
    analyses read and the study's own phenotype columns (<phenotype>, <phenotype>_first_date), not the other
    studies' (NULL for this study) nor the person ids (millions of Python strings at 10 million patients)."""
    present = {name for (name,) in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name || '.' || table_name = ?", [STUDY_POPULATION]
    ).fetchall()}
    phenotype_columns = [name for phenotype in dict.fromkeys(study.phenotype_ids)
                         for name in (phenotype, f"{phenotype}_first_date") if name in present]
    columns = ", ".join(quote_identifier(name) for name in (*POPULATION_COLUMNS, *phenotype_columns))
    # Ordered: sampling, cross-validation folds and matching ties follow row positions, and without ORDER BY DuckDB
    # returns the rows in whatever order its threads finish.
    return con.execute(f"SELECT {columns} FROM {STUDY_POPULATION} WHERE study_id = ? ORDER BY person_id",
                       [study.id]).df()


def _forced_covariates(covariate_names: list[str]) -> list[str]:
    """The demographic covariates (age, sex): never penalised away in a propensity model."""
    return [name for name in ("age", "female") if name in covariate_names]


def _covariate_frame(population: pd.DataFrame, study: StudyDefinition) -> tuple[pd.DataFrame, list[str]]:
    """Model covariates as numeric columns: age, female, and the study's covariate phenotypes."""
    frame = pd.DataFrame(index=population.index)
    names: list[str] = []
    if "age" in study.demographic_covariates:
        frame["age"] = population["age_at_index"].astype(float)
        names.append("age")
    if "sex" in study.demographic_covariates:
        frame["female"] = (population["sex"] == "F").astype(COVARIATE_FLAG)
        names.append("female")
    for reference in study.covariates:
        column = reference.phenotype
        frame[column] = population[column].fillna(False).astype(COVARIATE_FLAG)
        names.append(column)
    # A covariate with no variation cannot be estimated and only breaks the fit.
    names = [n for n in names if frame[n].nunique() > 1]
    return frame, names


def _censored_at(population: pd.DataFrame, censor_date: pd.Series) -> pd.DataFrame:
    """Follow-up and outcome when follow-up also ends the day before `censor_date` (NaT = not censored)."""
    start = pd.to_datetime(population["time_at_risk_start"])
    end = pd.to_datetime(population["followup_end"])
    censor = pd.to_datetime(censor_date) - pd.Timedelta(days=1)
    end = end.where(censor.isna() | (censor >= end), censor)
    outcome_date = pd.to_datetime(population["outcome_date"])
    outcome = population["outcome_flag"].astype(bool) & outcome_date.notna() & (outcome_date <= end)
    last_day = outcome_date.where(outcome, end)
    days = (last_day - start).dt.days + 1
    return pd.DataFrame({"outcome": outcome.astype(int), "followup_days": days}, index=population.index)


def _sample(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    if len(frame) <= MAX_PERSONS_FOR_MODELS:
        return frame
    return frame.sample(n=MAX_PERSONS_FOR_MODELS, random_state=seed)


def _estimate_or_note(results: list, label: str, notes: list[str], estimate) -> None:
    """Run one estimator; a model that cannot be fitted (no events, separation) becomes a note, not a failure."""
    try:
        results.append(estimate())
    except Exception as error:  # noqa: BLE001 - any fitting failure is reported, the others still run
        notes.append(f"{label}: not estimable ({type(error).__name__}: {str(error).splitlines()[0][:160]})")


def _outcome_model_covariates(frame: pd.DataFrame, names: list[str], dropped: set[str]) -> list[str]:
    """The covariates an outcome model can estimate: a 0/1 covariate whose holders (or non-holders) have no outcome
    has an infinite coefficient (monotone likelihood, Heinze & Schemper 2001) and stops the model converging, so it is
    left out of that model (and added to `dropped`, for the notes)."""
    events = frame["outcome"].astype(bool)
    kept = []
    for name in names:
        values = frame[name]
        if values.nunique() == 2 and set(values.unique()) <= {0, 1}:
            held = values.astype(bool)
            if not (events & held).any() or not (events & ~held).any():
                dropped.add(name)
                continue
        kept.append(name)
    return kept


def _nested(a: pd.Series, b: pd.Series) -> bool:
    """True when everyone with `a` has `b` or everyone with `b` has `a` (one phenotype nested in the other)."""
    return bool((~a | b).all() or (~b | a).all())


def analyse_first_visit_study(population: pd.DataFrame, study: StudyDefinition) -> StudyAnalysis:
    analysis = StudyAnalysis(study.id)
    covariates, study_covariates = _covariate_frame(population, study)
    outcome = study.outcome.phenotype
    medications = drug_exposures(study)
    without_events: set[str] = set()
    for drug in medications:
        covariates[drug] = population[drug].fillna(False).astype(COVARIATE_FLAG)
    for reference in study.exposures:
        exposure = reference.phenotype
        exposed = population[exposure].fillna(False).astype(bool)
        co_medication = [d for d in medications if d != exposure and covariates[d].nunique() > 1
                         and not _nested(exposed, covariates[d].astype(bool))]
        covariate_names = [*study_covariates, *co_medication]
        censor = None
        if study.time_at_risk.censor_unexposed_at_exposure_start:
            first = pd.to_datetime(population[f"{exposure}_first_date"])
            censor = first.where(~exposed & (first > pd.to_datetime(population["index_date"])))
        followed = _censored_at(population, censor if censor is not None else pd.Series(pd.NaT,
                                                                                      index=population.index))
        frame = pd.concat([followed, covariates[covariate_names]], axis=1)
        frame["exposure"] = exposed.astype(int)
        frame = frame[frame["followup_days"] > 0]
        if frame["exposure"].nunique() < 2:
            analysis.notes.append(f"{exposure}: nobody (or everybody) exposed at index; no estimate")
            continue
        results: list[EstimateResult] = []
        notes = analysis.notes
        _estimate_or_note(results, f"{exposure} crude OR", notes, lambda: crude_odds_ratio(frame))
        _estimate_or_note(results, f"{exposure} crude RR", notes, lambda: crude_risk_ratio(frame))
        _estimate_or_note(results, f"{exposure} rate exposed", notes,
              lambda: incidence_rate(frame[frame.exposure == 1], group="exposed"))
        _estimate_or_note(results, f"{exposure} rate unexposed", notes,
              lambda: incidence_rate(frame[frame.exposure == 0], group="unexposed", unexposed=True))
        _estimate_or_note(results, f"{exposure} IRR", notes, lambda: incidence_rate_ratio(frame))
        model_frame = _sample(frame, study.seed)
        covariate_names = _outcome_model_covariates(model_frame, covariate_names, without_events)
        _estimate_or_note(results, f"{exposure} adjusted OR", notes,
              lambda: adjusted_odds_ratio(model_frame, covariate_names))
        _estimate_or_note(results, f"{exposure} Cox HR", notes, lambda: cox_hazard_ratio(model_frame, covariate_names))
        analysis.results += [(exposure, outcome, r) for r in results]
        if exposure == study.table1_by:
            analysis.km_data, analysis.km_exposure = frame[["exposure", "outcome", "followup_days"]], exposure
            analysis.km_labels = (f"not {exposure}", exposure)
    _note_left_out(analysis, without_events)
    return analysis


def _note_left_out(analysis: StudyAnalysis, without_events: set[str]) -> None:
    if without_events:
        analysis.notes.append("left out of the outcome models where their holders or non-holders had no outcome "
                              f"(infinite coefficient): {', '.join(sorted(without_events))}")


def analyse_new_user_study(population: pd.DataFrame, study: StudyDefinition) -> StudyAnalysis:
    analysis = StudyAnalysis(study.id)
    target, comparator = study.index.target, study.index.comparator
    outcome = study.outcome.phenotype
    index = pd.to_datetime(population["index_date"])
    treated = population["treatment"].astype(int)
    # On treatment: follow-up ends when a person starts the other drug.
    other_start = pd.to_datetime(population[f"{comparator}_first_date"]).where(treated == 1,
                                                                             pd.to_datetime(population[f"{target}_first_date"]))
    other_start = other_start.where(other_start > index)
    covariates, covariate_names = _covariate_frame(population, study)
    frame = pd.concat([_censored_at(population, other_start), covariates[covariate_names]], axis=1)
    frame["exposure"] = treated
    frame = frame[frame["followup_days"] > 0]
    if frame["exposure"].nunique() < 2:
        analysis.notes.append("target or comparator group is empty; no estimate")
        return analysis
    results: list[EstimateResult] = []
    notes = analysis.notes
    _estimate_or_note(results, "crude OR", notes, lambda: crude_odds_ratio(frame))
    _estimate_or_note(results, "crude RR", notes, lambda: crude_risk_ratio(frame))
    _estimate_or_note(results, "rate target", notes,
          lambda: incidence_rate(frame[frame.exposure == 1], group=f"target ({target})"))
    _estimate_or_note(results, "rate comparator", notes,
          lambda: incidence_rate(frame[frame.exposure == 0], group=f"comparator ({comparator})", unexposed=True))
    _estimate_or_note(results, "IRR", notes, lambda: incidence_rate_ratio(frame))
    without_events: set[str] = set()
    outcome_covariates = _outcome_model_covariates(frame, covariate_names, without_events)
    _note_left_out(analysis, without_events)
    _estimate_or_note(results, "Cox HR", notes, lambda: cox_hazard_ratio(frame, outcome_covariates))
    model = None
    forced = _forced_covariates(covariate_names)
    for adjustment in ("matching", "stratification", "weighting"):
        try:
            ps = propensity_score_analysis(frame, covariate_names, adjustment=adjustment, model=model,
                                           seed=study.seed, forced_covariates=forced)
        except Exception as error:  # noqa: BLE001 - e.g. a score without spread cannot be cut into strata
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            notes.append(f"propensity score {adjustment}: not estimable ({reason})")
            results.append(EstimateResult(method=outcome_method(adjustment), estimand=HAZARD_RATIO_ESTIMAND,
                                          estimate=None, ci_lower=None, ci_upper=None, p_value=None,
                                          not_estimable_reason=reason))
            continue
        if model is None and ps.model.fit_warnings:
            notes.append(f"propensity model (C = {ps.model.chosen_c:.3g}): scikit-learn warned during the "
                         f"cross-validated fit: {'; '.join(ps.model.fit_warnings)}")
        model = ps.model
        results.append(ps.hazard_ratio)
        if not ps.hazard_ratio.covariates_balanced:
            notes.append(f"propensity score {adjustment}: covariates still imbalanced after adjustment "
                         f"(|SMD| > 0.1): {ps.hazard_ratio.imbalanced_covariates}")
        if adjustment == "matching":
            analysis.balance, analysis.equipoise = ps.balance, ps.equipoise
    exposure_label = f"{target} vs {comparator}"
    analysis.results += [(exposure_label, outcome, r) for r in results]
    analysis.km_data, analysis.km_exposure = frame[["exposure", "outcome", "followup_days"]], exposure_label
    analysis.km_labels = (f"{comparator} (comparator)", f"{target} (target)")
    analysis.notes.append("follow-up is censored when a person starts the other drug (on treatment)")
    return analysis


def analyse_study(con: duckdb.DuckDBPyConnection, study: StudyDefinition) -> StudyAnalysis:
    population = study_population(con, study)
    if population.empty:
        analysis = StudyAnalysis(study.id)
        analysis.notes.append("the study population is empty; no estimates")
        return analysis
    if study.index.rule == "new_user":
        return analyse_new_user_study(population, study)
    return analyse_first_visit_study(population, study)


# ---------------------------------------------------------------------------------------------------------------
# Sequence symmetry over the whole extract
# ---------------------------------------------------------------------------------------------------------------
def sequence_symmetry_for_drugs(con: duckdb.DuckDBPyConnection, drug_phenotypes: list[str],
                                marker: str = "leg_cramps", window_days: int = 365,
                                washout_days: int = 365,
                                notes: list[str] | None = None) -> list[tuple[str, str, EstimateResult]]:
    """Crude and trend-adjusted sequence ratios of each drug's first fill against the marker's first record.

    Which first dates count (Hallas 1996; Garrison 2012 required a year of data before and after):
    - a first date is an initiation only when the person was observed for `washout_days` before it in the same
      observation period; otherwise it may be prevalent use, or a prevalent condition, first recorded at the start
      of observation;
    - an index initiation also needs the whole window before it to lie after that washout (observed for
      washout + window days), so that a marker in the window before it could have been counted as incident.
      Without this, markers in the first washout year are dropped before early index dates but not after them:
      marker-first pairs go missing and every sequence ratio is pushed up (6-11% on generated extracts);
    - an index initiation also needs `window_days` of observation after it, so both sides of the window are seen.
    Pulls one row per person (first dates only).
    """
    def first_dates_with_observation(phenotype_id: str) -> pd.DataFrame:
        """Each person's first date with the days observed without a break before and after it.

        Periods containing the date all overlap there, so their union is one stretch of observation: from the
        earliest start to the latest end (overlapping periods are duplicated enrolment records)."""
        return con.execute(
            """
            SELECT s.person_id, s.first_date,
                   datediff('day', min(op.observation_period_start_date), s.first_date) AS days_observed_before,
                   datediff('day', s.first_date, max(op.observation_period_end_date)) AS days_observed_after
            FROM phenotype.person_summary s
            JOIN staging.observation_period op
              ON op.person_id = s.person_id
             AND s.first_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date
            WHERE s.phenotype_id = $phenotype
            GROUP BY s.person_id, s.first_date
            """, {"phenotype": phenotype_id}).df()

    markers = first_dates_with_observation(marker)
    markers = markers[markers["days_observed_before"] >= washout_days]
    if markers.empty:
        return []
    marker_by_day = pd.to_datetime(markers["first_date"]).dt.normalize().value_counts().sort_index()
    marker_dates = markers.set_index("person_id")["first_date"]
    rows = []
    for drug in drug_phenotypes:
        initiators = first_dates_with_observation(drug)
        initiators = initiators[(initiators["days_observed_before"] >= washout_days + window_days)
                                & (initiators["days_observed_after"] >= window_days)]
        if initiators.empty:
            continue
        pairs = pd.DataFrame({"index_date": initiators["first_date"].values,
                              "marker_date": marker_dates.reindex(initiators["person_id"]).values})
        try:
            result = sequence_symmetry_analysis(pairs, window_days=window_days,
                                                marker_initiations_by_day=marker_by_day)
        except (ZeroDivisionError, ValueError, FloatingPointError) as error:
            # Too few initiations to estimate (tiny extracts): say so instead of failing the run.
            if notes is not None:
                notes.append(f"{drug}: sequence ratio not estimable ({type(error).__name__}: {error})")
            continue
        rows += [(drug, marker, result.crude), (drug, marker, result.adjusted)]
    return rows


def drug_exposures(study: StudyDefinition) -> list[str]:
    """The study's drug exposures (those assessed as current use at index)."""
    return [r.phenotype for r in study.exposures if r.window.kind == DRUG_DOMAIN_WINDOW]


def results_frame(study_id: str, rows: list[tuple[str, str, EstimateResult]], seed: int | None = None) -> pd.DataFrame:
    """The rows to publish. Each passes the estimability rule once more, so nothing that fails it (an infinite
    ratio, an estimate outside its interval) can reach results.associations whatever produced it. `seed`: the
    study's seed (None where no step is random, as in sequence symmetry)."""
    records = []
    for exposure, outcome, result in rows:
        records.append({"study_id": study_id, "exposure": exposure, "outcome": outcome, **judged(result).to_row(),
                        "seed": seed})
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame = frame.replace({np.nan: None})
    return frame
