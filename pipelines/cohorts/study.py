"""Study definitions: the schema of `studies/<id>.yaml` and its loader.

A study file says who enters the study population (study period, prior observation, age, index rule), which outcome
is counted (with its washout), which phenotypes are recorded at index (exposures and covariates, each with a time
window) and how time at risk runs. `docs/studies.md` explains every field with examples. The loader turns every
problem into a `StudyDefinitionError` that names the file and the field.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, get_args

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from pipelines.disclosure import DEFAULT_SITE_FLOOR as DEFAULT_SMALL_CELL_THRESHOLD
from pipelines.field_paths import field_path
from pipelines.paths import STUDIES_DIR
from pipelines.phenotypes.loader import PhenotypeLibrary, phenotype_library
from pipelines.tables import STUDY_POPULATION_COLUMNS

# Study-independent settings (for now only small_cell_threshold) live in studies/_defaults.yaml; files whose name
# starts with "_" are not studies.
DEFAULTS_FILE_NAME = "_defaults.yaml"

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


def identifier(value: str) -> str:
    """`value` when it is a valid id (a study's, a sensitivity analysis's): it names tables, rows and files."""
    if not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a valid id (lower-case letters, digits and _, starting with a letter)")
    return value


VISIT_TYPES = ("inpatient", "outpatient", "emergency")
# Columns of cohort.study_population that a phenotype column must not shadow.
RESERVED_COLUMN_NAMES = frozenset(STUDY_POPULATION_COLUMNS)


class StudyDefinitionError(ValueError):
    """A study file that cannot be used; the message names the file and the field.

    `problems` holds each problem as (field path, message); the path is "" for checks across fields, whose message
    names its fields. A run-config override (pipelines/cohorts/settings.py) names them under its own config path.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class FieldProblem(ValueError):
    """A validator's problem at a field below the part it validates: `location` continues pydantic's location of
    that part (`(1,)` for an entry of the list a field validator checks, `("sensitivity_analyses", 0)` from the
    study's own validators). The loader joins the two (`_errors`), so every problem's path is written by one
    function, `field_paths.field_path`, whoever found the problem."""

    def __init__(self, location: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.location = tuple(location)
        self.message = message


def phenotype_domains(library: PhenotypeLibrary | None = None) -> dict[str, str]:
    """Every phenotype a study can name, with its domain (condition, drug, measurement, composite): the phenotype
    library (phenotypes/**/*.yaml) is the one list of them."""
    return (library or phenotype_library()).domains


def known_phenotype_ids(library: PhenotypeLibrary | None = None) -> frozenset[str]:
    """The ids of the phenotype library's definitions."""
    return frozenset(phenotype_domains(library))


def _domains_in(info: ValidationInfo) -> Mapping[str, str]:
    """The phenotypes the validation knows (load_study's context), by default the phenotype library's."""
    return (info.context or {}).get("phenotype_domains") or phenotype_domains()


def _parents_in(info: ValidationInfo) -> Mapping[str, str]:
    """Variant phenotype -> the phenotype it is a variant of (variant_of), from load_study's context, by default the
    phenotype library's."""
    context = info.context or {}
    if "phenotype_parents" in context:
        return context["phenotype_parents"]
    return phenotype_library().parents


def _check_phenotype_id(value: str, info: ValidationInfo) -> str:
    known = _domains_in(info)
    if value not in known:
        raise ValueError(f"unknown phenotype {value!r}; known phenotypes: {', '.join(sorted(known))}")
    return value


# A phenotype id that must be known (the known ids come from the validation context, see load_study).
PhenotypeId = Annotated[str, AfterValidator(_check_phenotype_id)]


class _Strict(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------------------------

class Window(_Strict):
    """When a phenotype counts as present at the index date. The index day itself always counts.

    Written in YAML as `any_time_prior`, `current_use` or `{lookback_days: N}`:
    - any_time_prior: the person's phenotype date (first qualifying event) is on or before the index date;
    - lookback_days N: an event of the phenotype in [index - N days, index];
    - current_use: a fill of the (drug) phenotype whose supply covers the index date (fill start <= index <= last
      day of supply).
    """

    kind: Literal["any_time_prior", "lookback_days", "current_use"]
    days: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value in ("any_time_prior", "current_use"):
                return {"kind": value}
            raise ValueError(f"window must be any_time_prior, current_use or {{lookback_days: N}}, got {value!r}")
        if isinstance(value, dict) and "kind" not in value:
            if set(value) == {"lookback_days"}:
                return {"kind": "lookback_days", "days": value["lookback_days"]}
            raise ValueError(f"window must be any_time_prior, current_use or {{lookback_days: N}}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _days_only_for_lookback(self) -> Window:
        if self.kind == "lookback_days" and self.days is None:
            raise ValueError("lookback_days needs a number of days")
        if self.kind != "lookback_days" and self.days is not None:
            raise ValueError(f"{self.kind} takes no number of days")
        return self

    def describe(self) -> str:
        return f"lookback {self.days} days" if self.kind == "lookback_days" else self.kind.replace("_", " ")


ANY_TIME_PRIOR = Window(kind="any_time_prior")


class NewUse(_Strict):
    """An incident-user (new-user) comparison for a drug exposure of a screening study (Ray 2003; the new-user
    logic of OHDSI CohortMethod and LEGEND applied to an exposure at index):
    - exposed: a current user at index whose first fill of the drug lies in the `started_within_days` before index
      (index day included), with `washout_days` of observation before that first fill;
    - unexposed: no fill whose supply reaches the `washout_days` before index;
    - everyone else (prevalent users, recent past users, starts without the washout observed) is left out of that
      exposure's comparison (its column is NULL in cohort.study_population).
    """

    washout_days: int = Field(default=365, ge=0)
    started_within_days: int = Field(default=365, ge=0)


ExposureTimeMode = Literal["at_index", "current"]


class ExposureTime(_Strict):
    """How exposure is timed over follow-up (study-wide; an exposure may override `mode`).

    - at_index: the exposure as recorded at index, fixed for all follow-up (the analyses every study publishes);
    - current: in addition, a time-varying analysis in which person-time is exposed only while the exposure acts:
      a drug exposure (window current_use) during its drug eras (fills joined while the next starts within
      `grace_days` of the supply so far, OHDSI drug_era's persistence window) and for `grace_days` after each era's
      last supply (Ray 2003's current use); a laboratory finding (a measurement phenotype with a lookback window)
      for `risk_window_days` from each abnormal result (a short risk window for a transient state). Other
      exposures (chronic conditions) keep the at-index analyses only.
    Rows: cohort.time_varying_exposure (sql/cohorts/time_varying_exposure.sql).
    """

    mode: ExposureTimeMode = "at_index"
    grace_days: int = Field(default=30, ge=0)
    risk_window_days: int = Field(default=42, ge=1)


class PhenotypeReference(_Strict):
    """An exposure or covariate: a phenotype and the window in which it counts as present at index.

    A bare phenotype id in YAML means `{phenotype: <id>, window: any_time_prior}`. `new_use` (exposures with window
    current_use only) compares new users with non-users instead of current with non-current users.
    `exposure_time` (exposures only) overrides the study's `exposure_time.mode` for this exposure.
    """

    phenotype: PhenotypeId
    window: Window = ANY_TIME_PRIOR
    new_use: NewUse | None = None
    exposure_time: ExposureTimeMode | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_bare_id(cls, value: Any) -> Any:
        return {"phenotype": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _current_use_needs_a_drug(self, info: ValidationInfo) -> PhenotypeReference:
        domain = _domains_in(info).get(self.phenotype)
        if self.window.kind == "current_use" and domain != "drug":
            raise ValueError(f"current_use needs a drug phenotype; {self.phenotype!r} is a {domain} phenotype")
        if self.new_use is not None and self.window.kind != "current_use":
            raise ValueError(f"new_use needs window current_use; {self.phenotype!r} has {self.window.describe()}")
        if self.exposure_time == "current" and time_varying_kind(self, domain) is None:
            raise ValueError(f"exposure_time current applies to drugs with window current_use and to laboratory "
                             f"findings with a lookback window; {self.phenotype!r} is a {domain} phenotype with "
                             f"{self.window.describe()}")
        return self


TIME_VARYING_KINDS = ("current_use", "risk_window")


def time_varying_kind(reference: PhenotypeReference, domain: str | None) -> str | None:
    """How an exposure can be timed over follow-up: `current_use` (a drug with window current_use: drug eras plus
    grace), `risk_window` (a laboratory finding judged in a lookback window: a window after each abnormal result),
    or None (a chronic condition or structural finding: at index only)."""
    if reference.window.kind == "current_use" and domain == "drug":
        return "current_use"
    if reference.window.kind == "lookback_days" and domain == "measurement":
        return "risk_window"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Population, index, outcome, time at risk
# ---------------------------------------------------------------------------------------------------------------

class StudyPeriod(_Strict):
    """Index dates fall in [start, end]; follow-up ends at `end` at the latest."""

    start: date
    end: date

    @model_validator(mode="after")
    def _start_before_end(self) -> StudyPeriod:
        if self.start > self.end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self


class AgeLimits(_Strict):
    """Inclusive limits on age at index in completed years; either may be left out."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _min_below_max(self) -> AgeLimits:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"age {self.min} to {self.max} at index"
        if self.min is not None:
            return f"age {self.min} or older at index"
        if self.max is not None:
            return f"age {self.max} or younger at index"
        return "any age at index (no limits set)"


class FirstVisitIndex(_Strict):
    """Index = the person's first visit (of `visit_types`, all types if empty) in the study period that lies in an
    observation period with at least `prior_observation_days` of that same period before it."""

    rule: Literal["first_visit"]
    visit_types: list[Literal["inpatient", "outpatient", "emergency"]] = Field(default_factory=list)


class Indication(_Strict):
    """The condition a new user must have been treated for (LEGEND-HTN: hypertension in the year before the first
    antihypertensive fill): an event of `phenotype` in [index - lookback_days, index]."""

    phenotype: PhenotypeId
    lookback_days: int = Field(default=365, ge=0)

    @model_validator(mode="after")
    def _a_condition(self, info: ValidationInfo) -> Indication:
        domain = _domains_in(info).get(self.phenotype)
        if domain != "condition":
            raise ValueError(f"indication must be a condition phenotype; {self.phenotype!r} is a {domain} phenotype")
        return self


class NewUserIndex(_Strict):
    """Active-comparator new-user design: index = the first fill of `target` or `comparator` in the study period;
    persons with use of either in the `washout_days` before index, or starting both on the index date, are left
    out. `treatment` is 1 for target and 0 for comparator initiators. Both intention-to-treat and on-treatment
    (censored at discontinuation + `grace_days` or at a switch) analyses are published.

    Monotherapy at index (LEGEND): with `exclude_combination_products`, a person is left out when a product filled on
    the index date that counts for target or comparator is a combination product, that is the same record (same day,
    vocabulary and code) also counts for the other study class or for one of `combination_partners` (the classes of
    the other active ingredients, e.g. ACE inhibitors). With `indication`, a person without an event of that condition
    in the lookback before index is left out."""

    rule: Literal["new_user"]
    target: PhenotypeId
    comparator: PhenotypeId
    washout_days: int = Field(default=365, ge=0)
    # The persistence window of the on-treatment analysis (LEGEND: 30 days): fills of the drug started at index join
    # one era while the next starts within this many days of the supply so far, and the era ends this many days
    # after its last supply (cohort.study_population.on_treatment_end: the first era of sql/cohorts/exposure_eras.sql).
    grace_days: int = Field(default=30, ge=0)
    indication: Indication | None = None
    exclude_combination_products: bool = False
    combination_partners: list[PhenotypeId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _two_different_drugs(self, info: ValidationInfo) -> NewUserIndex:
        if self.target == self.comparator:
            raise ValueError(f"target and comparator are both {self.target!r}")
        domains = _domains_in(info)
        for role, phenotype in (("target", self.target), ("comparator", self.comparator)):
            if domains.get(phenotype) != "drug":
                raise ValueError(f"{role} must be a drug phenotype; {phenotype!r} is a {domains.get(phenotype)} "
                                 "phenotype")
        return self

    @model_validator(mode="after")
    def _combination_partners_are_other_drugs(self, info: ValidationInfo) -> NewUserIndex:
        if self.combination_partners and not self.exclude_combination_products:
            raise FieldProblem(("combination_partners",), "needs exclude_combination_products: true")
        domains = _domains_in(info)
        for position, phenotype in enumerate(self.combination_partners):
            if phenotype in (self.target, self.comparator):
                raise FieldProblem(("combination_partners", position),
                                   f"{phenotype!r} is the target or comparator (a product of both study classes "
                                   "counts as a combination already)")
            if domains.get(phenotype) != "drug":
                raise FieldProblem(("combination_partners", position),
                                   f"{phenotype!r} is a {domains.get(phenotype)} phenotype, not a drug")
        return self


class LabTestIndex(_Strict):
    """A laboratory finding against tested persons with a normal result, anchored at the test.

    Index = the person's first test of `finding`'s measurement codes (a plausible value) in the study period, with
    `prior_observation_days` of observation before it. The finding is the study's one exposure, present when the
    index test (or another test of that day) meets the phenotype's threshold; `comparator: tested_normal` says who it
    is compared with: tested persons whose index test was normal. Persons never tested in the study period are not
    compared (attrition step `no_test_in_study_period`), because untested persons are a different population
    (tested because of symptoms or drugs), not persons with normal values."""

    rule: Literal["lab_test"]
    finding: PhenotypeId
    comparator: Literal["tested_normal"] = "tested_normal"

    @model_validator(mode="after")
    def _finding_is_a_measurement(self, info: ValidationInfo) -> LabTestIndex:
        domain = _domains_in(info).get(self.finding)
        if domain != "measurement":
            raise ValueError(f"finding must be a measurement phenotype; {self.finding!r} is a {domain} phenotype")
        library = phenotype_library()
        rule = library[self.finding].definition.rule.type if self.finding in library.ids else "min_records"
        if rule != "min_records":
            # The index test's result is the finding's events of that day. For a lowest_value (ABI) or all_values
            # phenotype they are judged on every reading so far, earlier tests (before the study period too)
            # included, and tested_normal would hold every other category (an ABI above 1.40 is not normal).
            raise ValueError(f"finding {self.finding!r} has rule {rule}: a lab_test finding is judged by the index "
                             "test's own values, so it must be a min_records measurement phenotype (a value meeting "
                             "the threshold)")
        return self


# The exposure window of a lab_test study's finding: the index day only (the index test's own result).
LAB_TEST_FINDING_WINDOW = {"lookback_days": 0}

IndexRule = Annotated[FirstVisitIndex | NewUserIndex | LabTestIndex, Field(discriminator="rule")]
# The index rules by name (the union's tags), as a study file writes them.
INDEX_RULES = tuple(get_args(rule.model_fields["rule"].annotation)[0]
                    for rule in (FirstVisitIndex, NewUserIndex, LabTestIndex))


class OutcomeWashout(_Strict):
    """Which earlier outcomes remove a person (incident outcomes only).

    YAML: `any_time_prior` (default), `{lookback_days: N}` or `none`. The washout covers every day before the time
    at risk starts, so with the default start (index + 1 day) an outcome on the index date removes the person.
    """

    kind: Literal["any_time_prior", "lookback_days", "none"]
    days: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if value is None or value is False:
            return {"kind": "none"}
        if isinstance(value, str):
            if value in ("any_time_prior", "none"):
                return {"kind": value}
            raise ValueError(f"washout must be any_time_prior, none or {{lookback_days: N}}, got {value!r}")
        if isinstance(value, dict) and "kind" not in value:
            if set(value) == {"lookback_days"}:
                return {"kind": "lookback_days", "days": value["lookback_days"]}
            raise ValueError(f"washout must be any_time_prior, none or {{lookback_days: N}}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _days_only_for_lookback(self) -> OutcomeWashout:
        if (self.kind == "lookback_days") != (self.days is not None):
            raise ValueError("washout days are needed for lookback_days and only there")
        return self


class Outcome(_Strict):
    phenotype: PhenotypeId = "leg_cramps"
    washout: OutcomeWashout = OutcomeWashout(kind="any_time_prior")


class TimeAtRisk(_Strict):
    """Time at risk runs from index + start_offset_days to the earliest of: end of the observation period holding
    the index date, death, end of the study period, and index + max_days (if set).

    `censor_unexposed_at_exposure_start` asks the statistics stage to end an unexposed person's time at risk the day
    before they start the exposure it analyses (the date is `<exposure>_first_date` in cohort.study_population).
    """

    start_offset_days: int = Field(default=1, ge=0)
    max_days: int | None = Field(default=None, ge=0)
    censor_unexposed_at_exposure_start: bool = False

    @model_validator(mode="after")
    def _start_before_end(self) -> TimeAtRisk:
        if self.max_days is not None and self.max_days < self.start_offset_days:
            raise ValueError(f"time at risk would end (index + {self.max_days} days) before it starts "
                             f"(index + {self.start_offset_days} days)")
        return self


class SensitivityAnalysis(_Strict):
    """A variant of the study's analyses with one phenotype replaced by a variant phenotype, the design otherwise
    the same. Its rows are labelled with `id`. `variant` must name `replace` as its parent (the phenotype file's
    variant_of), and `replace` is the study's outcome or one of its exposures (first_visit studies):
    - outcome: the variant outcome is counted in the study population of the main analysis, less the persons with a
      variant outcome before their time at risk (the outcome washout applied to the variant); every exposure is
      analysed again;
    - exposure: the variant is recorded at index on the replaced exposure's window terms (a column of
      cohort.study_population, role exposure_variant in cohort.study_variables) and that exposure's analyses are
      run again with it, the rest of the study unchanged."""

    id: str
    replace: PhenotypeId
    variant: PhenotypeId
    description: str = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _id_is_an_identifier(cls, value: str) -> str:
        return identifier(value)

    @model_validator(mode="after")
    def _same_domain(self, info: ValidationInfo) -> SensitivityAnalysis:
        domains = _domains_in(info)
        if self.variant == self.replace:
            raise ValueError(f"sensitivity analysis {self.id!r} replaces {self.replace!r} by itself")
        if domains.get(self.variant) != domains.get(self.replace):
            raise ValueError(f"sensitivity analysis {self.id!r}: {self.variant!r} is a {domains.get(self.variant)} "
                             f"phenotype, {self.replace!r} a {domains.get(self.replace)} phenotype")
        return self

    def parent_problem(self, parents: Mapping[str, str]) -> str | None:
        """Why `variant` cannot replace `replace` (it names another parent, or none), or None."""
        parent = parents.get(self.variant)
        if parent == self.replace:
            return None
        named = f"names {parent!r} as its parent" if parent else "is not a variant (its file has no variant_of)"
        return (f"sensitivity analysis {self.id!r}: {self.variant!r} {named}, so it cannot replace {self.replace!r}; "
                "a variant phenotype names the phenotype it varies (variant_of)")


# ---------------------------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------------------------

class StudyVariable(BaseModel):
    """One phenotype recorded per person at index: a column of cohort.study_population."""

    model_config = ConfigDict(frozen=True)

    variable: str  # the phenotype id, also the column name
    # exposure_variant: a sensitivity analysis's variant of an exposure, recorded on that exposure's window terms
    # negative_control_exposure: a drug the outcome is believed not to depend on, recorded as current use at index
    role: Literal["exposure", "covariate", "target", "comparator", "exposure_variant", "negative_control_exposure"]
    window: Window
    order: int
    new_use: NewUse | None = None


# The study's two lists of negative controls, each checked by one validator: (what an entry is, the domain its
# phenotype must have, why).
NEGATIVE_CONTROL_LISTS = {
    "negative_control_outcomes": ("negative-control outcome", "condition", ""),
    "negative_control_exposures": ("negative-control exposure", "drug", " (recorded as current use at index)"),
}


class StudyDefinition(_Strict):
    id: str
    title: str
    description: str = ""
    study_period: StudyPeriod
    prior_observation_days: int = Field(default=365, ge=0)
    age_at_index: AgeLimits = AgeLimits()
    index: IndexRule
    outcome: Outcome = Outcome()
    exposures: list[PhenotypeReference] = Field(default_factory=list)
    covariates: list[PhenotypeReference] = Field(default_factory=list)
    demographic_covariates: list[Literal["age", "sex"]] = Field(default_factory=lambda: ["age", "sex"])
    time_at_risk: TimeAtRisk = TimeAtRisk()
    table1_by: str | None = None
    small_cell_threshold: int | None = Field(default=None, ge=1)
    # Seeds every random step of the statistics (model sampling, cross-validation folds, matching order), and is
    # published with the results, so that a study file gives the same estimates on every run.
    seed: int = Field(default=0, ge=0)
    # The horizon of the published risks (Kaplan-Meier, pipelines/statistics/risks.py), in days from the first day
    # at risk.
    risk_horizon_days: int = Field(default=365, ge=1)
    # The analysis the report's summary and forest plot lead with: an analysis id of results.associations
    # (pipelines/statistics/results.py ANALYSES, checked when the statistics assets are built); by default the
    # design's primary (adjusted Cox for first_visit and lab_test, PS-matched Cox for new_user).
    primary_analysis: str | None = None
    # Exposure frozen at index only, or also time-varying current use / risk windows (ExposureTime).
    exposure_time: ExposureTime = ExposureTime()
    # The domains of the exposures in the phenotypes the study was validated against (time_varying_exposures).
    _domains: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _remember_domains(self, info: ValidationInfo) -> StudyDefinition:
        known = _domains_in(info)
        self._domains = {r.phenotype: known[r.phenotype] for r in self.exposures if r.phenotype in known}
        return self
    # Negative-control outcomes (condition phenotypes the exposures are believed not to cause): the statistics stage
    # estimates the primary analysis for each with the same design and calibrates the primary estimates on them
    # (OHDSI EmpiricalCalibration; docs/statistics.md, "Negative controls and empirical calibration").
    negative_control_outcomes: list[PhenotypeId] = Field(default_factory=list)
    # Negative-control exposures (drug phenotypes believed not to cause or prevent the outcome): recorded as current
    # use at index like the study's drug exposures, estimated with the primary analysis of the exposures (first_visit
    # and lab_test designs), and the primary estimates calibrated on them (docs/statistics.md).
    negative_control_exposures: list[PhenotypeId] = Field(default_factory=list)
    # Variants of the analyses with one phenotype replaced (the sensitivity analyses the phenotype files promise).
    sensitivity_analyses: list[SensitivityAnalysis] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _lab_test_exposure_is_its_finding(cls, data: Any) -> Any:
        """A lab_test study has one exposure, its finding as judged on the index test; it is not listed by hand."""
        if isinstance(data, dict) and isinstance(data.get("index"), dict) and data["index"].get("rule") == "lab_test":
            if data.get("exposures"):
                raise FieldProblem(("exposures",), "a lab_test study's exposure is its index.finding (judged on the "
                                                   "index test); leave exposures out")
            finding = data["index"].get("finding")
            data = {**data, "exposures": [{"phenotype": finding, "window": LAB_TEST_FINDING_WINDOW}]}
        return data

    @field_validator("negative_control_outcomes", "negative_control_exposures")
    @classmethod
    def _negative_controls_are_distinct_phenotypes_of_their_domain(cls, value: list[str],
                                                                   info: ValidationInfo) -> list[str]:
        """Both lists (NEGATIVE_CONTROL_LISTS): each entry a phenotype of the list's domain, listed once."""
        kind, domain, why = NEGATIVE_CONTROL_LISTS[info.field_name]
        domains = _domains_in(info)
        for position, control in enumerate(value):
            if domains.get(control) != domain:
                raise FieldProblem((position,), f"a {kind} must be a {domain} phenotype{why}; {control!r} is a "
                                                f"{domains.get(control)} phenotype")
            if control in value[:position]:
                raise FieldProblem((position,), f"{control!r} is listed twice (also at [{value.index(control)}])")
        return value

    @field_validator("id")
    @classmethod
    def _id_is_an_identifier(cls, value: str) -> str:
        return identifier(value)

    @model_validator(mode="after")
    def _consistent(self) -> StudyDefinition:
        seen: dict[str, str] = {}
        for section, references in (("exposures", self.exposures), ("covariates", self.covariates)):
            for position, reference in enumerate(references):
                if reference.phenotype in seen:
                    raise FieldProblem((section, position), f"{reference.phenotype!r} is already listed in "
                                       f"{seen[reference.phenotype]}; each phenotype may appear once")
                if reference.new_use is not None and (section != "exposures" or self.is_new_user):
                    raise FieldProblem((section, position, "new_use"),
                                       "new_use applies to the exposures of a first_visit study")
                if reference.exposure_time is not None and (section != "exposures" or self.is_new_user):
                    raise FieldProblem((section, position, "exposure_time"),
                                       "exposure_time applies to the exposures of a first_visit or lab_test study")
                seen[reference.phenotype] = section
        if self.outcome.phenotype in seen:
            raise ValueError(f"the outcome {self.outcome.phenotype!r} is also listed in {seen[self.outcome.phenotype]}")
        if isinstance(self.index, NewUserIndex):
            for role in ("target", "comparator"):
                phenotype = getattr(self.index, role)
                if phenotype in seen:
                    raise ValueError(f"the {role} {phenotype!r} is also listed in {seen[phenotype]}; it is recorded "
                                     "automatically")
                if phenotype == self.outcome.phenotype:
                    raise ValueError(f"the {role} {phenotype!r} is also the outcome")
            if self.index.washout_days > self.prior_observation_days:
                raise ValueError(f"index.washout_days ({self.index.washout_days}) exceeds prior_observation_days "
                                 f"({self.prior_observation_days}): use before observation starts cannot be seen")
            indication = self.index.indication
            if indication is not None and indication.lookback_days > self.prior_observation_days:
                raise ValueError(f"index.indication.lookback_days ({indication.lookback_days}) exceeds "
                                 f"prior_observation_days ({self.prior_observation_days}): a diagnosis before "
                                 "observation starts cannot be seen")
            if self.table1_by not in (None, "treatment", self.index.target, self.index.comparator):
                raise FieldProblem(("table1_by",), f"a new-user study splits Table 1 by treatment; use 'treatment' "
                                                   f"(or leave it out), not {self.table1_by!r}")
        elif self.table1_by is not None and self.table1_by not in seen:
            raise FieldProblem(("table1_by",), f"{self.table1_by!r} is not one of this study's exposures or covariates")
        for position, control in enumerate(self.negative_control_outcomes):
            if control == self.outcome.phenotype or control in seen:
                raise FieldProblem(("negative_control_outcomes", position),
                                   f"{control!r} is also the outcome, an exposure or a covariate; a negative control "
                                   "is an outcome the exposures are believed not to cause")
        if self.negative_control_exposures and self.is_new_user:
            raise FieldProblem(("negative_control_exposures",), "a new_user study compares its target with its "
                               "comparator; calibrate it on negative_control_outcomes instead")
        for position, control in enumerate(self.negative_control_exposures):
            if control == self.outcome.phenotype or control in seen or control in self.negative_control_outcomes:
                raise FieldProblem(("negative_control_exposures", position),
                                   f"{control!r} is also the outcome, an exposure, a covariate or a negative-control "
                                   "outcome; a negative-control exposure is a drug the outcome is believed not to "
                                   "depend on")
        sensitivity_ids: set[str] = set()
        exposure_ids = [reference.phenotype for reference in self.exposures]
        for position, sensitivity in enumerate(self.sensitivity_analyses):
            where = ("sensitivity_analyses", position)
            if sensitivity.id in sensitivity_ids:
                raise FieldProblem((*where, "id"), f"{sensitivity.id!r} is used twice")
            sensitivity_ids.add(sensitivity.id)
            if sensitivity.replace == self.outcome.phenotype:
                continue
            if sensitivity.replace not in exposure_ids:
                raise FieldProblem((*where, "replace"),
                                   f"{sensitivity.replace!r} is not the outcome or an exposure of this study; only "
                                   f"the outcome ({self.outcome.phenotype!r}) or an exposure can be replaced")
            if not isinstance(self.index, FirstVisitIndex):
                raise FieldProblem((*where, "replace"),
                                   f"an exposure can be replaced in a first_visit study only (a {self.index.rule} "
                                   "study's exposure is its index rule); replace the outcome instead")
            if sensitivity.variant in seen:
                raise FieldProblem((*where, "variant"),
                                   f"the variant {sensitivity.variant!r} is also listed in "
                                   f"{seen[sensitivity.variant]}")
            reference = self.exposures[exposure_ids.index(sensitivity.replace)]
            if reference.window.kind == "current_use":
                raise FieldProblem((*where, "replace"),
                                   f"{sensitivity.replace!r} is a drug exposure (current_use), which adjusts the "
                                   "other drug exposures' models as co-medication; replacing it would change every "
                                   "model, which a one-exposure variant does not rerun")
        for name in seen:
            if name in RESERVED_COLUMN_NAMES or name.endswith("_first_date"):
                raise ValueError(f"phenotype {name!r} would clash with a column of cohort.study_population")
        return self

    @model_validator(mode="after")
    def _variants_name_what_they_replace(self, info: ValidationInfo) -> StudyDefinition:
        """After _consistent (which says what may be replaced): the variant's file names the replaced phenotype."""
        parents = _parents_in(info)
        for position, sensitivity in enumerate(self.sensitivity_analyses):
            problem = sensitivity.parent_problem(parents)
            if problem:
                raise FieldProblem(("sensitivity_analyses", position, "variant"), problem)
        return self

    # -- derived views used by the builder and the statistics stage ----------------------------------------------

    @property
    def is_new_user(self) -> bool:
        return isinstance(self.index, NewUserIndex)

    @property
    def threshold(self) -> int:
        """The small-cell threshold in force (the loader fills in the global default)."""
        return self.small_cell_threshold or DEFAULT_SMALL_CELL_THRESHOLD

    @property
    def variables(self) -> list[StudyVariable]:
        """The phenotype columns of cohort.study_population, in order: target and comparator (new-user designs, as
        current use), exposures, covariates."""
        variables: list[StudyVariable] = []
        if isinstance(self.index, NewUserIndex):
            for role in ("target", "comparator"):
                variables.append(StudyVariable(variable=getattr(self.index, role), role=role,
                                               window=Window(kind="current_use"), order=len(variables) + 1))
        for role, references in (("exposure", self.exposures), ("covariate", self.covariates)):
            for reference in references:
                variables.append(StudyVariable(variable=reference.phenotype, role=role, window=reference.window,
                                               order=len(variables) + 1, new_use=reference.new_use))
        for reference in self.exposure_variants.values():
            if reference.phenotype not in {v.variable for v in variables}:
                variables.append(StudyVariable(variable=reference.phenotype, role="exposure_variant",
                                               window=reference.window, order=len(variables) + 1,
                                               new_use=reference.new_use))
        for control in self.negative_control_exposures:
            variables.append(StudyVariable(variable=control, role="negative_control_exposure",
                                           window=Window(kind="current_use"), order=len(variables) + 1))
        return variables

    @property
    def negative_control_exposure_references(self) -> list[PhenotypeReference]:
        """The negative-control exposures as exposures of the study's design: current use at index."""
        return [PhenotypeReference.model_construct(phenotype=control, window=Window(kind="current_use"),
                                                   new_use=None, exposure_time=None)
                for control in self.negative_control_exposures]

    @property
    def analysed_sensitivity_analyses(self) -> list[SensitivityAnalysis]:
        """The sensitivity analyses whose replaced phenotype is the study's outcome or one of its exposures: all of a
        study file's (validated so), fewer for a study narrowed without validation (model_copy of fewer exposures,
        as tests do to stay fast)."""
        return [s for s in self.sensitivity_analyses
                if s.replace == self.outcome.phenotype or s.id in self.exposure_variants]

    @property
    def exposure_variants(self) -> dict[str, PhenotypeReference]:
        """Per sensitivity analysis that replaces an exposure (by id), the variant as an exposure: the replaced
        exposure's reference (window, new_use, exposure_time) with the variant's phenotype."""
        references = {reference.phenotype: reference for reference in self.exposures}
        return {sensitivity.id: references[sensitivity.replace].model_copy(update={"phenotype": sensitivity.variant})
                for sensitivity in self.sensitivity_analyses
                if sensitivity.replace != self.outcome.phenotype and sensitivity.replace in references}

    @property
    def time_varying_exposures(self) -> dict[str, str]:
        """The exposures analysed with time-varying exposure (mode current, per study or per exposure), each with
        its kind (`time_varying_kind`): {phenotype: "current_use" | "risk_window"}. New-user designs have none
        (their on-treatment analysis is the time-varying one)."""
        if self.is_new_user:
            return {}
        chosen = {}
        for reference in self.exposures:
            mode = reference.exposure_time or self.exposure_time.mode
            domain = self._domains.get(reference.phenotype) or phenotype_domains().get(reference.phenotype)
            kind = time_varying_kind(reference, domain)
            if mode == "current" and kind is not None:
                chosen[reference.phenotype] = kind
        return chosen

    @property
    def phenotype_ids(self) -> list[str]:
        """Every phenotype the study reads: variables, outcome and (new-user designs) the indication and the
        combination partners."""
        index_rule_reads = []
        if isinstance(self.index, NewUserIndex):
            index_rule_reads = ([self.index.indication.phenotype] if self.index.indication else []) + list(
                self.index.combination_partners)
        variants = [sensitivity.variant for sensitivity in self.sensitivity_analyses]
        return list(dict.fromkeys([v.variable for v in self.variables] + [self.outcome.phenotype] + index_rule_reads
                                  + variants))

    @property
    def table1_split(self) -> Literal["treatment", "variable", "none"]:
        if self.is_new_user:
            return "treatment"
        return "variable" if self.table1_by else "none"

    @property
    def table1_groups(self) -> tuple[str, str] | None:
        """The two Table 1 groups (compared group first, for the SMD), or None for an overall-only table."""
        return {"treatment": ("target", "comparator"), "variable": ("exposed", "unexposed"), "none": None}[
            self.table1_split]

    def cohort_definitions(self) -> list[CohortDefinition]:
        """The OMOP-shaped cohorts this study publishes in cohort.cohort."""
        definitions = [CohortDefinition.make(self.id, f"{self.id}: study population", "study_population", None,
                                             "Persons in the study population, from index to the end of follow-up.")]
        for variable in self.variables:
            if variable.role in ("covariate", "exposure_variant", "negative_control_exposure"):
                continue
            if variable.role in ("target", "comparator"):
                name = f"{self.id}: {variable.role} (new users of {variable.variable})"
            else:
                name = f"{self.id}: exposed to {variable.variable} at index"
            definitions.append(CohortDefinition.make(
                self.id, name, "exposure", variable.variable,
                f"Study population members with {variable.variable} at index ({variable.window.describe()}), from "
                "index to the end of follow-up."))
        definitions.append(CohortDefinition.make(
            self.id, f"{self.id}: outcome {self.outcome.phenotype} in time at risk", "outcome", self.outcome.phenotype,
            "Study population members whose first outcome in the time at risk falls on cohort_start_date."))
        return definitions


class CohortDefinition(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_definition_id: int
    study_id: str
    cohort_name: str
    kind: Literal["study_population", "exposure", "outcome"]
    phenotype_id: str | None
    description: str

    @classmethod
    def make(cls, study_id: str, cohort_name: str, kind: str, phenotype_id: str | None,
             description: str) -> CohortDefinition:
        return cls(cohort_definition_id=cohort_definition_id(study_id, cohort_name), study_id=study_id,
                   cohort_name=cohort_name, kind=kind, phenotype_id=phenotype_id, description=description)


def cohort_definition_id(study_id: str, cohort_name: str) -> int:
    """A stable positive 31-bit id from the study and cohort name, so studies built in separate steps never collide
    and ids survive reruns (load_studies checks that no two cohorts share an id)."""
    digest = hashlib.sha256(f"{study_id}\x1f{cohort_name}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------

def problem_line(field: str, message: str, under: str = "") -> str:
    """One problem as printed: "<path>: <message>"; `field` "" is a check across fields, whose message names them
    (printed under `under` alone, or bare)."""
    path = f"{under}.{field}" if under and field and not field.startswith("[") else under + field
    return f"{path}: {message}" if path else message


def _errors(error: ValidationError) -> list[tuple[str, str]]:
    """(field path, message) per problem; the path is "" for checks across fields (they name their fields)."""
    problems = []
    for item in error.errors():
        location, message = tuple(item["loc"]), item["msg"].removeprefix("Value error, ")
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblem):
            location, message = location + cause.location, cause.message
        elif item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; docs/studies.md lists the fields)"
        elif item["type"] == "union_tag_not_found":  # the index without its rule
            location, message = location + ("rule",), f"Field required ({_one_of(INDEX_RULES)})"
        elif item["type"] in ("model_type", "model_attributes_type"):  # a scalar or list where fields belong
            what = _WRITTEN_AS.get((item.get("ctx") or {}).get("class_name"), "a mapping of fields")
            message = f"expected {what}, got {item['input']!r}"
        problems.append((field_path(location, union_tags={"index": INDEX_RULES}), message))
    return problems


def _one_of(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


# How a part of a study file that is not a plain mapping of fields may be written, for the messages.
_WRITTEN_AS = {"PhenotypeReference": "a phenotype id or a mapping {phenotype: <id>, window: ...}"}


def _error_lines(problems: list[tuple[str, str]]) -> list[str]:
    return [problem_line(field, message) for field, message in problems]


def merge_override(base: Any, override: Any) -> Any:
    """`override` over `base`: mappings merge key by key (so `study_period: {start: ...}` keeps the file's end);
    anything else (lists, scalars, shorthands such as `washout: any_time_prior`) replaces the base value."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: merge_override(base.get(key), value) for key, value in override.items()}}
    return override


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyDefinitionError(f"{path}: not valid YAML: {error}") from None


def load_defaults(directory: Path = STUDIES_DIR) -> dict[str, Any]:
    """Global study settings from studies/_defaults.yaml (absent file = built-in defaults)."""
    path = directory / DEFAULTS_FILE_NAME
    defaults: dict[str, Any] = {"small_cell_threshold": DEFAULT_SMALL_CELL_THRESHOLD}
    if path.exists():
        data = _read_yaml(path) or {}
        unknown = set(data) - set(defaults)
        if unknown:
            raise StudyDefinitionError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; "
                                       f"known: {', '.join(defaults)}")
        threshold = data.get("small_cell_threshold", defaults["small_cell_threshold"])
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise StudyDefinitionError(f"{path}: small_cell_threshold must be a whole number >= 1, got {threshold!r}")
        defaults["small_cell_threshold"] = threshold
    return defaults


def load_study(path: Path, library: PhenotypeLibrary | None = None,
               defaults: dict[str, Any] | None = None, override: dict[str, Any] | None = None) -> StudyDefinition:
    """Read and check one study file. The study id must equal the file name without .yaml.

    `library`: the phenotypes the study may name (default: the phenotype library of phenotypes/).

    `override` (a partial study definition, e.g. from a run's configuration) is merged over the file's contents
    (`merge_override`) before the same checks.
    """
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise StudyDefinitionError(f"{path}: expected a mapping of study fields, got {type(data).__name__}")
    if override:
        data = merge_override(data, override)
    defaults = defaults if defaults is not None else load_defaults(path.parent)
    if data.get("small_cell_threshold") is None:
        data = {**data, "small_cell_threshold": defaults["small_cell_threshold"]}
    context = {"phenotype_domains": phenotype_domains(library),
               "phenotype_parents": (library or phenotype_library()).parents}
    try:
        study = StudyDefinition.model_validate(data, context=context)
    except ValidationError as error:
        problems = _errors(error)
        raise StudyDefinitionError(f"{path}: invalid study definition:\n  - " + "\n  - ".join(_error_lines(problems)),
                                   problems) from None
    if study.id != path.stem:
        raise StudyDefinitionError(f"{path}: id: {study.id!r} must equal the file name ({path.stem!r})")
    return study


def load_studies(directory: Path = STUDIES_DIR,
                 library: PhenotypeLibrary | None = None) -> dict[str, StudyDefinition]:
    """Every studies/<id>.yaml (names starting with "_" are settings, not studies), by id, in file-name order.

    Read and checked once per process for the same files: the result is kept under the folder, the bytes of its
    *.yaml files and the phenotype library it was checked against, so an edited, added or removed study file (or
    studies/_defaults.yaml) is read again on the next call, while the code location, the run's steps, its set-up
    checks and its summary share one reading (a run asked for the studies 8 times, 0.5 s of CPU each: issue #21).
    The studies are frozen models; each caller gets its own dict."""
    directory = Path(directory)
    library = library if library is not None else phenotype_library()
    files = sorted(directory.glob("*.yaml"))
    contents = hashlib.sha256()
    for path in files:
        contents.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        contents.update(path.read_bytes())
    key = (directory.resolve(), contents.hexdigest())
    cached = _STUDIES_READ.get(key)
    if cached is None or cached[0] is not library:
        cached = (library, _read_studies(directory, library))
        _STUDIES_READ[key] = cached
    return dict(cached[1])


# (folder, digest of its *.yaml files) -> (the phenotype library the studies were checked against, the studies).
_STUDIES_READ: dict[tuple[Path, str], tuple[PhenotypeLibrary, dict[str, StudyDefinition]]] = {}


def _read_studies(directory: Path, library: PhenotypeLibrary) -> dict[str, StudyDefinition]:
    defaults = load_defaults(directory)
    studies: dict[str, StudyDefinition] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        study = load_study(path, library, defaults)
        studies[study.id] = study
    ids_seen: dict[int, str] = {}
    for study in studies.values():
        for definition in study.cohort_definitions():
            other = ids_seen.setdefault(definition.cohort_definition_id, definition.cohort_name)
            if other != definition.cohort_name:  # pragma: no cover - 31-bit hash collision
                raise StudyDefinitionError(f"cohort ids collide: {other!r} and {definition.cohort_name!r}; "
                                           "rename one of the studies")
    return studies
