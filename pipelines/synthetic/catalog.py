"""The generator's code catalog: every code the synthetic extract can contain, in one place.

Each code carries its meaning, its source status (copied from ``shared/reference/phenotype_codes.md``:
``[V]`` verified, ``[V-weak]`` seen only in unnamed or secondary sources; ICD-10-CM codes are also checked against
the CMS tabular shipped in ``simple-icd-10-cm`` by the tests) and the phenotype ids it counts for. The ground truth
is computed from the rows the generator writes, using exactly ``Code.phenotypes``; a phenotype library that
disagrees with a code's phenotype list here disagrees with the truth.

Nothing outside this module spells a code. Latent conditions and drug classes pick codes from the weighted choices
below; sites pick the vocabulary (see ``SITES``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from pipelines.paths import PHENOTYPES_DIR

# Canonical vocabulary ids (the keys of extract_spec.VOCABULARIES).
ICD = "ICD10CM"
SNOMED = "SNOMED"
RXNORM = "RxNorm"
ATC = "ATC"
LOINC = "LOINC"
CPT4 = "CPT4"

CMS = "[V] CMS ICD-10-CM April 2026 tabular (simple-icd-10-cm 1.5.0)"
PHENOLIB = "[V] OHDSI PhenotypeLibrary concept set"
PHARMACOLIB = "[V] ATC tree, creative-connections/Pharmacolibrary"
ATC_STANDARD = "ATC substance code (WHO standard code named in the brief); class prefix [V] Pharmacolibrary"


@dataclass(frozen=True)
class Code:
    vocabulary: str
    code: str  # canonical spelling: ICD-10-CM with the dot
    meaning: str
    source: str
    phenotypes: tuple[str, ...] = ()


def _icd(code: str, meaning: str, *phenotypes: str) -> Code:
    return Code(ICD, code, meaning, CMS, phenotypes)


def _sct(code: str, meaning: str, source: str, *phenotypes: str) -> Code:
    return Code(SNOMED, code, meaning, source, phenotypes)


# A weighted choice of codes: the generator draws one code per person (or per row where said) with these weights.
Choice = tuple[tuple[Code, float], ...]

# ---------------------------------------------------------------------------------------------------------------
# Diagnoses. Keys are the generator's latent conditions (not phenotype ids: a latent condition may write codes that
# count for several phenotypes, e.g. I70.211 counts for PAD and for intermittent claudication).
# ``icd`` is what ICD-10-CM sites write; ``snomed`` what SNOMED sites write. A condition without a verified SNOMED
# code is written in ICD-10-CM at SNOMED sites too (their problem lists fall back to the billing code).
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionCodes:
    icd: Choice
    snomed: Choice = ()
    # Parkinson's only: ICD-10-CM codes used on or after ``icd_after_date`` (the FY2024 G20 split).
    icd_after: Choice = ()
    icd_after_date: str | None = None


LEG_CRAMPS = ("leg_cramps",)
PAD = ("peripheral_arterial_disease",)
PAD_CLAUD = ("peripheral_arterial_disease", "intermittent_claudication")

CONDITION_CODES: dict[str, ConditionCodes] = {
    # --- outcome -----------------------------------------------------------------------------------------------
    "leg_cramps": ConditionCodes(
        icd=((_icd("R25.2", "Cramp and spasm", *LEG_CRAMPS), 0.60),
             (_icd("G47.62", "Sleep related leg cramps", *LEG_CRAMPS), 0.25),
             (_icd("M62.831", "Muscle spasm of calf (charley-horse)", *LEG_CRAMPS), 0.15)),
        snomed=((_sct("55300003", "Cramp (finding)", "[V-weak] public files, Verhoeff OK", *LEG_CRAMPS), 0.60),
                (_sct("449918009", "Cramp in lower leg", "[V] HL7 Thailand ANC FHIR examples", *LEG_CRAMPS), 0.40)),
    ),
    "heat_cramps": ConditionCodes(
        # T67.x is heat exposure, so a heat cramp counts for both phenotypes.
        icd=((_icd("T67.2XXA", "Heat cramp, initial encounter", "heat_cramps", "heat_exposure"), 1.0),),
    ),
    # --- vascular ----------------------------------------------------------------------------------------------
    "peripheral_arterial_disease": ConditionCodes(
        icd=((_icd("I73.9", "Peripheral vascular disease, unspecified", *PAD), 0.50),
             (_icd("I70.209", "Unspecified atherosclerosis of native arteries of extremities, unspecified "
                              "extremity", *PAD), 0.20),
             (_icd("I70.203", "Unspecified atherosclerosis of native arteries of extremities, bilateral legs",
                   *PAD), 0.15),
             (_icd("I70.201", "Unspecified atherosclerosis of native arteries of extremities, right leg", *PAD),
              0.15)),
        snomed=((_sct("399957001", "Peripheral arterial occlusive disease", "[V] HL7 FHIR FSH files", *PAD), 0.30),
                (_sct("840580004", "Peripheral arterial disease", PHENOLIB, *PAD), 0.40),
                (_sct("400047006", "Peripheral vascular disease", PHENOLIB, *PAD), 0.15),
                (_sct("724440007", "Atherosclerosis of artery of lower limb", PHENOLIB, *PAD), 0.15)),
    ),
    "intermittent_claudication": ConditionCodes(
        # I70.21x is atherosclerosis of the leg arteries WITH intermittent claudication: PAD and claudication.
        # I73.9 (whose inclusion terms name intermittent claudication) is written only as PAD, never here.
        icd=((_icd("I70.211", "Atherosclerosis of native arteries of extremities with intermittent claudication, "
                              "right leg", *PAD_CLAUD), 0.25),
             (_icd("I70.212", "... with intermittent claudication, left leg", *PAD_CLAUD), 0.25),
             (_icd("I70.213", "... with intermittent claudication, bilateral legs", *PAD_CLAUD), 0.30),
             (_icd("I70.219", "... with intermittent claudication, unspecified extremity", *PAD_CLAUD), 0.20)),
        # SNOMED 63491006 is a finding, not a PAD disorder: it counts for claudication only.
        snomed=((_sct("63491006", "Intermittent claudication", PHENOLIB, "intermittent_claudication"), 1.0),),
    ),
    "venous_disease": ConditionCodes(
        icd=((_icd("I83.90", "Asymptomatic varicose veins of unspecified lower extremity", "venous_disease"), 0.35),
             (_icd("I83.93", "Asymptomatic varicose veins of bilateral lower extremities", "venous_disease"), 0.25),
             (_icd("I87.2", "Venous insufficiency (chronic) (peripheral)", "venous_disease"), 0.40)),
        snomed=((_sct("72866009", "Varicose veins of lower extremity", "[V-weak]", "venous_disease"), 1.0),),
    ),
    "chronic_compartment_syndrome": ConditionCodes(
        # No specific ICD-10-CM code for chronic exertional compartment syndrome; nearest non-traumatic codes.
        icd=((_icd("M79.A21", "Nontraumatic compartment syndrome of right lower extremity",
                   "chronic_compartment_syndrome"), 0.35),
             (_icd("M79.A22", "Nontraumatic compartment syndrome of left lower extremity",
                   "chronic_compartment_syndrome"), 0.35),
             (_icd("M79.A29", "Nontraumatic compartment syndrome of unspecified lower extremity",
                   "chronic_compartment_syndrome"), 0.30)),
    ),
    # --- electrolytes / volume (diagnoses; lab values are in LABS) ----------------------------------------------
    "hyponatremia": ConditionCodes(
        icd=((_icd("E87.1", "Hypo-osmolality and hyponatremia", "hyponatremia_diagnosis"), 1.0),),
        snomed=((_sct("89627008", "Hyponatremia", PHENOLIB, "hyponatremia_diagnosis"), 1.0),),
    ),
    "hypokalemia": ConditionCodes(
        icd=((_icd("E87.6", "Hypokalemia", "hypokalemia_diagnosis"), 1.0),),
        snomed=((_sct("43339004", "Hypokalemia", PHENOLIB, "hypokalemia_diagnosis"), 1.0),),
    ),
    "hypomagnesemia": ConditionCodes(
        icd=((_icd("E83.42", "Hypomagnesemia", "hypomagnesemia_diagnosis"), 1.0),),
        snomed=((_sct("190855004", "Hypomagnesemia", PHENOLIB, "hypomagnesemia_diagnosis"), 1.0),),
    ),
    "dehydration": ConditionCodes(
        icd=((_icd("E86.0", "Dehydration", "dehydration"), 0.70),
             (_icd("E86.1", "Hypovolemia", "dehydration"), 0.10),
             (_icd("E86.9", "Volume depletion, unspecified", "dehydration"), 0.20)),
        snomed=((_sct("34095006", "Dehydration", "[V-weak] FHIR ConceptMap target", "dehydration"), 1.0),),
    ),
    "heat_exposure": ConditionCodes(
        icd=((_icd("X30.XXXA", "Exposure to excessive natural heat, initial encounter", "heat_exposure"), 0.45),
             (_icd("T67.01XA", "Heatstroke and sunstroke, initial encounter", "heat_exposure"), 0.15),
             (_icd("T67.5XXA", "Heat exhaustion, unspecified, initial encounter", "heat_exposure"), 0.30),
             (_icd("T67.6XXA", "Heat fatigue, transient, initial encounter", "heat_exposure"), 0.10)),
    ),
    # --- neurological ------------------------------------------------------------------------------------------
    "peripheral_neuropathy": ConditionCodes(
        icd=((_icd("G62.9", "Polyneuropathy, unspecified", "peripheral_neuropathy"), 0.70),
             (_icd("G60.9", "Hereditary and idiopathic neuropathy, unspecified", "peripheral_neuropathy"), 0.15),
             (_icd("G62.89", "Other specified polyneuropathies", "peripheral_neuropathy"), 0.15)),
        snomed=((_sct("302226006", "Peripheral nerve disease", PHENOLIB, "peripheral_neuropathy"), 0.60),
                (_sct("22722001", "Idiopathic peripheral neuropathy", PHENOLIB, "peripheral_neuropathy"), 0.40)),
    ),
    "diabetic_neuropathy": ConditionCodes(
        # E11.4x sits inside E11.*, so it also counts towards diabetes_mellitus (its rule included).
        # Diabetic neuropathy is a peripheral neuropathy too (the seed's "peripheral neuropathy (including
        # diabetic)"), in both vocabularies.
        icd=((_icd("E11.42", "Type 2 diabetes mellitus with diabetic polyneuropathy",
                   "diabetic_neuropathy", "peripheral_neuropathy", "diabetes_mellitus"), 0.70),
             (_icd("E11.40", "Type 2 diabetes mellitus with diabetic neuropathy, unspecified",
                   "diabetic_neuropathy", "peripheral_neuropathy", "diabetes_mellitus"), 0.30)),
        # The SNOMED codes count for the neuropathies only (not as diabetes codes).
        snomed=((_sct("424736006", "Diabetic peripheral neuropathy", PHENOLIB, "diabetic_neuropathy",
                      "peripheral_neuropathy"), 0.70),
                (_sct("49455004", "Polyneuropathy due to diabetes mellitus", "[V] PEDSnet Variable-Dictionary",
                      "diabetic_neuropathy", "peripheral_neuropathy"), 0.30)),
    ),
    "radiculopathy": ConditionCodes(
        icd=((_icd("M54.16", "Radiculopathy, lumbar region", "radiculopathy"), 0.50),
             (_icd("M54.17", "Radiculopathy, lumbosacral region", "radiculopathy"), 0.35),
             (_icd("M54.10", "Radiculopathy, site unspecified", "radiculopathy"), 0.15)),
        snomed=((_sct("128196005", "Lumbar radiculopathy", PHENOLIB, "radiculopathy"), 0.60),
                (_sct("2415007", "Lumbosacral radiculopathy", "[V] PEDSnet Variable-Dictionary", "radiculopathy"),
                 0.40)),
    ),
    "lumbar_spinal_stenosis": ConditionCodes(
        icd=((_icd("M48.061", "Spinal stenosis, lumbar region without neurogenic claudication",
                   "lumbar_spinal_stenosis"), 1.0),),
        snomed=((_sct("18347007", "Spinal stenosis of lumbar region", "[V-weak] two public files",
                      "lumbar_spinal_stenosis"), 1.0),),
    ),
    "lumbar_stenosis_with_neurogenic_claudication": ConditionCodes(
        # Pseudoclaudication: no SNOMED code verified, so SNOMED sites write the ICD-10-CM code as well.
        icd=((_icd("M48.062", "Spinal stenosis, lumbar region with neurogenic claudication",
                   "lumbar_spinal_stenosis", "pseudoclaudication"), 1.0),),
    ),
    "parkinsons_disease": ConditionCodes(
        # Legacy G20 was billable until 2023-09-30; FY2024 (from 2023-10-01) split it into G20.A1 ... G20.C.
        icd=((_icd("G20", "Parkinson's disease (billable before 2023-10-01)", "parkinsons_disease"), 1.0),),
        icd_after=((_icd("G20.A1", "Parkinson's disease without dyskinesia, without mention of fluctuations",
                         "parkinsons_disease"), 0.45),
                   (_icd("G20.A2", "Parkinson's disease without dyskinesia, with fluctuations",
                         "parkinsons_disease"), 0.20),
                   (_icd("G20.B1", "Parkinson's disease with dyskinesia, without mention of fluctuations",
                         "parkinsons_disease"), 0.10),
                   (_icd("G20.B2", "Parkinson's disease with dyskinesia, with fluctuations",
                         "parkinsons_disease"), 0.10),
                   (_icd("G20.C", "Parkinsonism, unspecified", "parkinsons_disease"), 0.15)),
        icd_after_date="2023-10-01",
        snomed=((_sct("49049000", "Parkinson's disease", PHENOLIB, "parkinsons_disease"), 1.0),),
    ),
    "restless_legs_syndrome": ConditionCodes(
        icd=((_icd("G25.81", "Restless legs syndrome", "restless_legs_syndrome"), 1.0),),
        snomed=((_sct("32914008", "Restless legs", PHENOLIB, "restless_legs_syndrome"), 1.0),),
    ),
    # --- metabolic / other -------------------------------------------------------------------------------------
    "hypothyroidism": ConditionCodes(
        icd=((_icd("E03.9", "Hypothyroidism, unspecified", "hypothyroidism"), 0.85),
             (_icd("E03.8", "Other specified hypothyroidism", "hypothyroidism"), 0.05),
             (_icd("E89.0", "Postprocedural hypothyroidism", "hypothyroidism"), 0.10)),
        snomed=((_sct("40930008", "Hypothyroidism", PHENOLIB, "hypothyroidism"), 1.0),),
    ),
    "diabetes_mellitus": ConditionCodes(
        icd=((_icd("E11.9", "Type 2 diabetes mellitus without complications", "diabetes_mellitus"), 0.65),
             (_icd("E11.65", "Type 2 diabetes mellitus with hyperglycemia", "diabetes_mellitus"), 0.20),
             (_icd("E10.9", "Type 1 diabetes mellitus without complications", "diabetes_mellitus"), 0.10),
             (_icd("E13.9", "Other specified diabetes mellitus without complications", "diabetes_mellitus"),
              0.05)),
        snomed=((_sct("44054006", "Type 2 diabetes mellitus", PHENOLIB, "diabetes_mellitus"), 0.70),
                (_sct("73211009", "Diabetes mellitus", PHENOLIB, "diabetes_mellitus"), 0.20),
                (_sct("46635009", "Type 1 diabetes mellitus", PHENOLIB, "diabetes_mellitus"), 0.10)),
    ),
    "metabolic_myopathy": ConditionCodes(
        # G72.x per the brief, but NOT G72.41 (inclusion body myositis), which is written for inflammatory myopathy.
        icd=((_icd("E74.04", "McArdle disease", "metabolic_myopathy"), 0.50),
             (_icd("E74.02", "Pompe disease", "metabolic_myopathy"), 0.10),
             (_icd("G72.89", "Other specified myopathies", "metabolic_myopathy"), 0.25),
             (_icd("G72.9", "Myopathy, unspecified", "metabolic_myopathy"), 0.15)),
        snomed=((_sct("55912009", "Glycogen storage disease, type V (McArdle)", "[V] PEDSnet Variable-Dictionary",
                      "metabolic_myopathy"), 1.0),),
    ),
    "inflammatory_myopathy": ConditionCodes(
        icd=((_icd("M33.20", "Polymyositis, organ involvement unspecified", "inflammatory_myopathy"), 0.30),
             (_icd("M33.10", "Other dermatomyositis, organ involvement unspecified", "inflammatory_myopathy"),
              0.25),
             (_icd("M60.9", "Myositis, unspecified", "inflammatory_myopathy"), 0.30),
             (_icd("G72.41", "Inclusion body myositis [IBM]", "inflammatory_myopathy"), 0.15)),
        snomed=((_sct("396230008", "Dermatomyositis", PHENOLIB, "inflammatory_myopathy"), 0.35),
                (_sct("31384009", "Polymyositis", "[V] PEDSnet Variable-Dictionary", "inflammatory_myopathy"), 0.35),
                (_sct("26889001", "Myositis", PHENOLIB, "inflammatory_myopathy"), 0.30)),
    ),
    "osteoarthritis": ConditionCodes(
        icd=((_icd("M17.11", "Unilateral primary osteoarthritis, right knee", "osteoarthritis"), 0.20),
             (_icd("M17.0", "Bilateral primary osteoarthritis of knee", "osteoarthritis"), 0.25),
             (_icd("M16.11", "Unilateral primary osteoarthritis, right hip", "osteoarthritis"), 0.15),
             (_icd("M19.90", "Unspecified osteoarthritis, unspecified site", "osteoarthritis"), 0.30),
             (_icd("M15.0", "Primary generalized (osteo)arthritis", "osteoarthritis"), 0.10)),
        snomed=((_sct("396275006", "Osteoarthritis", PHENOLIB, "osteoarthritis"), 1.0),),
    ),
    "alcohol_use": ConditionCodes(
        icd=((_icd("F10.10", "Alcohol abuse, uncomplicated", "alcohol_use"), 0.40),
             (_icd("F10.20", "Alcohol dependence, uncomplicated", "alcohol_use"), 0.35),
             (_icd("F10.90", "Alcohol use, unspecified, uncomplicated", "alcohol_use"), 0.25)),
        snomed=((_sct("15167005", "Alcohol abuse", PHENOLIB, "alcohol_use"), 1.0),),
    ),
    # --- conditions that drive prescribing; no phenotype (SNOMED codes not verified: ICD-10-CM everywhere) ------
    "hypertension": ConditionCodes(icd=((_icd("I10", "Essential (primary) hypertension"), 1.0),)),
    "heart_failure": ConditionCodes(icd=((_icd("I50.9", "Heart failure, unspecified"), 1.0),)),
    "dyslipidaemia": ConditionCodes(icd=((_icd("E78.5", "Hyperlipidemia, unspecified"), 0.7),
                                         (_icd("E78.00", "Pure hypercholesterolemia, unspecified"), 0.3))),
    "asthma": ConditionCodes(icd=((_icd("J45.909", "Unspecified asthma, uncomplicated"), 1.0),)),
    "copd": ConditionCodes(icd=((_icd("J44.9", "Chronic obstructive pulmonary disease, unspecified"), 1.0),)),
    "malaria": ConditionCodes(icd=((_icd("B54", "Unspecified malaria"), 0.6),
                                   (_icd("B50.9", "Plasmodium falciparum malaria, unspecified"), 0.4))),
    # --- distractors: codes a correct phenotype must NOT count (no phenotypes) ---------------------------------
    "distractor_back_spasm": ConditionCodes(icd=((_icd("M62.830", "Muscle spasm of back"), 1.0),)),
    "distractor_other_spasm": ConditionCodes(icd=((_icd("M62.838", "Other muscle spasm"), 1.0),)),
    "distractor_tetany": ConditionCodes(icd=((_icd("R29.0", "Tetany (carpopedal spasm)"), 1.0),)),
    "distractor_periodic_limb_movement": ConditionCodes(
        icd=((_icd("G47.61", "Periodic limb movement disorder"), 1.0),)),
    "distractor_aortic_atherosclerosis": ConditionCodes(icd=((_icd("I70.0", "Atherosclerosis of aorta"), 1.0),)),
    # The brief says T79.A21XA; that code does not exist (the CMS tabular has T79.A21A/D/S), so T79.A21A is used.
    "distractor_traumatic_compartment": ConditionCodes(
        icd=((_icd("T79.A21A", "Traumatic compartment syndrome of right lower extremity, initial encounter"), 1.0),)),
    "distractor_hypernatremia": ConditionCodes(
        icd=((_icd("E87.0", "Hyperosmolality and hypernatremia"), 1.0),)),
    "distractor_hypocalcemia": ConditionCodes(icd=((_icd("E83.51", "Hypocalcemia"), 1.0),)),
}

# Latent condition -> what a phenotype must not make of it (listed in the truth file as distractor_codes).
DISTRACTOR_NOTES: dict[str, str] = {
    "distractor_back_spasm": "not leg_cramps (R25.2 Excludes2: muscle spasm of back)",
    "distractor_other_spasm": "not leg_cramps (not leg-specific)",
    "distractor_tetany": "not leg_cramps (R25.2 Excludes2: carpopedal spasm)",
    "distractor_periodic_limb_movement": "not leg_cramps, not restless_legs_syndrome",
    "distractor_aortic_atherosclerosis": "not peripheral_arterial_disease (aorta, not the extremities)",
    "distractor_traumatic_compartment": "not chronic_compartment_syndrome (traumatic)",
    "distractor_hypernatremia": "not hyponatremia_diagnosis",
    "distractor_hypocalcemia": "not hypomagnesemia_diagnosis / hypokalemia_diagnosis",
    "malaria": "quinine given with a malaria (B50-B54) diagnosis is not quinine_start (a fill with a malaria "
               "code within 30 days before or after it does not count)",
}

# Negative-control outcomes (phenotype id = latent condition): billable ICD-10-CM codes inside each control's code
# list, chosen here by meaning and checked against the CMS tabular like every other code; written at every site
# (no SNOMED CT code for them is verified, as in the phenotype files). They are collected after every other code, so
# the other codes keep their indices. tests/synthetic/test_negative_control_outcomes.py checks that each code counts
# for its control and for no other phenotype of the library.
NEGATIVE_CONTROL_CODES: dict[str, ConditionCodes] = {
    name: ConditionCodes(icd=tuple((_icd(code, meaning, name), weight) for code, meaning, weight in choices))
    for name, choices in {
        "contact_dermatitis": (("L23.9", "Allergic contact dermatitis, unspecified cause", 0.4),
                               ("L24.9", "Irritant contact dermatitis, unspecified cause", 0.2),
                               ("L25.9", "Unspecified contact dermatitis, unspecified cause", 0.4)),
        "seborrheic_keratosis": (("L82.1", "Other seborrheic keratosis", 0.8),
                                 ("L82.0", "Inflamed seborrheic keratosis", 0.2)),
        "onychomycosis": (("B35.1", "Tinea unguium", 1.0),),
        "impacted_cerumen": (("H61.23", "Impacted cerumen, bilateral", 0.5),
                             ("H61.21", "Impacted cerumen, right ear", 0.25),
                             ("H61.22", "Impacted cerumen, left ear", 0.25)),
        "dry_eye_syndrome": (("H04.123", "Dry eye syndrome of bilateral lacrimal glands", 1.0),),
        "presbyopia": (("H52.4", "Presbyopia", 1.0),),
        "viral_warts": (("B07.8", "Other viral warts", 1.0),),
        "wrist_pain": (("M25.531", "Pain in right wrist", 0.5), ("M25.532", "Pain in left wrist", 0.5)),
        "vaginitis_and_vulvitis": (("N76.0", "Acute vaginitis", 0.7), ("N76.1", "Subacute and chronic vaginitis", 0.3)),
        "herpes_zoster_without_complication": (("B02.9", "Zoster without complications", 1.0),),
        "rotator_cuff_strain": (("S46.011A", "Strain of muscle(s) and tendon(s) of the rotator cuff of right "
                                             "shoulder, initial encounter", 0.6),
                                ("S46.012A", "Strain of muscle(s) and tendon(s) of the rotator cuff of left "
                                             "shoulder, initial encounter", 0.4)),
        "papillomavirus_infection": (("B97.7", "Papillomavirus as the cause of diseases classified elsewhere", 1.0),),
        "nontoxic_multinodular_goiter": (("E04.2", "Nontoxic multinodular goiter", 1.0),),
        "acute_conjunctivitis": (("H10.33", "Unspecified acute conjunctivitis, bilateral", 0.6),
                                 ("H10.30", "Unspecified acute conjunctivitis, unspecified eye", 0.4)),
        "trigger_finger": (("M65.30", "Trigger finger, unspecified finger", 0.5),
                           ("M65.331", "Trigger finger, right middle finger", 0.5)),
        "anal_or_rectal_polyp": (("K62.1", "Rectal polyp", 0.7), ("K62.0", "Anal polyp", 0.3)),
        "regular_astigmatism": (("H52.223", "Regular astigmatism, bilateral", 1.0),),
        "shoulder_impingement": (("M75.41", "Impingement syndrome of right shoulder", 0.6),
                                 ("M75.42", "Impingement syndrome of left shoulder", 0.4)),
        "epidermal_cyst": (("L72.0", "Epidermal cyst", 1.0),),
        "macular_drusen": (("H35.363", "Drusen (degenerative) of macula, bilateral", 1.0),),
        "ganglion_cyst": (("M67.431", "Ganglion, right wrist", 0.5), ("M67.432", "Ganglion, left wrist", 0.5)),
        "endometriosis": (("N80.9", "Endometriosis, unspecified", 1.0),),
    }.items()
}
NEGATIVE_CONTROL_IDS: tuple[str, ...] = tuple(NEGATIVE_CONTROL_CODES)

# Well-formed ICD-10-CM codes that do not exist (checked with simple_icd_10_cm in the tests): for the planted
# ``unknown_code`` rows. None starts like a code any phenotype uses.
UNKNOWN_ICD10CM_CODES: tuple[str, ...] = ("R25.7", "M62.839", "E87.9", "R25.4")

# ---------------------------------------------------------------------------------------------------------------
# Drugs. A substance has an ATC code and, where phenotypes/reference/drug_ingredients.csv lists a verified RxNorm
# ingredient CUI for it, that CUI (read from there, not spelled here: the drug phenotypes are tested against the same
# table). RxNorm sites write the RxCUI where there is one and the ATC code otherwise (vocabulary "ATC" on that row).
# ---------------------------------------------------------------------------------------------------------------
DRUG_INGREDIENTS = PHENOTYPES_DIR / "reference" / "drug_ingredients.csv"


def _verified_rxnorm_ingredients() -> dict[tuple[str, str], tuple[str, str]]:
    """(phenotype id, ingredient name) -> (RxNorm CUI, source), for the reference's verified RxNorm rows."""
    with DRUG_INGREDIENTS.open(encoding="utf-8", newline="") as handle:
        return {(row["phenotype_id"], row["ingredient"]): (row["code"], row["source"])
                for row in csv.DictReader(handle) if row["vocabulary"] == RXNORM and row["status"] == "verified"}


