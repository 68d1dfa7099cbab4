"""The ground truth of one chunk: for every phenotype, each person's first qualifying day in the CLEAN rows.

This is computed from the rows the generator writes (not from the latent model), with the rules the phenotype
library uses. A phenotype's day is the first day its rule holds on the person's rows up to that day (the confirming
row, Circe's "first qualifying event"), never a day that needs later rows:

* a diagnosis or drug phenotype: the earliest row whose code counts for it (``catalog.Code.phenotypes``);
* diabetes_mellitus and peripheral_arterial_disease: only persons with one code on an inpatient visit, or two codes
  (outpatient/emergency or without a visit) at least 30 days apart; the date is the confirming code: the first
  inpatient code or the first other code 30 or more days after the first other code, whichever is earlier;
* quinine_start: the first quinine fill without a malaria (B50-B54) code within the phenotype's
  exclusion_window_days (phenotypes/outcome/quinine_start.yaml) before or after it;
* lab phenotypes: the first value below the threshold (in mmol/L; magnesium mg/dL / 2.4305), plausible values only;
* ABI: on each day, the person's lowest plausible value over both legs and the days up to then decides the
  category (abi_normal: every value up to then is 1.00-1.40); each category is dated on the first day it holds, so a
  person can be normal or borderline first and low later; abi_noncompressible: the first day with a value > 1.40;
  claudication_with_borderline_or_normal_abi: an intermittent claudication code while the lowest ABI so far is in
  0.91-1.30, dated on the later of the first claudication code and the first day of that range.
"""

from __future__ import annotations

import numpy as np
import yaml

from pipelines.paths import PHENOTYPES_DIR

from . import catalog as cat
from .arrays import first_per_group, min_per_group
from .model import ABI, INPATIENT, MAGNESIUM, POTASSIUM, SODIUM, ChunkEvents

EPS = 1e-9
NO_DAY = -1


def _membership() -> dict[str, np.ndarray]:
    member = {p: np.zeros(len(cat.ALL_CODES), dtype=bool) for p in cat.PHENOTYPE_IDS}
    for i, c in enumerate(cat.ALL_CODES):
        for p in c.phenotypes:
            if p in member:  # the negative controls' truth is their own (negative_controls.py)
                member[p][i] = True
    return member


MEMBER = _membership()
MALARIA_CODES = np.zeros(len(cat.ALL_CODES), dtype=bool)
for _c, _ in cat.CONDITION_CODES["malaria"].icd:
    MALARIA_CODES[cat.code_index(_c.vocabulary, _c.code)] = True
LAB_KIND = {"sodium": SODIUM, "potassium": POTASSIUM, "magnesium": MAGNESIUM}
# A quinine fill with a malaria code this many days before or after it treats the infection: the phenotype's rule.
QUININE_MALARIA_WINDOW_DAYS = int(yaml.safe_load((PHENOTYPES_DIR / "outcome" / "quinine_start.yaml").read_text())
                                  ["rule"]["exclusion_window_days"])


def _near(person: np.ndarray, day: np.ndarray, other_person: np.ndarray, other_day: np.ndarray,
          days: int) -> np.ndarray:
    """Per row (person, day): whether the same person has an `other` row within `days` days before or after."""
    if other_person.size == 0:
        return np.zeros(person.size, dtype=bool)
    span = np.int64(1) << 32  # days are far below 2**31: (person, day) as one sortable key
    other_key = np.sort(other_person.astype(np.int64) * span + other_day.astype(np.int64))
    key = person.astype(np.int64) * span + day.astype(np.int64)
    after = np.searchsorted(other_key, key)  # the first other row at or after the day, then the one before it
    near = np.zeros(person.size, dtype=bool)
    for position in (np.minimum(after, other_key.size - 1), np.maximum(after - 1, 0)):
        near |= np.abs(other_key[position] - key) <= days  # a different person's key is >= 2**32 - days away
    return near


