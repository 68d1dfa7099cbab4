"""Run a study's association analyses: per-person data pulled once from cohort.study_population, estimates out.

For a `first_visit` study (the seed's screening question) every exposure is compared with persons unexposed at
index: incidence rates and their ratio, risks at the study's horizon (Kaplan-Meier) with their difference and ratio,
and a Cox HR adjusted for age, sex, the
study's covariates and co-medication (the study's other drug exposures at index: drugs for the same disease are
prescribed together, so each confounds the others). A co-medication nested in the exposure (hydrochlorothiazide
within thiazides) or containing it is left out of that exposure's model. When the study says so, the unexposed are censored the day before they start the exposure, so
the comparison stays "exposed vs not (yet) exposed".

For a `new_user` study (active comparator) the target and comparator are compared by rates, risks at the horizon,
a Cox model, and with a propensity score (1:1 matching on the logit with caliper 0.2 SD, 10 strata, stabilised
IPTW), twice: with intention-to-treat follow-up and with on-treatment follow-up (censored after
cohort.study_population.on_treatment_end, discontinuation + grace or a switch), as LEGEND publishes both.

No crude odds or risk ratio and no logistic odds ratio is published: they ignore person-time (CohortMethod publishes
hazard and rate ratios; risks only at a stated horizon, as in the target-trial literature). Each result carries its
analysis id (results.ANALYSES) and each analysis its attrition from the cohort to the persons its estimator used.

A study with `negative_control_outcomes` also estimates its primary analysis for each control outcome with the same
design (negative_control_estimates), and one with `negative_control_exposures` for each control drug against its
outcome (add_negative_control_exposure_estimates); the primary estimates are calibrated on both
(calibrate_primary_analysis, OHDSI EmpiricalCalibration) and every adjusted ratio carries its E-values (VanderWeele
& Ding 2017).

The exposures' analyses of a first_visit study (its screening, again for each negative control and sensitivity
analysis) and its time-varying Cox models are fitted in worker processes (statistics/workers.py), their rows returned
in the exposures' order.

Sequence symmetry analyses use first dates from phenotype.person_summary over the whole extract (not the cohort):
each drug exposure of the studies against incident leg cramps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from pipelines.cohorts.study import SensitivityAnalysis, StudyDefinition
from pipelines.engine import Engine, as_engine
from pipelines.sql import read_sql
from pipelines.sql_quoting import quote_identifier
from pipelines.statistics.competing_risks import cumulative_incidence_at_horizon
from pipelines.statistics.empirical_calibration import (NullDistribution, calibrated_confidence_interval,
                                                        calibrated_p_value, fit_null)
from pipelines.statistics.estimability import judged
from pipelines.statistics.evalues import e_values
from pipelines.statistics.propensity import outcome_method, propensity_score_analysis
from pipelines.statistics.rates import incidence_rate, incidence_rate_ratio
from pipelines.statistics.results import (ANALYSES, COHORT_STEP, CALIBRATION_COLUMNS, CALIBRATION_NOTE_COLUMN, E_VALUE_COLUMNS,
                                          EstimateResult)
from pipelines.statistics.risks import risks_at_horizon
from pipelines.statistics.sequence_symmetry import sequence_symmetry_analysis
from pipelines.statistics.survival import HAZARD_RATIO_ESTIMAND, cox_hazard_ratio
from pipelines.statistics.time_varying import counting_process_cox
from pipelines.statistics.workers import SERIAL, FitPool, PackedFrame, workers_for
from pipelines.tables import STUDY_POPULATION

# Regression models on very large cohorts are fitted on a random sample of persons (CohortMethod samples its
# propensity model the same way); counts, rates and crude ratios always use everyone.
MAX_PERSONS_FOR_MODELS = 250_000
DRUG_DOMAIN_WINDOW = "current_use"
# 0/1 covariates are held as one byte per person (the models convert their sample to floats): at 10 million patients
# the cohort has millions of persons and dozens of covariates.
COVARIATE_FLAG = "int8"


# The attrition of every analysis starts from the cohort (cohort.study_population, per arm: results.COHORT_STEP) and
# ends at the persons its estimator used. Steps shared by the analyses of one exposure:
AT_RISK_STEP = "at least 1 day at risk"
# CohortMethod's convention (createStudyPopulation, minDaysAtRisk = 1): time at risk is counted in whole days from
# its first day, and a person with none is removed, visibly. An unexposed person who starts the exposure on the
# first day at risk is censored the day before (censor_unexposed_at_exposure_start), so has none.
ZERO_TIME_AT_RISK = "zero days at risk (follow-up ends before the first day at risk)"
# A drug exposure with `new_use` compares new users with non-users (Ray 2003; CohortMethod and LEGEND's incident-user
# rule): its prevalent and recent past users have a NULL exposure column and leave that exposure's analyses here.
NEW_USE_STEP = "new user or non-user"
NOT_NEW_USER = "prevalent or recent past user (new-use design)"
SAMPLE_STEP = "in the random sample the model is fitted on"
SAMPLE_REASON = f"not sampled: models are fitted on {MAX_PERSONS_FOR_MODELS:,} persons at most"
PS_STEPS = {  # adjustment: (step, reason) when the adjustment leaves persons out
    "matching": ("matched 1:1 within the caliper", "unmatched: no comparator within 0.2 SD of the logit PS"),
    "weighting": ("inside the propensity-score trimming bounds", "outside common support (trimmed)"),
}
PS_ANALYSIS_IDS = {"matching": "ps_matched_cox", "stratification": "ps_strata_cox", "weighting": "ps_iptw_cox"}


@dataclass(frozen=True)
class AttritionStep:
    """Persons per arm who remain after a step; `reason` says why the others were excluded (None: the first step)."""

    step: str
    reason: str | None
    persons_exposed: int
    persons_unexposed: int


def attrition_step(step: str, reason: str | None, exposed: pd.Series) -> AttritionStep:
    """The step's persons per arm from a 0/1 (or boolean) exposure column of the persons who remain."""
    exposed = exposed.astype(bool)
    return AttritionStep(step, reason, int(exposed.sum()), int((~exposed).sum()))