VERIFIED_RXNORM_INGREDIENTS = _verified_rxnorm_ingredients()


@dataclass(frozen=True)
class Substance:
    name: str
    atc: str
    atc_source: str
    phenotypes: tuple[str, ...] = ()  # phenotype ids this substance counts for (whatever the vocabulary)
    reference_name: str | None = None  # the ingredient's name in drug_ingredients.csv, where it differs from name

    @property
    def _rxnorm(self) -> tuple[str, str] | None:
        """(CUI, source) of the reference's verified RxNorm row of this ingredient in its first phenotype."""
        return VERIFIED_RXNORM_INGREDIENTS.get((self.phenotypes[0], self.reference_name or self.name))

    @property
    def rxcui(self) -> str | None:
        return self._rxnorm[0] if self._rxnorm else None

    def codes(self) -> tuple[Code, ...]:
        out = [Code(ATC, self.atc, self.name, self.atc_source, self.phenotypes)]
        if self._rxnorm:
            cui, source = self._rxnorm
            out.append(Code(RXNORM, cui, self.name, f"[V] {source} (phenotypes/reference/drug_ingredients.csv)",
                            self.phenotypes))
        return tuple(out)


THIAZ = ("thiazide_diuretics",)
THIAZ_LIKE = ("thiazide_like_diuretics",)
LOOP = ("loop_diuretics",)
KSPAR = ("potassium_sparing_diuretics",)
STATIN = ("statins",)
OTHER_LIPID = ("other_lipid_lowering",)
LABA = ("long_acting_beta2_agonists",)


