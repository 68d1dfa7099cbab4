"""Epidemiological parameters of the synthetic population: every number the latent model uses.

Sources are named next to each number; "assumption" means a round figure chosen to look like adult primary-care
data, not taken from a source. docs/synthetic_data.md explains each block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DATA_START = "2012-01-01"
DATA_END = "2023-12-31"

# Age at the start of observation (years): bands with their share of persons. Assumption: an adult primary-care
# population that is skewed old (older people are registered in practices and attend far more often).
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (18, 29, 0.10), (30, 39, 0.11), (40, 49, 0.13), (50, 59, 0.17),
    (60, 69, 0.19), (70, 79, 0.17), (80, 89, 0.10), (90, 93, 0.03),
)
MAX_AGE = 95  # nobody is followed beyond this age
FEMALE_SHARE = 0.55
UNKNOWN_SEX_SHARE = 0.002

# Observation periods (assumption): length uniform 2-12 years inside the data window; 5% have two non-overlapping
# periods (re-registration after a gap), 0.5% two OVERLAPPING periods (a duplicated enrolment record).
OBS_MIN_YEARS, OBS_MAX_YEARS = 2.0, 12.0
TWO_PERIODS_SHARE = 0.05
OVERLAPPING_PERIODS_SHARE = 0.005
GAP_DAYS = (60, 720)
OVERLAP_DAYS = (10, 180)

# Death during observation: a Gompertz yearly rate by age in the middle of observation (mortality rises ~9% per year
# of age, the usual adult Gompertz slope), scaled so that about 3% of persons die during observation (assumption:
# the brief's figure; real registered populations lose more, but deaths leave the data early).
DEATH_RATE_AT_70_PER_YEAR = 0.0036
DEATH_LOG_RATE_PER_YEAR = 0.09

# Visits per person-year (assumption, in the range of primary-care consultation rates): outpatient rises with age and
# with the number of chronic conditions; emergency and inpatient are rarer and rise with age.
OUTPATIENT_PER_YEAR_AT_18 = 1.2
OUTPATIENT_PER_YEAR_PER_10_YEARS = 0.35
OUTPATIENT_PER_YEAR_PER_CHRONIC_CONDITION = 0.35
EMERGENCY_PER_YEAR = (0.06, 0.02)  # at 18, extra per 10 years
INPATIENT_PER_YEAR = (0.02, 0.015)
INPATIENT_LENGTH_OF_STAY_MEAN_DAYS = 4.0

# Drug fills: everyone with a chronic drug refills on one shared repeat-prescription cycle (30 or 90 days), so all
# of a person's drugs are dispensed on the same visits; each fill is late by 0-14 days, so gaps are < 30 days.
REFILL_INTERVAL_DAYS = ((30, 0.4), (90, 0.6))
REFILL_JITTER_MAX_DAYS = 14


@dataclass(frozen=True)
class ChronicCondition:
    """Cumulative prevalence F(age) = logistic(logit(p60) + slope * (age - 60) / 10), by sex.

    A person has the condition by age a when u < F(a) for one uniform u per person; the onset age solves F(age) = u,
    so prevalence at the start of observation and incidence during it come from one draw. ``odds_ratios`` multiply
    the odds when the person has (ever) another latent condition.
    """

    p60_female: float
    p60_male: float
    logit_slope_per_10_years: float = 0.0
    odds_ratios: tuple[tuple[str, float], ...] = ()
    repeat_codes_per_year: float = 0.4  # later visits that record the code again
    inpatient_share: float = 0.0  # share of incident diagnoses first recorded in an inpatient stay
    emergency_share: float = 0.0


@dataclass(frozen=True)
class AcuteCondition:
    """Episodes at a yearly rate r(age) = r60 * exp(log_slope * (age - 60) / 10); the first episode is coded."""

    rate60_per_year: float
    log_rate_slope_per_10_years: float = 0.0
    emergency_share: float = 0.2
    inpatient_share: float = 0.05
    female_rate_ratio: float = 1.0


# Order matters: a condition may only depend (odds_ratios) on conditions listed above it.
# Prevalences: assumptions in line with adult primary-care registers (hypertension ~30% of adults, diabetes ~10%,
# PAD 3-10% rising steeply with age and with diabetes, hypothyroidism ~5% of women), stated in docs/synthetic_data.md.
CHRONIC: dict[str, ChronicCondition] = {
    "hypertension": ChronicCondition(0.40, 0.45, 0.55, repeat_codes_per_year=0.8),
    "dyslipidaemia": ChronicCondition(0.30, 0.35, 0.35, repeat_codes_per_year=0.5),
    "diabetes_mellitus": ChronicCondition(0.085, 0.11, 0.30, repeat_codes_per_year=1.5, inpatient_share=0.08,
                                          emergency_share=0.04),
    "heart_failure": ChronicCondition(0.015, 0.025, 0.75, (("hypertension", 2.0), ("diabetes_mellitus", 1.5)),
                                      repeat_codes_per_year=0.8, inpatient_share=0.30, emergency_share=0.10),
    "asthma": ChronicCondition(0.09, 0.06, 0.0, repeat_codes_per_year=0.4),
    "copd": ChronicCondition(0.035, 0.05, 0.50, repeat_codes_per_year=0.6, inpatient_share=0.05),
    "alcohol_use": ChronicCondition(0.025, 0.07, 0.0, repeat_codes_per_year=0.3),
    "peripheral_arterial_disease": ChronicCondition(0.014, 0.02, 0.65, (("diabetes_mellitus", 2.0),
                                                                        ("hypertension", 1.4)),
                                                    repeat_codes_per_year=1.2, inpatient_share=0.08),
    "peripheral_neuropathy": ChronicCondition(0.025, 0.03, 0.40, (("alcohol_use", 3.0),)),
    "radiculopathy": ChronicCondition(0.04, 0.04, 0.10),
    "lumbar_spinal_stenosis": ChronicCondition(0.016, 0.016, 0.55),
    "lumbar_stenosis_with_neurogenic_claudication": ChronicCondition(0.010, 0.010, 0.55),
    "parkinsons_disease": ChronicCondition(0.003, 0.004, 0.70, repeat_codes_per_year=0.8),
    "hypothyroidism": ChronicCondition(0.07, 0.02, 0.30, repeat_codes_per_year=0.6),
    "metabolic_myopathy": ChronicCondition(0.0006, 0.0006, 0.0, repeat_codes_per_year=0.3),
    "inflammatory_myopathy": ChronicCondition(0.0006, 0.0005, 0.2, repeat_codes_per_year=0.3),
    "restless_legs_syndrome": ChronicCondition(0.035, 0.02, 0.20),
    "venous_disease": ChronicCondition(0.09, 0.05, 0.30),
    "chronic_compartment_syndrome": ChronicCondition(0.0006, 0.0008, 0.0, repeat_codes_per_year=0.2),
    "osteoarthritis": ChronicCondition(0.12, 0.09, 0.55),
    "distractor_periodic_limb_movement": ChronicCondition(0.004, 0.004, 0.2, repeat_codes_per_year=0.2),
    "distractor_aortic_atherosclerosis": ChronicCondition(0.03, 0.04, 0.6, repeat_codes_per_year=0.2),
}

# Sub-conditions: a share of persons with the parent get the child, with onset at or after the parent's.
SUBCONDITIONS: dict[str, tuple[str, float]] = {
    "intermittent_claudication": ("peripheral_arterial_disease", 0.35),
    "diabetic_neuropathy": ("diabetes_mellitus", 0.25),
}
SUBCONDITION_REPEAT_CODES_PER_YEAR = 0.5

ACUTE: dict[str, AcuteCondition] = {
    "dehydration": AcuteCondition(0.006, math.log(1.8)),
    "heat_exposure": AcuteCondition(0.0012, math.log(1.2), emergency_share=0.5),
    "heat_cramps": AcuteCondition(0.0005, 0.0, emergency_share=0.4, inpatient_share=0.0),
    "distractor_back_spasm": AcuteCondition(0.004, 0.0),
    "distractor_other_spasm": AcuteCondition(0.002, 0.0),
    "distractor_tetany": AcuteCondition(0.0003, 0.0),
    "distractor_traumatic_compartment": AcuteCondition(0.00008, -math.log(1.5), emergency_share=0.6,
                                                       inpatient_share=0.3),
    "distractor_hypernatremia": AcuteCondition(0.001, math.log(1.8), inpatient_share=0.3),
    "distractor_hypocalcemia": AcuteCondition(0.002, math.log(1.3)),
}

# Rule-out persons: one outpatient code only (phenotype rule needs one inpatient or two outpatient codes >= 30 days
# apart), drawn among persons without the latent condition.
RULE_OUT_SHARE = {"diabetes_mellitus": 0.012, "peripheral_arterial_disease": 0.008}


@dataclass(frozen=True)
class DrugModel:
    """Who starts a drug class: for each indication the person has, start with that probability."""

    indications: tuple[tuple[str, float], ...]
    # Also started without a coded indication: probability at age 60 and odds ratio per 10 years of age.
    no_indication_p60: float = 0.0
    no_indication_or_per_10_years: float = 1.0
    female_only_until_age: float | None = None


# Indication -> probability of starting. Assumptions reflecting usual guideline-driven prescribing.
DRUGS: dict[str, DrugModel] = {
    "thiazide_diuretics": DrugModel((("hypertension", 0.25),), 0.01, 1.3),
    "thiazide_like_diuretics": DrugModel((("hypertension", 0.08),)),
    "loop_diuretics": DrugModel((("heart_failure", 0.70),), 0.005, 1.8),
    "potassium_sparing_diuretics": DrugModel((("heart_failure", 0.40), ("hypertension", 0.03))),
    "statins": DrugModel((("dyslipidaemia", 0.55), ("diabetes_mellitus", 0.40),
                          ("peripheral_arterial_disease", 0.55)), 0.03, 1.6),
    "other_lipid_lowering": DrugModel((("dyslipidaemia", 0.10), ("diabetes_mellitus", 0.05))),
    "ace_inhibitors": DrugModel((("hypertension", 0.35), ("heart_failure", 0.40), ("diabetes_mellitus", 0.15))),
    "angiotensin_receptor_blockers": DrugModel((("hypertension", 0.18), ("heart_failure", 0.15))),
    "calcium_channel_blockers": DrugModel((("hypertension", 0.30),)),
    "beta_blockers": DrugModel((("hypertension", 0.15), ("heart_failure", 0.60)), 0.01, 1.3),
    "short_acting_beta2_agonists": DrugModel((("asthma", 0.80), ("copd", 0.70))),
    "long_acting_beta2_agonists": DrugModel((("asthma", 0.30), ("copd", 0.55))),
    "insulin": DrugModel((("diabetes_mellitus", 0.22),)),
    # Women under 50: 20% at age 25, falling with age (assumption); use stops at 50.
    "oral_contraceptives": DrugModel((), 0.0, 1.0, female_only_until_age=50.0),
}
ORAL_CONTRACEPTIVE_P_AT_25 = 0.22
ORAL_CONTRACEPTIVE_OR_PER_10_YEARS = 0.45
DRUG_ALREADY_STARTED_IF_PREVALENT = 0.8  # prevalent indication: on the drug at the first visit
DRUG_START_DELAY_MEAN_DAYS = 90.0  # otherwise: exponential delay after the diagnosis

# Labs. Sodium/potassium panel at a share of visits; magnesium less often. Shares of low results rise with diuretics
# (thiazides and loops lower sodium and potassium; potassium-sparing drugs protect potassium) and, for magnesium, with
# diuretics and alcohol. Assumptions; hypomagnesemia co-occurs with hypokalemia (Whang 1984: 42%).
PANEL_SHARE_OF_VISITS = 0.12
PANEL_SHARE_OF_VISITS_MONITORED = 0.35  # on a diuretic, with diabetes or heart failure, or aged 70+
MAGNESIUM_SHARE_OF_VISITS = 0.02
MAGNESIUM_SHARE_OF_VISITS_MONITORED = 0.08
LOW_SODIUM = {"base": 0.005, "per_10_years_over_50": 0.003, "thiazide": 0.05, "thiazide_like": 0.05,
              "loop": 0.03, "potassium_sparing": 0.02}
LOW_POTASSIUM = {"base": 0.005, "thiazide": 0.05, "thiazide_like": 0.05, "loop": 0.05,
                 "potassium_sparing_multiplier": 0.4}
LOW_MAGNESIUM = {"base": 0.02, "thiazide": 0.05, "thiazide_like": 0.05, "loop": 0.07, "alcohol": 0.12,
                 "if_low_potassium": 0.30}
LAB_DIAGNOSIS_CODED_SHARE = 0.30  # low result also coded as a diagnosis at the same visit
# Value ranges. Every clean value keeps >= 1% relative distance from its threshold (see docs), enough that unit
# conversion and rounding cannot flip a value across it while normal values stay in their real reference ranges:
# sodium low 118-133, normal 137-145 mmol/L; potassium low 2.6-3.4, normal 3.6-5.1; magnesium low 0.45-0.68,
# normal 0.72-1.05 mmol/L.
SODIUM_LOW, SODIUM_NORMAL = (118, 133), (137, 145)
POTASSIUM_LOW, POTASSIUM_NORMAL = (2.6, 3.4), (3.6, 5.1)
MAGNESIUM_LOW, MAGNESIUM_NORMAL = (0.45, 0.68), (0.72, 1.05)
THRESHOLD_MARGIN_RELATIVE = 0.01

# ABI: who is measured and which category their LOWEST reading falls in (2016 AHA/ACC categories). PAD and
# claudication patients are mostly low; others mostly normal; noncompressible more with diabetes.
ABI_MEASURED_SHARE = {"intermittent_claudication": 0.80, "peripheral_arterial_disease": 0.60,
                      "diabetes_mellitus": 0.10, "age_50_plus": 0.02}
ABI_LOWEST_CATEGORY_PAD = (("low", 0.55), ("borderline", 0.17), ("normal", 0.20), ("noncompressible", 0.08))
ABI_LOWEST_CATEGORY_CLAUDICATION = (("low", 0.50), ("borderline", 0.20), ("normal", 0.25), ("noncompressible", 0.05))
ABI_LOWEST_CATEGORY_OTHER = (("low", 0.04), ("borderline", 0.12), ("normal", 0.80), ("noncompressible", 0.04))
ABI_ONE_LEG_NONCOMPRESSIBLE = {"diabetes_mellitus": 0.15, "other": 0.04}
ABI_RANGES = {"low": (0.40, 0.90), "borderline": (0.91, 0.99), "normal": (1.00, 1.35), "noncompressible": (1.41, 1.70)}
ABI_STUDY_PROCEDURE_SHARE = 0.7

# Leg-cramp onset: proportional hazards; age is taken per calendar month, exposures act from their start day.
#   h(t) = lambda0 * exp(age_log_hr_per_year * (age(t) - 60) + female_log_hr * female) * prod HR_e^{1[t >= start_e]}
# Hazard ratios (Garrison 2012 sequence ratios used as HRs; PAD 2.0 near Abdulla 1999 OR 2.9; hypomagnesemia 1.8 an
# assumption); the NULL exposures have HR 1.0 on purpose (negative controls).
CRAMP_LAMBDA0_PER_YEAR = 0.0095  # at age 60, male, unexposed; calibrated so ~10-12% of persons get a cramp code
CRAMP_REFERENCE_AGE = 60.0
CRAMP_AGE_LOG_HR_PER_YEAR = 0.025
CRAMP_FEMALE_LOG_HR = math.log(1.35)
# exposure (phenotype id) -> (hazard ratio, source, what gives its start date)
CRAMP_EFFECTS: dict[str, tuple[float, str]] = {
    "thiazide_diuretics": (1.47, "Garrison 2012 ASR, diuretics (all)"),
    "thiazide_like_diuretics": (1.48, "Garrison 2012 ASR, thiazide-like"),
    "loop_diuretics": (1.20, "Garrison 2012 ASR, loop"),
    "potassium_sparing_diuretics": (2.12, "Garrison 2012 ASR, potassium-sparing"),
    "statins": (1.16, "Garrison 2012 ASR, statins"),
    "long_acting_beta2_agonists": (2.42, "Garrison 2012 ASR, LABAs (all)"),
    "peripheral_arterial_disease": (2.0, "brief (Abdulla 1999 PVD OR 2.9 is cross-sectional)"),
    "hypomagnesemia_lab": (1.8, "brief (assumption)"),
    "calcium_channel_blockers": (1.0, "null exposure (negative control)"),
    "ace_inhibitors": (1.0, "null exposure (negative control)"),
    "hypothyroidism": (1.0, "null exposure (negative control)"),
    "osteoarthritis": (1.0, "null exposure (negative control)"),
}

# Effects profiles (`legcramp-generate --effects`): which of the exposures above act on cramp onset. Every profile
# has the same exposures (the truth keeps one start-date column per exposure); only the hazard ratios differ.
# - "default": CRAMP_EFFECTS, the brief's world. A sequence symmetry analysis is biased here by time-varying
#   confounding: drugs started for the same indication have effects of their own (thiazide-like and potassium-sparing
#   diuretics with hypertension; PAD, an indication of statins, has HR 2.0) and diuretics lower magnesium, whose low
#   value has HR 1.8, so a diuretic's total effect exceeds its direct HR.
# - "sequence_symmetry": only the three drugs Garrison 2012 reports (thiazides 1.47, LABA 2.42, statins 1.16) keep
#   their hazard ratio; every other exposure, hypomagnesemia included, has none. No other cause of cramps then starts
#   near a drug's first fill, which is the SSA's assumption (Hallas 1996), so each drug's sequence ratio should equal
#   its hazard ratio. Diuretics still lower magnesium; with hypomagnesemia at HR 1.0 that path carries no effect.
DEFAULT_EFFECTS_PROFILE = "default"
SEQUENCE_SYMMETRY_EXPOSURES = ("thiazide_diuretics", "long_acting_beta2_agonists", "statins")
NO_EFFECT_IN_PROFILE = "no effect in this profile (the default profile plants {hr})"
CRAMP_EFFECTS_PROFILES: dict[str, dict[str, tuple[float, str]]] = {
    DEFAULT_EFFECTS_PROFILE: CRAMP_EFFECTS,
    "sequence_symmetry": {
        exposure: (hr, source) if exposure in SEQUENCE_SYMMETRY_EXPOSURES
        else (1.0, NO_EFFECT_IN_PROFILE.format(hr=hr))
        for exposure, (hr, source) in CRAMP_EFFECTS.items()
    },
}
# Exposures whose sequence ratio against incident cramps should equal their planted hazard ratio, per profile. Empty
# for the default profile: there the SSA's no-time-varying-confounding assumption does not hold (see above).
SEQUENCE_RATIO_TARGETS: dict[str, tuple[str, ...]] = {
    DEFAULT_EFFECTS_PROFILE: (),
    "sequence_symmetry": SEQUENCE_SYMMETRY_EXPOSURES,
}

CRAMP_REPEAT_CODES_MEAN = 0.8  # later visits that record the cramp code again (Poisson mean)
QUININE_AFTER_CRAMP_SHARE = 0.10
QUININE_WITHIN_DAYS = 60
QUININE_FILLS = (1, 3)
QUININE_WITHOUT_CRAMP_CODE_SHARE_50_PLUS = 0.004  # cramps treated but never coded
MALARIA_SHARE = 0.0004  # malaria treated with quinine (distractor for quinine_start)

# The "on_drug" effects profile (`legcramp-generate --effects on_drug`): the default profile's hazard ratios, but with
# exposure dynamics that the designs of a pharmacoepidemiological study must handle (the default profile applies
# every effect from the first exposure forever, so it cannot tell a prevalent-user "exposed at index, frozen"
# comparison from an on-treatment one):
# - drug use comes in treatment episodes (fills on the refill grid, then a stop; after a gap some restart), and a
#   drug's hazard ratio acts only while on drug: from an episode's first fill to the end of its last fill's days'
#   supply (persistence, as in a CohortMethod / LEGEND on-treatment era). Persons who start before observation are
#   prevalent users at any later index date, often already off drug;
# - a low magnesium result is a transient state: its hazard ratio acts for TRANSIENT_STATE_DAYS after each low
#   result (a short risk window), not from the first one forever;
# - cramp symptoms bring a work-up: a share of persons with a cramp onset get an electrolyte panel and magnesium
#   within WORKUP_WITHIN_DAYS (detection bias: low values are found because of the outcome);
# - cramp proneness differs between persons: a gamma frailty (mean 1, variance CRAMP_FRAILTY_VARIANCE) multiplies
#   each person's hazard, so the frail get their cramp early on a drug and the hazard among those still cramp-free
#   on drug falls with time on drug (depletion of susceptibles, Moride & Abenhaim 1994). The planted hazard ratios
#   are conditional on the frailty.
# Episode lengths and gaps are assumptions in the range of persistence studies of antihypertensives and inhalers
# (half of starters stop within a year; many restart).
@dataclass(frozen=True)
class ExposureDynamics:
    episode_min_days: int = 30  # an episode lasts at least one fill
    episode_extra_days_mean: float = 150.0  # plus an exponential number of days with this mean
    gap_min_days: int = 45  # a restart comes at least this long after a stop, beyond the 30-day grace used by eras
    gap_extra_days_mean: float = 150.0
    restart_share: float = 0.6  # after a stop, the share that restarts (otherwise the person stops for good)
    max_episodes: int = 12
    transient_state_days: int = 42  # a low magnesium result acts for 6 weeks
    workup_share: float = 0.5  # persons with a cramp onset who get a work-up panel
    workup_within_days: int = 14
    frailty_variance: float = 1.0


ON_DRUG_PROFILE = "on_drug"
CRAMP_EFFECTS_PROFILES[ON_DRUG_PROFILE] = CRAMP_EFFECTS
SEQUENCE_RATIO_TARGETS[ON_DRUG_PROFILE] = ()  # diuretics lower magnesium, PAD drives statins: as in the default
EXPOSURE_DYNAMICS: dict[str, ExposureDynamics] = {ON_DRUG_PROFILE: ExposureDynamics()}
# Which exposures of CRAMP_EFFECTS are transient states (act for transient_state_days after each finding); drugs
# act while on drug; every other exposure (a chronic condition) acts from its onset on.
TRANSIENT_EXPOSURES = ("hypomagnesemia_lab",)


# Negative-control outcomes (phenotypes/negative_controls/: LEGEND-HTN's controls for antihypertensive comparisons,
# Suchard 2019). No exposure of the model causes them: each person's first record of each control is drawn from a
# hazard of age (at the middle of observation, as the acute conditions) and sex only, so every exposure's true hazard
# ratio on them is 1 (and the ratio a design should recover is 1, unless a bias is planted below). Rates are
# assumptions in the range of first-diagnosis rates of common primary-care conditions of older adults (impacted
# cerumen, seborrheic keratosis, refraction codes and dry eye are among the most frequent office diagnoses; zoster
# about 1% a year over 60), taken at the upper end so that a few controls have enough events to be estimated in
# small extracts. A record is written on the onset day, linked to the person's visit that day if there is one.
@dataclass(frozen=True)
class NegativeControlOutcome:
    rate60_per_year: float
    log_rate_slope_per_10_years: float = 0.0
    female_only: bool = False


NEGATIVE_CONTROL_OUTCOMES: dict[str, NegativeControlOutcome] = {
    "impacted_cerumen": NegativeControlOutcome(0.060, math.log(1.3)),
    "seborrheic_keratosis": NegativeControlOutcome(0.050, math.log(1.3)),
    "presbyopia": NegativeControlOutcome(0.040),
    "dry_eye_syndrome": NegativeControlOutcome(0.040, math.log(1.2)),
    "onychomycosis": NegativeControlOutcome(0.030, math.log(1.2)),
    "contact_dermatitis": NegativeControlOutcome(0.030),
    "acute_conjunctivitis": NegativeControlOutcome(0.020),
    "wrist_pain": NegativeControlOutcome(0.020),
    "vaginitis_and_vulvitis": NegativeControlOutcome(0.020, math.log(0.7), female_only=True),
    "regular_astigmatism": NegativeControlOutcome(0.015),
    "shoulder_impingement": NegativeControlOutcome(0.015),
    "herpes_zoster_without_complication": NegativeControlOutcome(0.010, math.log(1.3)),
    "epidermal_cyst": NegativeControlOutcome(0.010),
    "trigger_finger": NegativeControlOutcome(0.008),
    "rotator_cuff_strain": NegativeControlOutcome(0.008),
    "viral_warts": NegativeControlOutcome(0.008, math.log(0.8)),
    "macular_drusen": NegativeControlOutcome(0.008, math.log(1.8)),
    "ganglion_cyst": NegativeControlOutcome(0.006),
    "nontoxic_multinodular_goiter": NegativeControlOutcome(0.004),
    "anal_or_rectal_polyp": NegativeControlOutcome(0.004),
    "papillomavirus_infection": NegativeControlOutcome(0.003, math.log(0.6)),
    "endometriosis": NegativeControlOutcome(0.0005, math.log(0.5), female_only=True),
}


# Planted systematic error on the negative controls (`legcramp-generate --negative-control-bias LOG_HR[,SD]`): from
# the first fill of one of `exposures` on, every control's hazard is multiplied by exp(b_c), b_c = log_hr + sd * z_c
# with one standard normal z_c per control and extract (a detection bias: diuretic users are seen for monitoring
# more often, so more of their minor conditions get recorded). Cramps and every other record are untouched, so the
# controls' observed hazard ratio, target vs comparator, is exp(b_c) in a new-user comparison of `exposures` with
# other drugs, and an empirical null fitted on them should find N(log_hr, sd^2). Off (0, 0) by default and for the
# bundled sample: there every control's true hazard ratio is 1, so calibration should leave the estimates alone.
@dataclass(frozen=True)
class NegativeControlBias:
    log_hr: float = 0.0
    sd: float = 0.0
    exposures: tuple[str, ...] = ("thiazide_diuretics", "thiazide_like_diuretics")

    @property
    def planted(self) -> bool:
        return self.log_hr != 0.0 or self.sd != 0.0


NO_NEGATIVE_CONTROL_BIAS = NegativeControlBias()


# Negative-control exposures (phenotypes/negative_control_exposures/: drugs not believed to cause or prevent leg
# cramps). Who uses one depends on age (at the middle of observation) and sex only, and the cramp hazard never looks
# at them, so each one's true hazard ratio on cramps is 1: a screening analysis adjusted for age and sex should find
# 1. A user either is on the drug when observation starts (prevalent_share) or starts on a uniformly drawn observed
# day, and then refills every 90 days until its first observation period ends (persistent use). The
# shares are assumptions at the upper end of such drugs' use among older adults (tamsulosin for prostatic
# hyperplasia, glaucoma drops, antimuscarinics for overactive bladder, antifungal courses for onychomycosis), so each
# control has enough exposed persons with cramps in small extracts.
@dataclass(frozen=True)
class NegativeControlExposure:
    p60: float  # probability of being a user during observation at age 60 (logistic in age)
    logit_slope_per_10_years: float = 0.0
    sex: str | None = None  # "male" or "female": used by that sex only
    prevalent_share: float = 0.6  # users already on the drug on the first observed day
    quantity_per_day: float = 1.0


NEGATIVE_CONTROL_EXPOSURES: dict[str, NegativeControlExposure] = {
    "tamsulosin": NegativeControlExposure(0.25, 0.8, sex="male"),
    "latanoprost": NegativeControlExposure(0.10, 0.6, quantity_per_day=0.1),  # mL of eye drops
    "tolterodine": NegativeControlExposure(0.10, 0.4),
    "darifenacin": NegativeControlExposure(0.08, 0.4),
    "terbinafine": NegativeControlExposure(0.08, 0.3),
}