@dataclass
class StudyAnalysis:
    study_id: str
    results: list[tuple[str, str, EstimateResult]] = field(default_factory=list)  # (exposure, outcome, result)
    balance: pd.DataFrame | None = None  # PS covariate balance (new-user designs)
    equipoise: float | None = None
    km_data: pd.DataFrame | None = None  # exposure/outcome/followup_days for the Kaplan-Meier plot
    km_exposure: str | None = None
    km_labels: tuple[str, str] = ("Unexposed", "Exposed")  # (exposure 0, exposure 1)
    # The attrition of the plotted population: the rows of the analyses with these steps print its counts.
    km_steps: list[AttritionStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # A note's detail lines (the negative-control pairs a note counts): the study report and the run's metadata
    # print them under the note, the run log prints the note alone (one line per note).
    note_details: dict[str, list[str]] = field(default_factory=dict)
    # (exposure, analysis_id) -> the analysis's attrition from the cohort to the persons its estimator used
    attrition: dict[tuple[str, str], list[AttritionStep]] = field(default_factory=dict)
    # The primary analysis for each negative-control outcome: (exposure, control outcome, result)
    negative_control_results: list[tuple[str, str, EstimateResult]] = field(default_factory=list)
    # The primary analysis of each negative-control exposure against the study's outcome: (control drug, outcome,
    # result); their attrition is in `attrition` beside the exposures' (the same cohort, split by the control drug)
    exposure_control_results: list[tuple[str, str, EstimateResult]] = field(default_factory=list)
    # The fitted propensity model of each time at risk (new-user designs), reused for the negative controls
    ps_models: dict[str, object] = field(default_factory=dict)
    # (outer, inner) exposure labels: inner is outer's cohort with follow-up censored earlier (on treatment within
    # intention to treat), so its persons and events are a subset of outer's (a relation the disclosure rule uses)
    nested_exposures: list[tuple[str, str]] = field(default_factory=list)
    # Sensitivity analyses (the study's sensitivity_analyses), by id: the same analyses with one phenotype replaced.
    sensitivity: dict[str, StudyAnalysis] = field(default_factory=dict)
    # What the study's disclosure ledger was built from when its results were published (a
    # statistics.disclosure_audit.StudyLedger, set by statistics.assets.publish_study_results): the statistics
    # checks audit the published tables against it.
    disclosure_ledger: object | None = None

    def add(self, exposure: str, outcome: str, results: list[EstimateResult],
            steps: dict[str, list[AttritionStep]]) -> None:
        """Record an exposure's results and, for each analysis that produced one, its attrition (`steps` by
        analysis id; an analysis not named there has the steps under "", those every analysis shares)."""
        self.results += [(exposure, outcome, r) for r in results]
        for analysis_id in dict.fromkeys(r.analysis_id for r in results):
            self.attrition[(exposure, analysis_id)] = steps.get(analysis_id, steps[""])


# cohort.study_population's column of a phenotype's first date, beside the phenotype's own column.
FIRST_DATE_SUFFIX = "_first_date"
# The columns of cohort.study_population the analyses read, besides the study's own phenotype columns.
POPULATION_COLUMNS = ("index_date", "age_at_index", "sex", "time_at_risk_start", "followup_end", "outcome_flag",
                      "outcome_date", "death_date", "treatment", "on_treatment_end")


def study_population(target: Engine | object, study: StudyDefinition) -> pd.DataFrame:
    """The study's per-person rows (one per person), the only person-level data pandas sees: the columns the
    analyses read and the study's own phenotype columns (<phenotype>, and <phenotype>_first_date as a float32 day
    number, day_numbers), not the other studies' (NULL for this study) nor the person ids (millions of Python
    strings at 10 million patients).
    `target`: the engine holding the cohort tables (pipelines/engine), or a DuckDB connection or SparkSession."""
    engine = as_engine(target)
    present = set(engine.columns(STUDY_POPULATION))
    phenotype_columns = [name for phenotype in dict.fromkeys(study.phenotype_ids)
                         for name in (phenotype, f"{phenotype}{FIRST_DATE_SUFFIX}") if name in present]
    columns = ", ".join(quote_identifier(name) for name in (*POPULATION_COLUMNS, *phenotype_columns))
    # Ordered: sampling, cross-validation folds and matching ties follow row positions, and without ORDER BY DuckDB
    # returns the rows in whatever order its threads finish.
    population = engine.query(f"SELECT {columns} FROM {STUDY_POPULATION} WHERE study_id = $study ORDER BY person_id",
                              {"study": study.id})
    # The phenotypes' first dates only censor follow-up, as day numbers (day_numbers): held so, as float32 (exact
    # for whole days, |n| < 2**24), they take 4 bytes per person each instead of 8 (a study has dozens of them).
    for name in (f"{phenotype}{FIRST_DATE_SUFFIX}" for phenotype in dict.fromkeys(study.phenotype_ids)):
        if name in population:
            population[name] = day_numbers(population[name]).astype(np.float32)
    return population


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


def day_numbers(dates: pd.Series) -> np.ndarray:
    """Dates as whole days since 1970-01-01 (float64), NaN where there is none: follow-up arithmetic on plain numbers
    (NaN compares false, as NaT does). Numbers are taken as day numbers already (study_population's first dates)."""
    if pd.api.types.is_numeric_dtype(dates) and not pd.api.types.is_bool_dtype(dates):
        return np.asarray(dates, dtype=float)
    values = pd.to_datetime(dates).to_numpy(dtype="datetime64[D]")
    days = values.astype(np.int64).astype(float)
    days[np.isnat(values)] = np.nan
    return days


@dataclass(frozen=True)
class FollowUp:
    """A population's follow-up as day numbers, converted once for every exposure and time at risk analysed on it:
    the first day at risk, the end of follow-up, the outcome's day (NaN without one) and the day of death."""

    index: pd.Index
    start: np.ndarray
    end: np.ndarray
    outcome: np.ndarray
    death: np.ndarray

    @classmethod
    def of(cls, population: pd.DataFrame) -> FollowUp:
        outcome = day_numbers(population["outcome_date"])
        outcome[~population["outcome_flag"].astype(bool).to_numpy()] = np.nan
        return cls(population.index, day_numbers(population["time_at_risk_start"]),
                   day_numbers(population["followup_end"]), outcome, day_numbers(population["death_date"]))

    def censored_at(self, censor_day: np.ndarray | None = None) -> pd.DataFrame:
        """Follow-up and outcome when follow-up also ends the day before `censor_day` (day numbers, NaN = not
        censored; None: nobody), and `death` = 1 where follow-up ends at death before any outcome (the competing
        event of the cumulative incidence)."""
        end = self.end
        if censor_day is not None:
            before = censor_day - 1
            end = np.where(np.isnan(before) | (before >= end), end, before)
        outcome = self.outcome <= end
        days = np.where(outcome, self.outcome, end) - self.start + 1
        if not np.isnan(days).any():  # whole days (NaN only where a date is missing)
            days = days.astype(np.int64)
        died = ~outcome & (self.death <= end)
        return pd.DataFrame({"outcome": outcome.astype(int), "followup_days": days, "death": died.astype(int)},
                            index=self.index)


def model_sample(frame: pd.DataFrame, seed: int) -> pd.DataFrame | None:
    """The random sample of `frame`'s rows a model is fitted on when it has more than MAX_PERSONS_FOR_MODELS; None
    when the model is fitted on everyone. The rows drawn depend on the number of rows and the seed only (pandas
    `sample` draws positions), not on the columns `frame` has."""
    if len(frame) <= MAX_PERSONS_FOR_MODELS:
        return None
    return frame.sample(n=MAX_PERSONS_FOR_MODELS, random_state=seed)


def _estimate_or_note(results: list, label: str, notes: list[str], analysis_id: str, estimate) -> None:
    """Run one estimator (one result or a list) and tag its results with `analysis_id`; a model that cannot be
    fitted (no events, separation) becomes a note, not a failure."""
    try:
        produced = estimate()
    except Exception as error:  # noqa: BLE001 - any fitting failure is reported, the others still run
        notes.append(f"{label}: not estimable ({type(error).__name__}: {str(error).splitlines()[0][:160]})")
        return
    results += [replace(r, analysis_id=r.analysis_id or analysis_id)
                for r in (produced if isinstance(produced, list) else [produced])]


def _risk_analysis_id(result: EstimateResult) -> str:
    if result.estimand.startswith("risk difference"):
        return "km_risk_difference"
    return "km_risk_ratio" if result.estimand.startswith("risk ratio") else "km_risk"


def _runs(analysis_id: str, only: str | None) -> bool:
    """Whether an analysis runs: every analysis, or only the one named (the negative controls' primary analysis)."""
    return only is None or only == analysis_id or (analysis_id == "km_risk" and only.startswith("km_"))


def _person_time_analyses(results: list, frame: pd.DataFrame, study: StudyDefinition, notes: list[str],
                          label: str, groups: tuple[str, str], only: str | None = None) -> None:
    """Incidence rates and their ratio, and risks at the study's horizon (Kaplan-Meier, and Aalen-Johansen with
    death as a competing event): the analyses of everyone with time at risk, none of them a model. `only`: run just
    that analysis."""
    if _runs("incidence_rate", only):
        _estimate_or_note(results, f"{label} rate {groups[0]}", notes, "incidence_rate",
              lambda: incidence_rate(frame[frame.exposure == 1], group=groups[0]))
        _estimate_or_note(results, f"{label} rate {groups[1]}", notes, "incidence_rate",
              lambda: incidence_rate(frame[frame.exposure == 0], group=groups[1], unexposed=True))
    if _runs("crude_irr", only):
        _estimate_or_note(results, f"{label} IRR", notes, "crude_irr", lambda: incidence_rate_ratio(frame))
    if not _runs("km_risk", only):
        return
    risks: list[EstimateResult] = []
    _estimate_or_note(risks, f"{label} risks at {study.risk_horizon_days} days", notes, "km_risk",
          lambda: risks_at_horizon(frame, study.risk_horizon_days, groups=groups))
    results += [replace(r, analysis_id=_risk_analysis_id(r)) for r in risks]
    _estimate_or_note(results, f"{label} cumulative incidence at {study.risk_horizon_days} days", notes, "aj_risk",
          lambda: cumulative_incidence_at_horizon(frame, study.risk_horizon_days, groups=groups))


def one_group_note(exposure: pd.Series, exposed: str, unexposed: str) -> str:
    """Why a comparison has no estimate when one of its groups is empty, saying which one (no count: a small cell
    must not reappear in a note), and what to check."""
    if exposure.empty:
        return "nobody has follow-up after index; no estimate"
    if (exposure == 1).all():
        return (f"everybody is {exposed}, nobody {unexposed}; no estimate. Check the study's inclusion criteria "
                "(an inclusion that requires the exposure leaves no one to compare with)")
    return (f"nobody is {exposed}; no estimate. Check that the exposure's phenotype resolves in this extract "
            "(the load_extract warnings name the phenotypes the extract's codes cannot reach)")


def _outcome_model_covariates(frame: pd.DataFrame, names: list[str], dropped: set[str]) -> list[str]:
    """The covariates an outcome model can estimate: a 0/1 covariate whose holders (or non-holders) have no outcome
    has an infinite coefficient (monotone likelihood, Heinze & Schemper 2001) and stops the model converging, so it is
    left out of that model (and added to `dropped`, for the notes)."""
    events = frame["outcome"].to_numpy(bool)
    kept = []
    for name in names:
        values = frame[name].to_numpy()
        held, not_held = values == 1, values == 0
        if held.any() and not_held.any() and (held | not_held).all():  # a 0/1 covariate with both values
            if not (events & held).any() or not (events & not_held).any():
                dropped.add(name)
                continue
        kept.append(name)
    return kept


def _nested(a: np.ndarray, b: np.ndarray) -> bool:
    """True when everyone with `a` has `b` or everyone with `b` has `a` (one phenotype nested in the other); `a` and
    `b` are boolean arrays of the same persons."""
    return bool((~a | b).all() or (~b | a).all())


@dataclass(frozen=True)
class ExposureFit:
    """One exposure's analyses against the unexposed (a task of `fit_exposure`, fitted in a worker process).
    `frame`: everyone compared, with only the columns the person-time analyses read (outcome, followup_days, death,
    exposure) when the model is fitted on a sample, `model_frame`, which also holds the model covariates (drawn
    here, `model_sample`); else (None) the model is fitted on `frame`, which then holds them. `note` instead of a
    frame: the exposure has one group only, and nothing is fitted."""

    exposure: str
    study: StudyDefinition
    only: str | None
    frame: PackedFrame | None = None
    model_frame: PackedFrame | None = None
    covariate_names: tuple[str, ...] = ()
    shared: tuple[AttritionStep, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class ExposureFitted:
    """What `fit_exposure` returns: the results, the notes, the attrition by analysis id and the covariates left out
    of the outcome model (no outcome among their holders or non-holders)."""

    results: list[EstimateResult]
    notes: list[str]
    steps: dict[str, list[AttritionStep]]
    without_events: set[str]


def fit_exposure(task: ExposureFit) -> ExposureFitted:
    """The person-time analyses and the adjusted Cox model of one exposure (a worker's task)."""
    if task.frame is None:
        return ExposureFitted([], [task.note] if task.note else [], {}, set())
    frame, study, only, exposure = task.frame.unpacked(), task.study, task.only, task.exposure
    results: list[EstimateResult] = []
    notes: list[str] = []
    _person_time_analyses(results, frame, study, notes, exposure, ("exposed", "unexposed"), only)
    shared = list(task.shared)
    steps = {"": shared}
    if task.model_frame is None:
        model_frame = frame
    else:
        del frame  # the person-time analyses are done; only the sample is modelled
        model_frame = task.model_frame.unpacked()
        steps["cox_adjusted"] = [*shared, attrition_step(SAMPLE_STEP, SAMPLE_REASON, model_frame["exposure"])]
    without_events: set[str] = set()
    covariate_names = _outcome_model_covariates(model_frame, list(task.covariate_names), without_events)
    if _runs("cox_adjusted", only):
        _estimate_or_note(results, f"{exposure} Cox HR", notes, "cox_adjusted",
                          lambda: cox_hazard_ratio(model_frame, covariate_names))
    return ExposureFitted(results, notes, steps, without_events)


def analyse_first_visit_study(population: pd.DataFrame, study: StudyDefinition,
                              only: str | None = None, exposures: set[str] | None = None,
                              co_medication: list[str] | None = None, pool: FitPool = SERIAL) -> StudyAnalysis:
    """Every exposure against the unexposed (`only`: just that analysis, as for the negative controls;
    `exposures`: just these exposures, as for an exposure's sensitivity analysis; `co_medication`: the drugs that
    adjust the models, by default the study's drug exposures). The exposures' frames are built here, one at a time,
    and fitted by `pool`'s workers; their rows and notes come back in the exposures' order."""
    analysis = StudyAnalysis(study.id)
    covariates, study_covariates = _covariate_frame(population, study)
    medications = drug_exposures(study) if co_medication is None else co_medication
    for drug in medications:
        covariates[drug] = population[drug].fillna(False).astype(COVARIATE_FLAG)
    varying = _varying_medications(covariates, medications)
    references = [reference for reference in study.exposures
                  if exposures is None or reference.phenotype in exposures]
    # The frames the table1_by exposure's Kaplan-Meier plot draws (the parent keeps it; the task is pickled away).
    kaplan_meier: dict[str, tuple[pd.DataFrame, list[AttritionStep]]] = {}
    follow_up = FollowUp.of(population)
    index_day = day_numbers(population["index_date"])

    def tasks() -> Iterator[ExposureFit]:
        for reference in references:
            exposure = reference.phenotype
            exposed = population[exposure].fillna(False).astype(bool)
            covariate_names = [*study_covariates, *_co_medication(varying, exposure, exposed)]
            censor_day = None
            if study.time_at_risk.censor_unexposed_at_exposure_start:
                first_day = day_numbers(population[f"{exposure}{FIRST_DATE_SUFFIX}"])
                censor_day = np.where(~exposed.to_numpy() & (first_day > index_day), first_day, np.nan)
            frame = follow_up.censored_at(censor_day)
            frame["exposure"] = exposed.astype(int)
            shared = [attrition_step(COHORT_STEP, None, exposed)]
            # NULL: left out of this exposure's comparison (a new-use exposure's prevalent and past users).
            compared = population[exposure].notna()
            if not compared.all():
                frame = frame[compared]
                shared.append(attrition_step(NEW_USE_STEP, NOT_NEW_USER, frame["exposure"]))
            frame = frame[frame["followup_days"] > 0]
            shared.append(attrition_step(AT_RISK_STEP, ZERO_TIME_AT_RISK, frame["exposure"]))
            if frame["exposure"].nunique() < 2:
                yield ExposureFit(exposure, study, only,
                                  note=f"{exposure}: {one_group_note(frame['exposure'], 'exposed', 'unexposed')}")
                continue
            if exposure == study.table1_by:
                kaplan_meier[exposure] = frame[["exposure", "outcome", "followup_days"]], shared
            # The covariates join only the persons the model is fitted on: everyone, or its sample.
            sample = model_sample(frame, study.seed)
            if sample is None:
                frame, model_frame = _with_covariates(frame, covariates, covariate_names), None
            else:
                model_frame = PackedFrame.of(_with_covariates(sample, covariates, covariate_names))
            yield ExposureFit(exposure, study, only, PackedFrame.of(frame), model_frame, tuple(covariate_names),
                              tuple(shared))

    without_events: set[str] = set()
    for reference, fitted in zip(references, pool.ordered(fit_exposure, tasks())):
        exposure = reference.phenotype
        analysis.notes += fitted.notes
        without_events |= fitted.without_events
        if not fitted.steps:  # one group only: the note says why
            continue
        analysis.add(exposure, study.outcome.phenotype, fitted.results, fitted.steps)
        if exposure in kaplan_meier:
            (analysis.km_data, analysis.km_steps), analysis.km_exposure = kaplan_meier[exposure], exposure
            analysis.km_labels = (f"not {exposure}", exposure)
    _note_left_out(analysis, without_events)
    return analysis


def _with_covariates(followed: pd.DataFrame, covariates: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """`followed`'s persons (outcome, followup_days, death, exposure) with their model covariates `names`, the
    columns in the order the models have always seen them: outcome, followup_days, death, the covariates, exposure."""
    frame = pd.concat([followed[["outcome", "followup_days", "death"]], covariates.loc[followed.index, names]], axis=1)
    frame["exposure"] = followed["exposure"]
    return frame


def _varying_medications(covariates: pd.DataFrame, medications: list[str]) -> dict[str, np.ndarray]:
    """The drugs among `medications` whose use at index varies in the population, each as a boolean array of its
    users: the candidates for co-medication, found once per population rather than once per exposure."""
    return {d: covariates[d].to_numpy(bool) for d in medications if covariates[d].nunique() > 1}


def _co_medication(medications: dict[str, np.ndarray], exposure: str, exposed: pd.Series) -> list[str]:
    """The study's other drug exposures at index that adjust `exposure`'s models: those that vary
    (`_varying_medications`) and are not nested in it or it in them."""
    held = exposed.to_numpy(bool)
    return [d for d, users in medications.items() if d != exposure and not _nested(held, users)]


def _note_left_out(analysis: StudyAnalysis, without_events: set[str]) -> None:
    if without_events:
        analysis.notes.append("left out of the outcome models where their holders or non-holders had no outcome "
                              f"(infinite coefficient): {', '.join(sorted(without_events))}")


def new_user_time_at_risk(population: pd.DataFrame,
                          study: StudyDefinition) -> list[tuple[str, np.ndarray | None]]:
    """The two time-at-risk definitions of a new-user study (LEGEND, OHDSI CohortMethod), each as (label, the day
    follow-up is censored as a day number (`day_numbers`), NaN = not censored; None: nobody is): intention to treat
    (to the end of follow-up, whatever the person takes) and on treatment (after
    cohort.study_population.on_treatment_end: discontinuation + grace, or a switch)."""
    return [
        ("intention to treat", None),
        (f"on treatment (censored {study.index.grace_days} days after discontinuation or at a switch)",
         day_numbers(population["on_treatment_end"]) + 1),
    ]


def analyse_new_user_study(population: pd.DataFrame, study: StudyDefinition, only: str | None = None,
                           ps_models: Mapping[str, object] | None = None) -> StudyAnalysis:
    """Target against comparator, intention to treat and on treatment. `only`: just that analysis; `ps_models`:
    the propensity model of each time at risk, fitted before (the negative controls reuse the study's, as
    CohortMethod fits one propensity model per comparison and subsets it per outcome)."""
    analysis = StudyAnalysis(study.id)
    labels = []
    follow_up = FollowUp.of(population)
    for label, censor_day in new_user_time_at_risk(population, study):
        _analyse_new_user_time_at_risk(analysis, population, study, follow_up.censored_at(censor_day), label, only,
                                       (ps_models or {}).get(label))
        labels.append(new_user_exposure_label(study, label))
    analysis.nested_exposures += [(labels[0], inner) for inner in labels[1:]]
    return analysis


def new_user_exposure_label(study: StudyDefinition, time_at_risk: str) -> str:
    """The exposure label of a new-user comparison under one time at risk: each is published, and its rows say
    which."""
    return f"{study.index.target} vs {study.index.comparator}, {time_at_risk}"


def _analyse_new_user_time_at_risk(analysis: StudyAnalysis, population: pd.DataFrame, study: StudyDefinition,
                                   followed: pd.DataFrame, time_at_risk: str, only: str | None = None,
                                   model=None) -> None:
    """One time at risk of a new-user study; `followed`: its outcome, follow-up and death (FollowUp.censored_at)."""
    target, comparator = study.index.target, study.index.comparator
    outcome = study.outcome.phenotype
    treated = population["treatment"].astype(int)
    covariates, covariate_names = _covariate_frame(population, study)
    # A propensity model fitted before (a negative control's population is the study's less the persons with the
    # control before follow-up) scores with all its covariates, also one that has no variation left in this subset.
    scored = list(dict.fromkeys([*covariate_names, *(model.covariates if model is not None else [])]))
    frame = pd.concat([followed, covariates[scored]], axis=1)
    frame["exposure"] = treated
    cohort_step = attrition_step(COHORT_STEP, None, treated)
    frame = frame[frame["followup_days"] > 0]
    shared = [cohort_step, attrition_step(AT_RISK_STEP, ZERO_TIME_AT_RISK, frame["exposure"])]
    steps = {"": shared}
    if frame["exposure"].nunique() < 2:
        analysis.notes.append(f"{time_at_risk}: " + one_group_note(frame["exposure"], f"in the target group ({target})",
                                                                 f"in the comparator group ({comparator})"))
        return
    results: list[EstimateResult] = []
    notes = analysis.notes
    _person_time_analyses(results, frame, study, notes, f"{target} vs {comparator}",
                          (f"target ({target})", f"comparator ({comparator})"), only)
    without_events: set[str] = set()
    outcome_covariates = _outcome_model_covariates(frame, covariate_names, without_events)
    _note_left_out(analysis, without_events)
    if _runs("cox_adjusted", only):
        _estimate_or_note(results, "Cox HR", notes, "cox_adjusted",
                          lambda: cox_hazard_ratio(frame, outcome_covariates))
    forced = _forced_covariates(covariate_names)
    for adjustment in ("matching", "stratification", "weighting"):
        analysis_id = PS_ANALYSIS_IDS[adjustment]
        if not _runs(analysis_id, only):
            continue
        try:
            ps = propensity_score_analysis(frame, covariate_names, adjustment=adjustment, model=model,
                                           seed=study.seed, forced_covariates=forced)
        except Exception as error:  # noqa: BLE001 - e.g. a score without spread cannot be cut into strata
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            notes.append(f"{time_at_risk}, propensity score {adjustment}: not estimable ({reason})")
            results.append(EstimateResult(method=outcome_method(adjustment), estimand=HAZARD_RATIO_ESTIMAND,
                                          estimate=None, ci_lower=None, ci_upper=None, p_value=None,
                                          not_estimable_reason=reason, covariates=tuple(covariate_names),
                                          analysis_id=analysis_id))
            continue
        if model is None and ps.model.fit_warnings:
            notes.append(f"propensity model (C = {ps.model.chosen_c:.3g}): scikit-learn warned during the "
                         f"cross-validated fit: {'; '.join(ps.model.fit_warnings)}")
        model = analysis.ps_models[time_at_risk] = ps.model
        # The PS model's covariates are the analysis's adjustment set (the outcome model has the exposure only).
        results.append(replace(ps.hazard_ratio, analysis_id=analysis_id, covariates=tuple(covariate_names)))
        if len(ps.analysed) < len(frame):
            step, reason = PS_STEPS[adjustment]
            steps[analysis_id] = [*shared, attrition_step(step, reason, ps.analysed["exposure"])]
        if not ps.hazard_ratio.covariates_balanced:
            notes.append(f"{time_at_risk}, propensity score {adjustment}: covariates still imbalanced after adjustment "
                         f"(|SMD| > 0.1): {ps.hazard_ratio.imbalanced_covariates}")
        if adjustment == "matching" and analysis.balance is None:
            analysis.balance, analysis.equipoise = ps.balance, ps.equipoise
    exposure_label = new_user_exposure_label(study, time_at_risk)
    analysis.add(exposure_label, outcome, results, steps)
    if analysis.km_data is None:
        analysis.km_data, analysis.km_exposure = frame[["exposure", "outcome", "followup_days"]], exposure_label
        analysis.km_labels = (f"{comparator} (comparator)", f"{target} (target)")
        analysis.km_steps = shared


def analyse_study(target: Engine | object, study: StudyDefinition, workers: int | None = None) -> StudyAnalysis:
    """Every analysis of `study` on the per-person rows read from `target`: the engine that built the cohort tables
    (pipelines/engine; DuckDB or Spark), or a DuckDB connection or SparkSession. The estimators see the same pandas
    frames whichever engine the rows come from. `workers`: processes fitting the screening analyses at once
    (statistics/workers.py; None: the machine's cores, or this process for a small population: workers_for; 1: in
    this process)."""
    con = as_engine(target)
    population = study_population(con, study)
    if population.empty:
        analysis = StudyAnalysis(study.id)
        analysis.notes.append("the study population is empty; no estimates")
        return analysis
    with FitPool(workers_for(len(population), workers)) as pool:
        return _analyse_study_population(con, population, study, pool)


def _analyse_study_population(con: Engine, population: pd.DataFrame, study: StudyDefinition,
                              pool: FitPool) -> StudyAnalysis:
    analysis = _analyse_population(population, study, pool)
    # The time-varying rows and the negative controls belong to the main analysis (the rows carry the study's
    # outcome; the controls calibrate the main estimates), so the sensitivity variants below do not repeat them.
    if study.index.rule != "new_user" and study.time_varying_exposures:
        add_time_varying_analyses(con, study, population, analysis, pool)
    if study.negative_control_outcomes:
        analysis.negative_control_results = negative_control_estimates(
            population, negative_control_first_dates(con, study), study, analysis, pool)
    if study.negative_control_exposures:
        add_negative_control_exposure_estimates(population, study, analysis, pool)
    for sensitivity in study.analysed_sensitivity_analyses:
        analysis.sensitivity[sensitivity.id] = analyse_sensitivity(con, population, study, sensitivity, pool)
    # The run notes and the report say what each sensitivity analysis left out, each thing once.
    analysis.notes = notes_once(analysis.notes, {sensitivity_id: variant.notes
                                                 for sensitivity_id, variant in analysis.sensitivity.items()})
    return analysis


MAIN_ANALYSES = "the main analyses"


def notes_once(main: list[str], by_sensitivity: Mapping[str, list[str]]) -> list[str]:
    """The study's notes with each said once. A sensitivity analysis that replaces the outcome runs every exposure's
    analyses again, so a note about an exposure ("statins: nobody is exposed; ...", a model that cannot be fitted)
    came back once per sensitivity analysis with the same text (197 warnings on one extract); here it is kept once,
    where it first appeared, ending with the analyses it applies to. `by_sensitivity`: each sensitivity analysis's
    notes, prefixed "sensitivity analysis <id>: " (analyse_sensitivity); a note of one sensitivity analysis only
    keeps that prefix."""
    applies_to: dict[str, list[str]] = {}  # note -> the analyses that noted it, in order
    for note in main:
        applies_to.setdefault(note, [MAIN_ANALYSES])
    for sensitivity_id, notes in by_sensitivity.items():
        prefix = f"sensitivity analysis {sensitivity_id}: "
        for note in notes:
            analyses = applies_to.setdefault(note.removeprefix(prefix), [])
            if sensitivity_id not in analyses:
                analyses.append(sensitivity_id)
    merged = []
    for note, analyses in applies_to.items():
        sensitivity_ids = [a for a in analyses if a != MAIN_ANALYSES]
        if not sensitivity_ids:
            merged.append(note)
        elif analyses == sensitivity_ids and len(sensitivity_ids) == 1:
            merged.append(f"sensitivity analysis {sensitivity_ids[0]}: {note}")
        else:
            listed = ([MAIN_ANALYSES] if MAIN_ANALYSES in analyses else []) + [
                f"sensitivity analyses {', '.join(sensitivity_ids)}" if len(sensitivity_ids) > 1
                else f"sensitivity analysis {sensitivity_ids[0]}"]
            merged.append(f"{note.rstrip('.')}. Applies to {' and '.join(listed)}.")
    return merged


def _analyse_population(population: pd.DataFrame, study: StudyDefinition, pool: FitPool = SERIAL) -> StudyAnalysis:
    if study.index.rule == "new_user":
        return analyse_new_user_study(population, study)
    return analyse_first_visit_study(population, study, pool=pool)


# ---------------------------------------------------------------------------------------------------------------
# Time-varying exposure: current use and risk windows (cohort.time_varying_exposure)
# ---------------------------------------------------------------------------------------------------------------
TIME_VARYING_ANALYSIS_IDS = {"current_use": "cox_current_exposure", "risk_window": "cox_risk_window"}
EVER_EXPOSED_COHORT_STEP = "in the study population (arms: any exposed time during follow-up, or none)"


def time_varying_label(study: StudyDefinition, kind: str) -> str:
    """What the exposed time is, as the estimand and method texts say it."""
    if kind == "current_use":
        return f"current use (time-varying, grace {study.exposure_time.grace_days} days)"
    return f"within {study.exposure_time.risk_window_days} days of an abnormal result (time-varying risk window)"


def time_varying_rows(target: Engine | object, study: StudyDefinition, exposure: str) -> pd.DataFrame:
    """The exposure's counting-process rows (sql/statistics/time_varying_rows.sql); `person` is the person's position
    in `study_population(target, study)` (both ordered by person_id), so the covariates at index join without
    pulling person ids."""
    return as_engine(target).query(read_sql("statistics/time_varying_rows.sql"),
                                   {"study": study.id, "exposure": exposure})


@dataclass(frozen=True)
class TimeVaryingFit:
    """One exposure's time-varying Cox model (a task of `fit_time_varying`, fitted in a worker process): its
    counting-process rows with the model covariates as at index (packed for the way, PackedFrame). `note` instead of
    rows: the exposure has one group only, and nothing is fitted."""

    exposure: str
    analysis_id: str
    exposed_time: str
    rows: PackedFrame | None = None
    covariate_names: tuple[str, ...] = ()
    note: str | None = None


def fit_time_varying(task: TimeVaryingFit) -> tuple[list[EstimateResult], list[str]]:
    """The results and notes of one exposure's time-varying Cox model (a worker's task)."""
    if task.rows is None:
        return [], [task.note]
    results: list[EstimateResult] = []
    notes: list[str] = []
    _estimate_or_note(results, f"{task.exposure} time-varying Cox HR", notes, task.analysis_id,
                      lambda: counting_process_cox(task.rows.unpacked(), list(task.covariate_names),
                                                   exposed_time=task.exposed_time))
    return results, notes


def add_time_varying_analyses(con: Engine, study: StudyDefinition, population: pd.DataFrame,
                              analysis: StudyAnalysis, pool: FitPool = SERIAL) -> None:
    """For each exposure the study times as current (study.time_varying_exposures), a Cox model on its
    counting-process rows: exposed while currently using the drug (era + grace) or inside a finding's risk window,
    adjusted like the at-index Cox model (age, sex, the study's covariates and co-medication, all as at index). The
    rows are read and joined here, one exposure at a time, and fitted by `pool`'s workers."""
    covariates, study_covariates = _covariate_frame(population, study)
    medications = drug_exposures(study)
    for drug in medications:
        covariates[drug] = population[drug].fillna(False).astype(COVARIATE_FLAG)
    varying = _varying_medications(covariates, medications)
    outcome = study.outcome.phenotype
    without_events: set[str] = set()
    steps_by_exposure: dict[str, list[AttritionStep]] = {}

    def tasks() -> Iterator[TimeVaryingFit]:
        for exposure, kind in study.time_varying_exposures.items():
            analysis_id, exposed_time = TIME_VARYING_ANALYSIS_IDS[kind], time_varying_label(study, kind)
            rows = time_varying_rows(con, study, exposure)
            ever_exposed = pd.Series(False, index=population.index)
            ever_exposed[rows.loc[rows.exposed == 1, "person"].unique()] = True
            at_risk = pd.Series(False, index=population.index)
            at_risk[rows["person"].unique()] = True
            steps = [attrition_step(EVER_EXPOSED_COHORT_STEP, None, ever_exposed),
                     attrition_step(AT_RISK_STEP, ZERO_TIME_AT_RISK, ever_exposed[at_risk])]
            if ever_exposed[at_risk].nunique() < 2:
                yield TimeVaryingFit(exposure, analysis_id, exposed_time, note=f"{exposure}, {exposed_time}: "
                                     + one_group_note(ever_exposed[at_risk].astype(int), "exposed", "unexposed"))
                continue
            persons = population.index[at_risk]
            if len(persons) > MAX_PERSONS_FOR_MODELS:
                persons = pd.Index(np.sort(np.random.default_rng(study.seed).choice(persons, MAX_PERSONS_FOR_MODELS,
                                                                                    replace=False)))
                rows = rows[rows["person"].isin(persons)]
                steps.append(attrition_step(SAMPLE_STEP, SAMPLE_REASON, ever_exposed[persons]))
            exposed_at_index = population[exposure].fillna(False).astype(bool)
            names = [*study_covariates, *_co_medication(varying, exposure, exposed_at_index)]
            per_person = covariates.loc[persons, names].assign(outcome=population.loc[persons, "outcome_flag"]
                                                               .astype(int))
            names = _outcome_model_covariates(per_person, names, without_events)
            steps_by_exposure[exposure] = steps
            yield TimeVaryingFit(exposure, analysis_id, exposed_time,
                                 PackedFrame.of(rows.join(covariates[names], on="person")), tuple(names))

    for exposure, (results, notes) in zip(study.time_varying_exposures, pool.ordered(fit_time_varying, tasks())):
        analysis.notes += notes
        if exposure in steps_by_exposure:
            analysis.add(exposure, outcome, results, {"": steps_by_exposure[exposure]})
    _note_left_out(analysis, without_events)


# ---------------------------------------------------------------------------------------------------------------
# Negative-control outcomes and empirical calibration
# ---------------------------------------------------------------------------------------------------------------
def negative_control_first_dates(target: Engine | object, study: StudyDefinition) -> pd.DataFrame:
    """Each study-population person's first record of each negative-control outcome (NaT: none), one column per
    control, in the row order of `study_population` (ORDER BY person_id). The engine returns one row per person and
    control (sql/statistics/negative_control_first_dates.sql); the per-person columns are pivoted here."""
    controls = list(study.negative_control_outcomes)
    long = as_engine(target).query(read_sql("statistics/negative_control_first_dates.sql"),
                                   {"study": study.id, "controls": controls})
    persons = pd.RangeIndex(int(long["person"].max()) + 1 if len(long) else 0)
    recorded = long[long["phenotype_id"].notna()]
    wide = recorded.pivot(index="person", columns="phenotype_id", values="first_date")
    return wide.reindex(index=persons, columns=controls).rename_axis(index=None, columns=None)


def negative_control_estimates(population: pd.DataFrame, first_dates: pd.DataFrame, study: StudyDefinition,
                               analysis: StudyAnalysis,
                               pool: FitPool = SERIAL) -> list[tuple[str, str, EstimateResult]]:
    """The study's primary analysis for each negative-control outcome, with the same design (OHDSI CohortMethod):
    the same study population, less the persons whose first record of the control precedes their first day at risk
    (CohortMethod's removeSubjectsWithPriorOutcome), the control as the outcome, and the study's propensity model
    (one per comparison, as CohortMethod fits it, then subset per outcome). Rows are (exposure, control, result)."""
    from pipelines.statistics.report import primary_analysis_of

    primary = primary_analysis_of(study)
    start = pd.to_datetime(population["time_at_risk_start"])
    rows: list[tuple[str, str, EstimateResult]] = []
    for control in study.negative_control_outcomes:
        dates = pd.to_datetime(first_dates[control]).set_axis(population.index)
        kept = ~(dates < start)
        cohort = with_outcome(population, kept.to_numpy(), dates[kept], dates[kept].notna())
        if study.index.rule == "new_user":
            control_analysis = analyse_new_user_study(cohort, study, only=primary, ps_models=analysis.ps_models)
        else:
            control_analysis = analyse_first_visit_study(cohort, study, only=primary, pool=pool)
        rows += [(exposure, control, result) for exposure, _, result in control_analysis.results
                 if result.analysis_id == primary]
    return rows


def add_negative_control_exposure_estimates(population: pd.DataFrame, study: StudyDefinition,
                                            analysis: StudyAnalysis, pool: FitPool = SERIAL) -> None:
    """The study's primary analysis for each negative-control exposure, with the design of the exposures (OHDSI's
    negative-control exposures, as in the MethodEvaluation benchmark): the same study population and outcome, the
    control drug as current use at index against non-use, the unexposed censored at its start when the study says
    so, and the same adjustment set (age, sex, the study's covariates and its drug exposures as co-medication).
    Rows go to analysis.exposure_control_results, their attrition to analysis.attrition (published beside the
    exposures': the disclosure ledger ties their counts to the cohort and the outcome count like any exposure's)."""
    from pipelines.statistics.report import primary_analysis_of

    primary = primary_analysis_of(study)
    control_study = study.model_copy(update={"exposures": study.negative_control_exposure_references,
                                             "table1_by": None})
    controls = analyse_first_visit_study(population, control_study, only=primary,
                                         co_medication=drug_exposures(study), pool=pool)
    analysis.exposure_control_results = [row for row in controls.results if row[2].analysis_id == primary]
    analysis.attrition.update({key: steps for key, steps in controls.attrition.items() if key[1] == primary})
    analysis.notes += [f"negative-control exposure {note}" for note in controls.notes]


# At least this many negative controls of an exposure must have a published estimate before its primary estimate is
# calibrated: a null distribution fitted on fewer is too uncertain to move an estimate by (EmpiricalCalibration
# itself sets no minimum; the choice is ours).
MIN_NEGATIVE_CONTROLS = 5


@dataclass(frozen=True)
class Calibration:
    """How one exposure's primary estimate is calibrated: on the empirical null of its negative controls, or not
    (`reason` says why)."""

    analysis_id: str
    null: NullDistribution | None
    controls_listed: int
    reason: str | None = None

    def columns(self, log_estimate: float | None, se_log_estimate: float | None) -> dict:
        """The calibration columns of the primary row (calibrated estimate, CI, p) and its calibration_note."""
        values = dict.fromkeys((*CALIBRATION_COLUMNS, CALIBRATION_NOTE_COLUMN))
        if self.null is None:
            values[CALIBRATION_NOTE_COLUMN] = f"not calibrated: {self.reason}"
            return values
        if log_estimate is None or se_log_estimate is None:
            return values
        estimate, lower, upper = calibrated_confidence_interval(self.null, log_estimate, se_log_estimate)
        values.update(calibrated_estimate=estimate, calibrated_ci_lower=lower, calibrated_ci_upper=upper,
                      calibrated_p_value=calibrated_p_value(self.null, log_estimate, se_log_estimate))
        values[CALIBRATION_NOTE_COLUMN] = (
            f"calibrated on {self.null.controls} of {self.controls_listed} negative controls (EmpiricalCalibration): "
            f"systematic error N({self.null.mean:.3f}, {self.null.sd:.3f}^2) on the log scale")
        return values


# results.negative_control_estimates.control_type: which kind of negative control a row estimates.
OUTCOME_CONTROL, EXPOSURE_CONTROL = "outcome", "exposure"


def calibrate_primary_analysis(published_controls: pd.DataFrame, exposures: list[str], analysis_id: str,
                               controls_listed: int, minimum: int = MIN_NEGATIVE_CONTROLS) -> dict[str, Calibration]:
    """Per exposure of the primary analysis, the calibration of its estimate from its negative-control estimates
    as published (after disclosure control: a control whose estimate is hidden or not estimable does not count, so
    nothing hidden can be recomputed from the calibration). An exposure's controls are its rows with a
    negative-control outcome (control_type outcome: the exposure against each control outcome) and every
    negative-control exposure's row (control_type exposure: a control drug against the study's outcome, the same
    for every exposure); a frame without control_type holds outcome controls only. The empirical null is fitted on
    all of them together (EmpiricalCalibration's fitNull takes whatever negative controls the study has)."""
    calibrations: dict[str, Calibration] = {}
    if published_controls.empty:
        published_controls = pd.DataFrame(columns=["exposure", "control_type", "log_estimate", "se_log_estimate"])
    kind = (published_controls["control_type"] if "control_type" in published_controls
            else pd.Series(OUTCOME_CONTROL, index=published_controls.index))
    for exposure in dict.fromkeys(exposures):
        rows = published_controls[((kind == OUTCOME_CONTROL) & (published_controls["exposure"] == exposure))
                                  | (kind == EXPOSURE_CONTROL)]
        logs = pd.to_numeric(rows["log_estimate"], errors="coerce")
        ses = pd.to_numeric(rows["se_log_estimate"], errors="coerce")
        usable = logs.notna() & ses.notna() & (ses > 0)
        if usable.sum() < minimum:
            reason = (f"{int(usable.sum())} of {controls_listed} negative controls have a published estimate; "
                      f"at least {minimum} are needed (the others are not estimable or hidden as small cells)")
            calibrations[exposure] = Calibration(analysis_id, None, controls_listed, reason)
            continue
        calibrations[exposure] = Calibration(analysis_id, fit_null(logs[usable], ses[usable]), controls_listed)
    return calibrations


# ---------------------------------------------------------------------------------------------------------------
# Sensitivity analyses: the same design with the outcome or one exposure replaced by a variant phenotype
# ---------------------------------------------------------------------------------------------------------------

def sensitivity_population(con: Engine, population: pd.DataFrame, study: StudyDefinition,
                           sensitivity: SensitivityAnalysis) -> pd.DataFrame:
    """The study population (`population`, in person_id order) with the outcome of `sensitivity`'s variant
    (sql/cohorts/sensitivity_outcome.sql): its first event in the time at risk, and without the persons who had one
    before the time at risk (the study's outcome washout)."""
    sql = read_sql("cohorts/sensitivity_outcome.sql")
    variant = as_engine(con).query(sql, {"study_id": study.id, "variant_outcome": sensitivity.variant,
                                         "outcome_washout": study.outcome.washout.kind,
                                         "outcome_washout_days": study.outcome.washout.days})
    if len(variant) != len(population):  # pragma: no cover - both read cohort.study_population of the study
        raise RuntimeError(f"sensitivity analysis {sensitivity.id}: {len(variant)} persons, the study has "
                           f"{len(population)}")
    kept = ~variant["outcome_before_time_at_risk"].astype(bool).to_numpy()
    return with_outcome(population, kept, pd.to_datetime(variant["outcome_date"]).to_numpy()[kept],
                        variant["outcome_date"].notna().to_numpy()[kept])


def with_outcome(population: pd.DataFrame, kept: np.ndarray, outcome_date, outcome_flag) -> pd.DataFrame:
    """The persons `kept` (a boolean array over `population`'s rows) with another outcome: its date and flag, one
    value per kept person. One copy of the kept rows (a copy of the whole population and then of its kept rows
    held two at once, each hundreds of bytes per person)."""
    frame = population.take(np.flatnonzero(kept))
    frame["outcome_date"] = outcome_date
    frame["outcome_flag"] = outcome_flag
    return frame


def analyse_sensitivity(con: Engine, population: pd.DataFrame, study: StudyDefinition,
                        sensitivity: SensitivityAnalysis, pool: FitPool = SERIAL) -> StudyAnalysis:
    """The study's analyses, same design and covariates, with the outcome or one exposure replaced by
    `sensitivity.variant` (the rows' outcome or exposure names the variant)."""
    if sensitivity.replace != study.outcome.phenotype:
        return analyse_exposure_variant(population, study, sensitivity, pool)
    frame = sensitivity_population(con, population, study, sensitivity)
    variant_study = study.model_copy(update={"outcome": study.outcome.model_copy(
        update={"phenotype": sensitivity.variant})})
    analysis = _analyse_population(frame, variant_study, pool)
    left_out = len(population) - len(frame)
    # The number is not printed: it is a difference of counts the disclosure ledger may hide (docs/disclosure.md).
    notes = [f"left out the persons who had {sensitivity.variant} before their time at risk (the rows' n_exposed "
             "and n_unexposed count those kept)"] if left_out else []
    analysis.notes = [f"sensitivity analysis {sensitivity.id}: {note}" for note in notes + analysis.notes]
    return analysis


def analyse_exposure_variant(population: pd.DataFrame, study: StudyDefinition,
                             sensitivity: SensitivityAnalysis, pool: FitPool = SERIAL) -> StudyAnalysis:
    """The replaced exposure's at-index analyses with the variant in its place: the same population, outcome,
    covariates and co-medication; the variant's columns of cohort.study_population (<variant>,
    <variant>_first_date) are recorded on the replaced exposure's window terms by the cohort stage
    (sql/cohorts/person_variables.sql, role exposure_variant)."""
    variant = study.exposure_variants[sensitivity.id]
    variant_study = study.model_copy(update={"exposures": [
        variant if reference.phenotype == sensitivity.replace else reference for reference in study.exposures]})
    analysis = analyse_first_visit_study(population, variant_study, exposures={variant.phenotype}, pool=pool)
    analysis.notes = [f"sensitivity analysis {sensitivity.id}: {note}" for note in analysis.notes]
    return analysis


# ---------------------------------------------------------------------------------------------------------------
# Sequence symmetry over the whole extract
# ---------------------------------------------------------------------------------------------------------------
def sequence_symmetry_for_drugs(target: Engine | object, drug_phenotypes: list[str],
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
    Pulls one row per person (first dates only), from `target` (the engine holding the phenotype and staging
    tables, or a DuckDB connection or SparkSession).
    """
    # Each person's first date of the marker and of each drug, with the days observed without a break before and
    # after it (sql/statistics/first_dates_with_observation.sql), in one query.
    phenotypes = list(dict.fromkeys([marker, *drug_phenotypes]))
    every_first_date = as_engine(target).query(read_sql("statistics/first_dates_with_observation.sql"),
                                               {"phenotypes": phenotypes})
    by_phenotype = {phenotype_id: rows.drop(columns="phenotype_id").reset_index(drop=True)
                    for phenotype_id, rows in every_first_date.groupby("phenotype_id", sort=False)}
    no_rows = every_first_date.drop(columns="phenotype_id").iloc[:0]

    def first_dates_with_observation(phenotype_id: str) -> pd.DataFrame:
        return by_phenotype.get(phenotype_id, no_rows)

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
        rows += [(drug, marker, replace(result.crude, analysis_id="ssa_crude")),
                 (drug, marker, replace(result.adjusted, analysis_id="ssa_adjusted"))]
    return rows


def drug_exposures(study: StudyDefinition) -> list[str]:
    """The study's drug exposures (those assessed as current use at index)."""
    return [r.phenotype for r in study.exposures if r.window.kind == DRUG_DOMAIN_WINDOW]


def _log_scale(result: EstimateResult) -> tuple[float | None, float | None]:
    """(log estimate, its SE) of a ratio estimand, as CohortMethod publishes logRr and seLogRr; None otherwise. The
    SE is the estimator's own where it has one, else recovered from the 95% interval (a Wald interval on the log
    scale, as the sequence ratios' is approximately)."""
    if result.estimate is None or "ratio" not in result.estimand:
        return None, None
    se = result.se_log_estimate
    if se is None and result.ci_lower and result.ci_upper:
        se = (math.log(result.ci_upper) - math.log(result.ci_lower)) / (2 * 1.959963984540054)
    return math.log(result.estimate), se


def _e_values(result: EstimateResult) -> dict[str, float | None]:
    """The E-values of an adjusted ratio (an estimate with an adjustment set: cox_adjusted and the propensity-score
    analyses), None for everything else: crude ratios, rates, risks, sequence ratios and non-estimable rows.
    Whether a hazard ratio's outcome is rare is judged on the persons the estimate analysed."""
    none = dict.fromkeys(E_VALUE_COLUMNS)
    if (result.estimate is None or not result.covariates or "ratio" not in result.estimand
            or "sequence" in result.estimand):
        return none
    persons = (result.n_exposed or 0) + (result.n_unexposed or 0)
    events = (result.events_exposed or 0) + (result.events_unexposed or 0)
    share = events / persons if persons else None
    point, interval = e_values(result.estimand, result.estimate, result.ci_lower, result.ci_upper, share)
    return dict(zip(E_VALUE_COLUMNS, (point, interval)))


def results_frame(study_id: str, rows: list[tuple[str, str, EstimateResult]], seed: int | None = None,
                  calibration: Mapping[str, Calibration] | None = None,
                  sensitivity_analysis: str | None = None) -> pd.DataFrame:
    """The rows to publish. Each passes the estimability rule once more, so nothing that fails it (an infinite
    ratio, an estimate outside its interval) can reach results.associations whatever produced it. `seed`: the
    study's seed (None where no step is random, as in sequence symmetry). `calibration`: per exposure, the
    empirical calibration of its primary-analysis row (calibrate_primary_analysis); other rows get none.
    `sensitivity_analysis`: the id of the sensitivity analysis the rows belong to (None: the main analysis)."""
    records = []
    for exposure, outcome, result in rows:
        result = judged(result)
        log_estimate, se_log_estimate = _log_scale(result)
        calibrated = dict.fromkeys((*CALIBRATION_COLUMNS, CALIBRATION_NOTE_COLUMN))
        if calibration and exposure in calibration and calibration[exposure].analysis_id == result.analysis_id:
            calibrated = calibration[exposure].columns(log_estimate, se_log_estimate)
        records.append({"study_id": study_id, "exposure": exposure, "outcome": outcome,
                        "analysis_id": result.analysis_id, "method_name": ANALYSES.get(result.analysis_id),
                        **result.to_row(), "log_estimate": log_estimate, "se_log_estimate": se_log_estimate,
                        **_e_values(result), **calibrated, "seed": seed,
                        "sensitivity_analysis": sensitivity_analysis})
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame = frame.replace({np.nan: None})
    return frame


def covariates_frame(study_id: str, rows: list[tuple[str, str, EstimateResult]]) -> pd.DataFrame:
    """results.analysis_covariates: the adjustment set of every model, one row per covariate, in model order."""
    records = [{"study_id": study_id, "analysis_id": result.analysis_id, "exposure": exposure,
                "covariate_order": position, "covariate": covariate}
               for exposure, _, result in rows for position, covariate in enumerate(result.covariates, start=1)]
    columns = ["study_id", "analysis_id", "exposure", "covariate_order", "covariate"]
    return pd.DataFrame.from_records(records, columns=columns).drop_duplicates(
        ["study_id", "analysis_id", "exposure", "covariate"])


def attrition_frame(study_id: str, analysis: StudyAnalysis) -> pd.DataFrame:
    """results.analysis_attrition before disclosure control: per analysis, each step's persons per arm."""
    records = []
    for (exposure, analysis_id), steps in analysis.attrition.items():
        previous = None
        for order, step in enumerate(steps, start=1):
            records.append({
                "study_id": study_id, "analysis_id": analysis_id, "exposure": exposure, "step_order": order,
                "step": step.step, "reason": step.reason,
                "persons_exposed": step.persons_exposed, "persons_unexposed": step.persons_unexposed,
                "excluded_exposed": None if previous is None else previous.persons_exposed - step.persons_exposed,
                "excluded_unexposed": None if previous is None else
                previous.persons_unexposed - step.persons_unexposed})
            previous = step
    return pd.DataFrame.from_records(records, columns=ATTRITION_COLUMNS)


ATTRITION_COLUMNS = ["study_id", "analysis_id", "exposure", "step_order", "step", "reason", "persons_exposed",
                     "persons_unexposed", "excluded_exposed", "excluded_unexposed"]