@dataclass(frozen=True)
class DrugClass:
    substances: tuple[tuple[Substance, float], ...]
    # How much is dispensed per day of supply (tablets, inhalers, mL of insulin): quantity = days_supply * this.
    quantity_per_day: float = 1.0


DRUG_CLASSES: dict[str, DrugClass] = {
    "thiazide_diuretics": DrugClass((
        (Substance("hydrochlorothiazide", "C03AA03", ATC_STANDARD, THIAZ + ("hydrochlorothiazide",)), 0.80),
        (Substance("bendroflumethiazide", "C03AA01", PHARMACOLIB, phenotypes=THIAZ), 0.15),
        (Substance("chlorothiazide", "C03AA04", PHARMACOLIB, phenotypes=THIAZ), 0.05),
    )),
    "thiazide_like_diuretics": DrugClass((
        (Substance("chlortalidone", "C03BA04", ATC_STANDARD, THIAZ_LIKE, reference_name="chlorthalidone"), 0.50),
        (Substance("indapamide", "C03BA11", PHARMACOLIB, THIAZ_LIKE), 0.40),
        (Substance("metolazone", "C03BA08", PHARMACOLIB, THIAZ_LIKE), 0.10),
    )),
    "loop_diuretics": DrugClass((
        (Substance("furosemide", "C03CA01", ATC_STANDARD, LOOP), 0.85),
        (Substance("bumetanide", "C03CA02", PHARMACOLIB, phenotypes=LOOP), 0.10),
        (Substance("torasemide", "C03CA04", PHARMACOLIB, phenotypes=LOOP), 0.05),
    )),
    "potassium_sparing_diuretics": DrugClass((
        (Substance("spironolactone", "C03DA01", ATC_STANDARD, KSPAR), 0.70),
        (Substance("eplerenone", "C03DA04", PHARMACOLIB, phenotypes=KSPAR), 0.10),
        (Substance("amiloride", "C03DB01", PHARMACOLIB, phenotypes=KSPAR), 0.10),
        (Substance("triamterene", "C03DB02", PHARMACOLIB, phenotypes=KSPAR), 0.10),
    )),
    "statins": DrugClass((
        (Substance("atorvastatin", "C10AA05", ATC_STANDARD, STATIN), 0.45),
        (Substance("simvastatin", "C10AA01", PHARMACOLIB, STATIN), 0.30),
        (Substance("rosuvastatin", "C10AA07", PHARMACOLIB, STATIN), 0.15),
        (Substance("pravastatin", "C10AA03", PHARMACOLIB, STATIN), 0.10),
    )),
    "other_lipid_lowering": DrugClass((
        (Substance("fenofibrate", "C10AB05", ATC_STANDARD, phenotypes=OTHER_LIPID), 0.40),
        (Substance("gemfibrozil", "C10AB04", PHARMACOLIB, phenotypes=OTHER_LIPID), 0.20),
        (Substance("ezetimibe", "C10AX09", ATC_STANDARD, phenotypes=OTHER_LIPID), 0.40),
    )),
    "ace_inhibitors": DrugClass((
        (Substance("lisinopril", "C09AA03", ATC_STANDARD, phenotypes=("ace_inhibitors",)), 1.0),)),
    "angiotensin_receptor_blockers": DrugClass((
        (Substance("losartan", "C09CA01", ATC_STANDARD, phenotypes=("angiotensin_receptor_blockers",)), 1.0),)),
    "calcium_channel_blockers": DrugClass((
        (Substance("amlodipine", "C08CA01", ATC_STANDARD, phenotypes=("calcium_channel_blockers",)), 1.0),)),
    "beta_blockers": DrugClass((
        (Substance("metoprolol", "C07AB02", ATC_STANDARD, phenotypes=("beta_blockers",)), 1.0),)),
    "short_acting_beta2_agonists": DrugClass((
        (Substance("salbutamol", "R03AC02", ATC_STANDARD, ("short_acting_beta2_agonists",),
                   reference_name="albuterol (salbutamol)"), 1.0),),
        quantity_per_day=1 / 30),  # one inhaler a month
    "long_acting_beta2_agonists": DrugClass((
        (Substance("salmeterol", "R03AC12", ATC_STANDARD, LABA), 0.30),
        (Substance("formoterol", "R03AC13", PHARMACOLIB, phenotypes=LABA), 0.20),
        # LABA + inhaled corticosteroid combinations are LABAs (Garrison 2012 "LABAs (all)").
        (Substance("salmeterol and fluticasone", "R03AK06", ATC_STANDARD, phenotypes=LABA), 0.35),
        (Substance("formoterol and budesonide", "R03AK07", PHARMACOLIB, phenotypes=LABA), 0.15),
    ), quantity_per_day=1 / 30),
    "insulin": DrugClass((
        (Substance("insulin glargine", "A10AE04", ATC_STANDARD, phenotypes=("insulin",)), 1.0),),
        quantity_per_day=0.5),  # mL of U-100 glargine
    "oral_contraceptives": DrugClass((
        (Substance("levonorgestrel and ethinylestradiol", "G03AA07", ATC_STANDARD,
                   phenotypes=("oral_contraceptives",)), 1.0),), quantity_per_day=1.0),
    "quinine": DrugClass((
        (Substance("quinine", "P01BC01", ATC_STANDARD, ("quinine_start",)), 1.0),)),
}