def _earliest(n: int, person: np.ndarray, day: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Earliest day per person among masked rows (rows sorted by person, then day)."""
    return first_per_group(person[mask], n, day[mask], fill=NO_DAY).astype(np.int64)


def _combine_earliest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = (a >= 0) & (b >= 0)
    return np.where(both, np.minimum(a, b), np.maximum(a, b))


def measurement_values_mmol(ev: ChunkEvents) -> np.ndarray:
    """Lab values in mmol/L (mEq/L is the same number for sodium and potassium); ABI unchanged."""
    m = ev.measurements
    return np.where(m["unit_mg_dl"], m["value"] / cat.MG_PER_DL_PER_MMOL_PER_L, m["value"])


def phenotype_first_days(ev: ChunkEvents) -> dict[str, np.ndarray]:
    n = ev.n
    out: dict[str, np.ndarray] = {}
    cond, drug = ev.conditions, ev.drugs
    cond_visit_type = np.where(cond["visit"] >= 0, ev.visits["type"][np.maximum(cond["visit"], 0)], -1)
    cond_inpatient = cond_visit_type == INPATIENT

    malaria_rows = MALARIA_CODES[cond["code"]]
    drug_near_malaria = _near(drug["person"], drug["day"], cond["person"][malaria_rows], cond["day"][malaria_rows],
                              QUININE_MALARIA_WINDOW_DAYS)

    for pid in cat.PHENOTYPE_IDS:
        if pid in cat.LAB_PHENOTYPES or pid in cat.ABI_PHENOTYPES:
            continue
        in_cond = MEMBER[pid][cond["code"]]
        in_drug = MEMBER[pid][drug["code"]]
        if pid == "quinine_start":
            in_drug = in_drug & ~drug_near_malaria
        first = _combine_earliest(_earliest(n, cond["person"], cond["day"], in_cond),
                                  _earliest(n, drug["person"], drug["day"], in_drug))
        if pid in cat.TWO_CODE_RULE_PHENOTYPES:
            any_inpatient = np.zeros(n, dtype=bool)
            any_inpatient[cond["person"][in_cond & cond_inpatient]] = True
            other = in_cond & ~cond_inpatient
            first_inpatient = min_per_group(cond["person"][in_cond & cond_inpatient], n,
                                            cond["day"][in_cond & cond_inpatient], np.iinfo(np.int64).max)
            lo = min_per_group(cond["person"][other], n, cond["day"][other], np.iinfo(np.int64).max)
            # The first other code at least 30 days after the first other code confirms.
            partnered = other & (cond["day"] - lo[cond["person"]] >= cat.TWO_CODE_RULE_MIN_DAYS_APART)
            first_partnered = min_per_group(cond["person"][partnered], n, cond["day"][partnered],
                                            np.iinfo(np.int64).max)
            confirmed = np.minimum(first_inpatient, first_partnered)
            first = np.where(any_inpatient | (first_partnered < np.iinfo(np.int64).max), confirmed, NO_DAY)
        out[pid] = first

    m = ev.measurements
    value = measurement_values_mmol(ev)
    for pid, rule in cat.LAB_THRESHOLDS.items():
        lo, hi = rule["plausible_mmol_l"]
        low = ((m["kind"] == LAB_KIND[rule["lab"]]) & (value >= lo - EPS) & (value <= hi + EPS)
               & (value < rule["below_mmol_l"] - EPS))
        out[pid] = _earliest(n, m["person"], m["day"], low)

    lo, hi = cat.ABI_PLAUSIBLE
    abi = (m["kind"] == ABI) & (value > lo + EPS) & (value <= hi + EPS)  # open at 0: cat.ABI_PLAUSIBLE_LOW_INCLUSIVE
    order = np.lexsort((m["day"][abi], m["person"][abi]))
    person, day, v = m["person"][abi][order], m["day"][abi][order], value[abi][order]
    # ABI values have two decimals: in hundredths the running minimum per person is exact. Offsetting each person
    # by more than the value range lets one cumulative minimum over all rows restart at every person.
    hundredths = np.round(v * 100).astype(np.int64)
    offset = person.astype(np.int64) * 1_000
    lowest_so_far = np.minimum.accumulate(hundredths - offset) + offset
    not_normal = (hundredths < 100) | (hundredths > 140)
    not_normal_so_far = np.cumsum(not_normal) - (np.cumsum(not_normal) - not_normal)[
        np.searchsorted(person, person, side="left")]
    # The verdict of a day is the one after its last row (both legs).
    last_of_day = np.ones(person.size, dtype=bool)
    last_of_day[:-1] = (person[1:] != person[:-1]) | (day[1:] != day[:-1])
    person, day = person[last_of_day], day[last_of_day]
    lowest_so_far, not_normal_so_far = lowest_so_far[last_of_day], not_normal_so_far[last_of_day]

    def first_day_where(holds: np.ndarray) -> np.ndarray:
        return first_per_group(person[holds], n, day[holds], fill=NO_DAY).astype(np.int64)

    noncompressible_day = _earliest(n, m["person"], m["day"], abi & (value > 1.40 + EPS))
    out["abi_low"] = first_day_where(lowest_so_far <= 90)
    out["abi_borderline"] = first_day_where((lowest_so_far >= 91) & (lowest_so_far <= 99))
    out["abi_normal"] = first_day_where(not_normal_so_far == 0)
    out["abi_noncompressible"] = noncompressible_day
    claud = out["intermittent_claudication"]
    c_lo, c_hi = (int(round(bound * 100)) for bound in cat.ABI_CLAUDICATION_RANGE)
    range_start = first_day_where((lowest_so_far >= c_lo) & (lowest_so_far <= c_hi))
    range_end = first_day_where(lowest_so_far < c_lo)  # the lowest value only falls: the range never returns
    start = np.maximum(claud, range_start)
    together = (claud >= 0) & (range_start >= 0) & ((range_end < 0) | (start < range_end))
    out["claudication_with_borderline_or_normal_abi"] = np.where(together, start, NO_DAY)
    return {pid: out[pid] for pid in cat.PHENOTYPE_IDS}


PHENOTYPE_RULES: dict[str, str] = {
    "default_diagnosis_or_drug": "earliest row with a code listed for the phenotype in phenotype_codes",
    "two_code_rule": "diabetes_mellitus, peripheral_arterial_disease: one code on an inpatient visit, or two codes "
                     "(outpatient/emergency visit or no visit) at least 30 days apart; date = the confirming code "
                     "(first inpatient code, or first other code >= 30 days after the first other code)",
    "quinine_start": "earliest quinine fill (RxNorm 9071 / ATC P01BC01) without a malaria code (B50-B54) "
                     f"within {QUININE_MALARIA_WINDOW_DAYS} days before or after it",
    "hyponatremia_lab": "earliest sodium (LOINC 2951-2, mmol/L = mEq/L) < 135, plausible 100-200",
    "hypokalemia_lab": "earliest potassium (LOINC 2823-3) < 3.5 mmol/L, plausible 1-10",
    "hypomagnesemia_lab": "earliest magnesium < 0.70 mmol/L (LOINC 2601-3 mmol/L; LOINC 19123-9 mg/dL divided by "
                          "2.4305), plausible 0.1-5 mmol/L",
    "abi": "SNOMED 446841001 per leg; implausible values ignored; on each day the lowest value over both legs and "
           "the days up to then: abi_low <= 0.90, abi_borderline 0.91-0.99, abi_normal every value so far 1.00-1.40; "
           "each dated on the first day it holds; abi_noncompressible: first day with any leg > 1.40",
    "claudication_with_borderline_or_normal_abi": "intermittent_claudication while the lowest ABI so far is in "
                                                  "0.91-1.30; date = later of first claudication code and first "
                                                  "day of that range",
    "clean_value_margin": "every clean lab value is >= 1% (relative) away from its threshold",
}