# Negative-control exposures (phenotype id = drug; phenotypes/negative_control_exposures/): one substance each, its
# ATC 5th-level code and RxNorm ingredient CUI as cpicpgx/cpic-schema drug.sql lists them (the phenotype files cite
# the same source). Their codes are collected after every other code, so the other codes keep their indices.
CPIC_ATC = "[V] ATC code of the ingredient, cpicpgx/cpic-schema drug.sql"
NEGATIVE_CONTROL_DRUGS: dict[str, Substance] = {
    name: Substance(name, atc, CPIC_ATC, (name,))
    for name, atc in (
        ("tamsulosin", "G04CA02"),
        ("latanoprost", "S01EE01"),
        ("tolterodine", "G04BD07"),
        ("darifenacin", "G04BD10"),
        ("terbinafine", "D01BA02"),  # the systemic code: oral courses for onychomycosis
    )
}
NEGATIVE_CONTROL_DRUG_IDS: tuple[str, ...] = tuple(NEGATIVE_CONTROL_DRUGS)


# ---------------------------------------------------------------------------------------------------------------
# Measurements.
# ---------------------------------------------------------------------------------------------------------------
MG_PER_DL_PER_MMOL_PER_L = 2.4305  # magnesium: mg/dL = mmol/L x 2.4305

LAB_CODES: dict[str, Code] = {
    "sodium": Code(LOINC, "2951-2", "Sodium [Moles/volume] in Serum or Plasma", "[V-weak] FHIR/HL7 examples"),
    "potassium": Code(LOINC, "2823-3", "Potassium [Moles/volume] in Serum or Plasma", "[V-weak] FHIR/HL7 examples"),
    "magnesium_mg_dl": Code(LOINC, "19123-9", "Magnesium [Mass/volume] in Serum or Plasma (mg/dL)",
                            "[V-weak] multiple consistent files"),
    "magnesium_mmol_l": Code(LOINC, "2601-3", "Magnesium [Moles/volume] in Serum or Plasma (mmol/L)",
                             "[V-weak] multiple consistent files"),
    # No LOINC for ABI is verified; the SNOMED observable entity with a laterality column is used instead.
    "abi": Code(SNOMED, "446841001", "Ankle brachial pressure index (observable entity)",
                "[V] HL7LT/ig-lt-cvd ankle-brachial-index profile"),
}

# Thresholds the phenotype library uses (values in mmol/L; ABI as a ratio). The truth applies exactly these.
LAB_THRESHOLDS = {
    "hyponatremia_lab": {"lab": "sodium", "below_mmol_l": 135.0, "plausible_mmol_l": (100.0, 200.0)},
    "hypokalemia_lab": {"lab": "potassium", "below_mmol_l": 3.5, "plausible_mmol_l": (1.0, 10.0)},
    "hypomagnesemia_lab": {"lab": "magnesium", "below_mmol_l": 0.70, "plausible_mmol_l": (0.1, 5.0)},
}
# Above 0 (open: 0 < ABI < 0.20 is critical ischaemia, real) to 2.5, as the phenotype library states it
# (tests/phenotypes/test_measurement_ranges_generator.py keeps the two equal).
ABI_PLAUSIBLE = (0.0, 2.5)
ABI_PLAUSIBLE_LOW_INCLUSIVE = False
ABI_CATEGORIES = {
    "abi_low": "lowest ABI (both legs, all dates) <= 0.90",
    "abi_borderline": "lowest ABI 0.91-0.99",
    "abi_normal": "lowest ABI 1.00-1.40 and no leg > 1.40",
    "abi_noncompressible": "any leg > 1.40 (flag; may co-occur with another category)",
}

# Procedures: the noninvasive ABI study, on the day ABI is measured at some visits.
ABI_STUDY = Code(CPT4, "93922", "Limited bilateral noninvasive physiologic studies of upper or lower extremity "
                               "arteries (e.g. ankle/brachial indices)", "[V] genhealth.ai CPT 93922")

# ---------------------------------------------------------------------------------------------------------------
# Sites: each site's coding habits. Vocabulary spellings are all aliases in extract_spec.VOCABULARY_ALIASES; sex,
# visit type and laterality spellings are values extract_spec accepts.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    site_id: str
    weight: float  # share of persons
    diagnosis_vocabulary: str  # ICD or SNOMED
    icd_dot: bool  # ICD-10-CM written with the dot ("R25.2") or without ("R252")
    drug_vocabulary: str  # RXNORM or ATC
    magnesium_unit: str  # "mg/dL" (LOINC 19123-9) or "mmol/L" (LOINC 2601-3)
    electrolyte_unit: str  # "mmol/L" or "mEq/L" (identical numbers for Na+ and K+)
    spell: dict[str, str] = field(default_factory=dict)  # canonical vocabulary -> spelling written
    sex_spelling: tuple[str, str, str] = ("F", "M", "U")
    visit_type_spelling: tuple[str, str, str] = ("outpatient", "inpatient", "emergency")
    laterality_spelling: tuple[str, str] = ("L", "R")
    writes_birth_date: bool = False
    writes_race: bool = False
    writes_drug_end_date: bool = True
    abi_unit: str = "ratio"


SITES: tuple[Site, ...] = (
    Site("S01", 0.30, ICD, True, RXNORM, "mg/dL", "mmol/L",
         spell={ICD: "ICD10CM", SNOMED: "SNOMED", RXNORM: "RxNorm", ATC: "ATC", LOINC: "LOINC", CPT4: "CPT4"},
         writes_birth_date=True, writes_race=True),
    Site("S02", 0.25, ICD, False, ATC, "mmol/L", "mEq/L",
         spell={ICD: "ICD-10-CM", SNOMED: "SNOMED CT", RXNORM: "RxNorm", ATC: "ATC", LOINC: "LOINC", CPT4: "CPT"},
         sex_spelling=("female", "male", "unknown"), visit_type_spelling=("OP", "IP", "ER"),
         laterality_spelling=("LEFT", "RIGHT"), writes_drug_end_date=False),
    Site("S03", 0.20, SNOMED, True, RXNORM, "mmol/L", "mmol/L",
         spell={ICD: "icd10cm", SNOMED: "SNOMED CT", RXNORM: "RXNORM", ATC: "atc", LOINC: "loinc", CPT4: "CPT4"},
         visit_type_spelling=("9202", "9201", "9203"), writes_race=True, abi_unit=""),
    Site("S04", 0.15, ICD, True, ATC, "mmol/L", "mEq/L",
         spell={ICD: "icd10cm", SNOMED: "SNOMED", RXNORM: "RxNorm", ATC: "ATC", LOINC: "LOINC", CPT4: "CPT4"},
         sex_spelling=("female", "male", "unknown"), visit_type_spelling=("Outpatient Visit", "Inpatient Visit",
                                                                           "Emergency Room Visit"),
         writes_birth_date=True),
    Site("S05", 0.10, ICD, False, RXNORM, "mg/dL", "mEq/L",
         spell={ICD: "ICD10", SNOMED: "SCT", RXNORM: "RxNorm", ATC: "ATC", LOINC: "LOINC", CPT4: "CPT4"},
         visit_type_spelling=("AMBULATORY", "INPATIENT", "ED"), laterality_spelling=("LT", "RT"),
         writes_drug_end_date=False),
)
# Per site: whether it writes drugs as RxNorm CUIs (else ATC codes).
SITE_WRITES_RXNORM: tuple[bool, ...] = tuple(site.drug_vocabulary == RXNORM for site in SITES)

RACES = (("White", 0.70), ("Black or African American", 0.13), ("Asian", 0.06), ("Other", 0.08), ("", 0.03))
ETHNICITIES = (("Not Hispanic or Latino", 0.82), ("Hispanic or Latino", 0.15), ("", 0.03))


# ---------------------------------------------------------------------------------------------------------------
# Phenotype ids of the truth, and their rules.
# ---------------------------------------------------------------------------------------------------------------
PHENOTYPE_IDS: tuple[str, ...] = (
    "leg_cramps", "heat_cramps", "quinine_start", "peripheral_arterial_disease", "intermittent_claudication",
    "abi_low", "abi_borderline", "abi_normal", "abi_noncompressible", "claudication_with_borderline_or_normal_abi",
    "hyponatremia_diagnosis", "hyponatremia_lab", "hypokalemia_diagnosis", "hypokalemia_lab",
    "hypomagnesemia_diagnosis", "hypomagnesemia_lab", "dehydration", "heat_exposure", "peripheral_neuropathy",
    "diabetic_neuropathy", "radiculopathy", "lumbar_spinal_stenosis", "parkinsons_disease", "hypothyroidism",
    "diabetes_mellitus", "metabolic_myopathy", "thiazide_diuretics", "thiazide_like_diuretics", "hydrochlorothiazide",
    "loop_diuretics", "potassium_sparing_diuretics", "statins", "other_lipid_lowering", "ace_inhibitors",
    "angiotensin_receptor_blockers", "calcium_channel_blockers", "beta_blockers", "short_acting_beta2_agonists",
    "long_acting_beta2_agonists", "insulin", "oral_contraceptives", "alcohol_use", "restless_legs_syndrome",
    "pseudoclaudication", "venous_disease", "chronic_compartment_syndrome", "osteoarthritis", "inflammatory_myopathy",
)
# These need ONE inpatient code or TWO outpatient/emergency codes at least 30 days apart (a code row counts as
# inpatient when its visit_occurrence_id points to an inpatient visit). Every other diagnosis needs one code.
TWO_CODE_RULE_PHENOTYPES: tuple[str, ...] = ("diabetes_mellitus", "peripheral_arterial_disease")
TWO_CODE_RULE_MIN_DAYS_APART = 30
ABI_CLAUDICATION_RANGE = (0.91, 1.30)  # seed: classic claudication with borderline or normal ABI
LAB_PHENOTYPES = tuple(LAB_THRESHOLDS)
ABI_PHENOTYPES = ("abi_low", "abi_borderline", "abi_normal", "abi_noncompressible",
                  "claudication_with_borderline_or_normal_abi")


# ---------------------------------------------------------------------------------------------------------------
# Flat code table: the generator stores a code as an integer index into ALL_CODES.
# ---------------------------------------------------------------------------------------------------------------
def _collect_codes() -> tuple[Code, ...]:
    seen: dict[tuple[str, str], Code] = {}

    def add(c: Code) -> None:
        key = (c.vocabulary, c.code)
        if key in seen and seen[key] != c:
            raise ValueError(f"code {key} defined twice with different meaning or phenotypes")
        seen[key] = c

    for cc in CONDITION_CODES.values():
        for choice in (cc.icd, cc.snomed, cc.icd_after):
            for c, _ in choice:
                add(c)
    for dc in DRUG_CLASSES.values():
        for s, _ in dc.substances:
            for c in s.codes():
                add(c)
    for c in LAB_CODES.values():
        add(c)
    add(ABI_STUDY)
    for u in UNKNOWN_ICD10CM_CODES:
        add(Code(ICD, u, "does not exist in ICD-10-CM (planted unknown_code)", "[V] absent from CMS 2026"))
    for cc in NEGATIVE_CONTROL_CODES.values():
        for c, _ in cc.icd:
            add(c)
    for substance in NEGATIVE_CONTROL_DRUGS.values():
        for c in substance.codes():
            add(c)
    return tuple(seen.values())


ALL_CODES: tuple[Code, ...] = _collect_codes()
CODE_INDEX: dict[tuple[str, str], int] = {(c.vocabulary, c.code): i for i, c in enumerate(ALL_CODES)}


def code_index(vocabulary: str, code: str) -> int:
    return CODE_INDEX[(vocabulary, code)]


def phenotype_code_lists() -> dict[str, list[dict[str, str]]]:
    """Phenotype id -> the codes the generator writes that count for it (for the truth file and the docs). The
    negative controls' codes are listed in the truth's own section (written only when the extract has them)."""
    out: dict[str, list[dict[str, str]]] = {}
    for c in ALL_CODES:
        for p in c.phenotypes:
            if p in NEGATIVE_CONTROL_CODES or p in NEGATIVE_CONTROL_DRUGS:
                continue
            out.setdefault(p, []).append({"vocabulary": c.vocabulary, "code": c.code, "meaning": c.meaning})
    return out
