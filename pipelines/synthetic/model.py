"""The latent model: simulate one chunk of persons and their clean events, vectorised with numpy.

A chunk is simulated in the order the causal story runs:

1. persons, observation periods, deaths (``_simulate_persons``);
2. latent conditions with onset dates, prevalent ones recorded at the first (registration) visit
   (``_simulate_conditions``);
3. background visits with age- and morbidity-dependent Poisson rates, and repeat codes on them;
4. drugs started after their indications, filled every 30 or 90 days until the end of observation;
5. labs (sodium, potassium, magnesium; more low values on diuretics) and ABI;
6. the first leg-cramp onset from a proportional-hazards model (exposures exact to the day), then quinine;
7. distractors, malaria with quinine, rule-out persons;
8. visits deduplicated per (person, day, visit type); every event points to one.

Days are integers (days since 1970-01-01). Loops run over catalog entries and months only, never over persons.
The output is a ``ChunkEvents``: one dict of numpy arrays per table, plus the latent dates for the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import catalog as cat
from . import parameters as P
from .arrays import (DAY_KEY, expand, first_per_group, in_intervals, logistic, logit, merge_intervals, sorted_unique,
                     splitmix64, to_day, weighted_choice)
from .negative_control_exposures import NegativeControlExposureRows, simulate_negative_control_exposures
from .negative_controls import NegativeControlRows, simulate_negative_controls

DATA_START_DAY = to_day(P.DATA_START)
DATA_END_DAY = to_day(P.DATA_END)
DAYS_PER_YEAR = 365.25

OUTPATIENT, INPATIENT, EMERGENCY = 0, 1, 2  # the order of Site.visit_type_spelling
FEMALE, MALE, UNKNOWN_SEX = 0, 1, 2

SITE_DIAG_SNOMED = np.array([s.diagnosis_vocabulary == cat.SNOMED for s in cat.SITES])
SITE_DRUG_RXNORM = np.array(cat.SITE_WRITES_RXNORM)
SITE_MG_IN_MG_DL = np.array([s.magnesium_unit == "mg/dL" for s in cat.SITES])

# Lab kinds stored in the measurement rows (index into LAB_KINDS).
LAB_KINDS = ("sodium", "potassium", "magnesium", "abi")
SODIUM, POTASSIUM, MAGNESIUM, ABI = range(4)
LEFT, RIGHT = 0, 1


class RowBuffer:
    """Collects column arrays batch by batch; ``finish`` concatenates them."""

    def __init__(self, **dtypes: type) -> None:
        self.dtypes = dtypes
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in dtypes}

    def add(self, **columns: np.ndarray | int | float) -> None:
        size = max(np.size(v) for v in columns.values() if np.ndim(v) > 0)
        for name, dtype in self.dtypes.items():
            value = columns.get(name, -1)
            arr = np.asarray(value, dtype=dtype)
            self.parts[name].append(np.broadcast_to(arr, (size,)).copy() if arr.ndim == 0 else arr)

    def finish(self) -> dict[str, np.ndarray]:
        return {k: (np.concatenate(v) if v else np.empty(0, dtype=self.dtypes[k])) for k, v in self.parts.items()}


@dataclass
class LatentCondition:
    has: np.ndarray  # bool: has the condition at some time up to the end of observation
    onset_day: np.ndarray  # latent onset (may precede observation); meaningful where has
    record_day: np.ndarray  # first day it is coded, -1 if never coded
    record_visit: np.ndarray  # visit request index of that first record, -1 if none


@dataclass
class ChunkEvents:
    """The clean events of one chunk (arrays indexed by local person 0..n-1) and the latent dates."""

    n: int
    persons: dict[str, np.ndarray]
    observation_periods: dict[str, np.ndarray]
    visits: dict[str, np.ndarray]
    conditions: dict[str, np.ndarray]
    drugs: dict[str, np.ndarray]
    measurements: dict[str, np.ndarray]
    procedures: dict[str, np.ndarray]
    latent: dict[str, np.ndarray] = field(default_factory=dict)
    rule_outs: dict[str, int] = field(default_factory=dict)
    # Profiles with exposure dynamics only: exposure -> (person, start day, end day) of the intervals in which its
    # hazard ratio acts, and exposure -> (expected onsets with its effect, without it) among the exposed from their
    # first exposure day (the intention-to-treat rate ratio's parts).
    exposure_intervals: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    itt_expected_onsets: dict[str, tuple[float, float]] = field(default_factory=dict)
    cramp_frailty: np.ndarray | None = None
    # The negative-control outcomes' records (negative_controls.py), None when the extract has none.
    negative_controls: NegativeControlRows | None = None
    # The negative-control exposures' fills (negative_control_exposures.py), None when the extract has none.
    negative_control_exposures: NegativeControlExposureRows | None = None


def _code_options(choice: cat.Choice) -> tuple[np.ndarray, np.ndarray]:
    idx = np.array([cat.code_index(c.vocabulary, c.code) for c, _ in choice], dtype=np.int32)
    w = np.array([w for _, w in choice], dtype=np.float64)
    return idx, w


# The simulation steps in causal order (ChunkSimulation.simulate_<step>).
SIMULATION_STEPS = ("persons", "conditions", "background_visits", "repeat_codes", "drugs", "labs", "abi", "cramps",
                    "malaria_and_rule_outs")


class ChunkSimulation:
    def __init__(self, rng: np.random.Generator, n: int, first_person_id: int,
                 cramp_effects: dict[str, tuple[float, str]] = P.CRAMP_EFFECTS,
                 dynamics: P.ExposureDynamics | None = None) -> None:
        self.rng = rng
        self.cramp_effects = cramp_effects  # one of parameters.CRAMP_EFFECTS_PROFILES
        # None: every effect acts from the first exposure on. Otherwise parameters.EXPOSURE_DYNAMICS: the draws it
        # adds come from a stream of their own, so persons, conditions and drug starts equal the other profiles'.
        self.dynamics = dynamics
        self.dynamics_rng = rng.spawn(1)[0] if dynamics is not None else None
        self.drug_on_intervals: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.exposure_on_intervals: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.itt_expected_onsets: dict[str, tuple[float, float]] = {}
        self.cramp_frailty: np.ndarray | None = None
        self.n = n
        self.first_person_id = first_person_id
        self.latent: dict[str, LatentCondition] = {}
        self.code_u: dict[str, np.ndarray] = {}  # one uniform per person per latent condition: its code choice
        self.drug_first_fill: dict[str, np.ndarray] = {}
        self.visit_requests = RowBuffer(person=np.int64, day=np.int64, type=np.int8, los=np.int64)
        self.n_visit_requests = 0
        self.conditions = RowBuffer(person=np.int64, day=np.int64, code=np.int32, visit=np.int64, end_day=np.int64)
        self.drugs = RowBuffer(person=np.int64, day=np.int64, code=np.int32, visit=np.int64, days_supply=np.int64,
                               quantity=np.float64)
        self.measurements = RowBuffer(person=np.int64, day=np.int64, code=np.int32, visit=np.int64, kind=np.int8,
                                      value=np.float64, unit_mg_dl=np.bool_, laterality=np.int8)
        self.procedures = RowBuffer(person=np.int64, day=np.int64, code=np.int32, visit=np.int64)
        self.rule_outs: dict[str, int] = {}

    def simulate(self, through: str) -> None:
        """Run the steps of SIMULATION_STEPS in order, up to and including `through` (e.g. "cramps" to study the
        latent dates without assembling rows)."""
        for step in SIMULATION_STEPS[:SIMULATION_STEPS.index(through) + 1]:
            getattr(self, f"simulate_{step}")()

    # ------------------------------------------------------------------------------------------------ helpers
    def request_visits(self, person: np.ndarray, day: np.ndarray, vtype: np.ndarray | int,
                       los: np.ndarray | int = 0) -> np.ndarray:
        """Ask for a visit on each (person, day); returns the request indices (deduplicated later)."""
        person = np.asarray(person, dtype=np.int64)
        if person.size == 0:
            return np.empty(0, dtype=np.int64)
        self.visit_requests.add(person=person, day=day, type=vtype, los=los)
        idx = np.arange(self.n_visit_requests, self.n_visit_requests + person.size, dtype=np.int64)
        self.n_visit_requests += person.size
        return idx

    def age_at(self, person: np.ndarray, day: np.ndarray) -> np.ndarray:
        return (day - self.birth_day[person]) / DAYS_PER_YEAR

    def in_observation(self, person: np.ndarray, day: np.ndarray) -> np.ndarray:
        s2 = self.span2_start[person]
        return (((day >= self.span1_start[person]) & (day <= self.span1_end[person]))
                | ((s2 >= 0) & (day >= s2) & (day <= self.span2_end[person])))

    def snap_forward(self, person: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Move a day into observation: before the start -> the start; in a gap -> the next period's start;
        after the last end -> -1."""
        day = np.maximum(day, self.span1_start[person])
        s2 = self.span2_start[person]
        in_gap = (s2 >= 0) & (day > self.span1_end[person]) & (day < s2)
        day = np.where(in_gap, s2, day)
        return np.where(day > self.last_end[person], -1, day)

    def uniform_observed_day(self, person: np.ndarray, u: np.ndarray) -> np.ndarray:
        len1 = self.span1_end[person] - self.span1_start[person] + 1
        has2 = self.span2_start[person] >= 0
        len2 = np.where(has2, self.span2_end[person] - self.span2_start[person] + 1, 0)
        x = np.floor(u * (len1 + len2)).astype(np.int64)
        return np.where(x < len1, self.span1_start[person] + x, self.span2_start[person] + (x - len1))

    def codes_for(self, name: str, person: np.ndarray, day: np.ndarray) -> np.ndarray:
        """The code each row of latent condition ``name`` is written with (per the person's site and choice)."""
        spec = cat.CONDITION_CODES[name]
        u = self.code_u[name][person]
        icd_idx, icd_w = _code_options(spec.icd)
        code = icd_idx[weighted_choice(u, icd_w)]
        if spec.icd_after:
            after_idx, after_w = _code_options(spec.icd_after)
            code = np.where(day >= to_day(spec.icd_after_date), after_idx[weighted_choice(u, after_w)], code)
        if spec.snomed:
            sct_idx, sct_w = _code_options(spec.snomed)
            code = np.where(SITE_DIAG_SNOMED[self.site[person]], sct_idx[weighted_choice(u, sct_w)], code)
        return code.astype(np.int32)

    def ensure_code_u(self, name: str) -> None:
        if name not in self.code_u:
            self.code_u[name] = self.rng.random(self.n)

    def add_condition_rows(self, name: str, person: np.ndarray, day: np.ndarray, visit: np.ndarray,
                           end_day: np.ndarray | int = -1) -> None:
        if person.size == 0:
            return
        self.ensure_code_u(name)
        self.conditions.add(person=person, day=day, code=self.codes_for(name, person, day), visit=visit,
                            end_day=end_day)

    def visit_types_for(self, size: int, inpatient_share: float, emergency_share: float) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
        u = self.rng.random(size)
        vtype = np.where(u < inpatient_share, INPATIENT,
                         np.where(u < inpatient_share + emergency_share, EMERGENCY, OUTPATIENT)).astype(np.int8)
        los = np.where(vtype == INPATIENT, 1 + self.rng.poisson(P.INPATIENT_LENGTH_OF_STAY_MEAN_DAYS - 1, size), 0)
        return vtype, los

    # ------------------------------------------------------------------------------------------------ 1. persons
    def simulate_persons(self) -> None:
        rng, n = self.rng, self.n
        self.person_id = self.first_person_id + np.arange(n, dtype=np.int64)
        self.site = weighted_choice(rng.random(n), [s.weight for s in cat.SITES]).astype(np.int8)
        u = rng.random(n)
        female_cut = P.UNKNOWN_SEX_SHARE + (1 - P.UNKNOWN_SEX_SHARE) * P.FEMALE_SHARE
        self.sex = np.where(u < P.UNKNOWN_SEX_SHARE, UNKNOWN_SEX, np.where(u < female_cut, FEMALE, MALE)).astype(
            np.int8)

        band = weighted_choice(rng.random(n), [b[2] for b in P.AGE_BANDS])
        band_lo = np.array([b[0] for b in P.AGE_BANDS], dtype=np.float64)[band]
        band_hi = np.array([b[1] for b in P.AGE_BANDS], dtype=np.float64)[band] + 1.0
        age_start = band_lo + rng.random(n) * (band_hi - band_lo)
        years = P.OBS_MIN_YEARS + rng.random(n) * (P.OBS_MAX_YEARS - P.OBS_MIN_YEARS)
        years = np.minimum(years, np.maximum(P.OBS_MIN_YEARS, P.MAX_AGE - age_start))
        length = np.round(years * DAYS_PER_YEAR).astype(np.int64)
        window = DATA_END_DAY - DATA_START_DAY + 1
        length = np.minimum(length, window)
        start = DATA_START_DAY + np.floor(rng.random(n) * (window - length + 1)).astype(np.int64)
        end = start + length - 1
        self.birth_day = start - np.round(age_start * DAYS_PER_YEAR).astype(np.int64)
        self.year_of_birth = self.birth_day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
        self.race = weighted_choice(rng.random(n), [w for _, w in cat.RACES]).astype(np.int8)
        self.ethnicity = weighted_choice(rng.random(n), [w for _, w in cat.ETHNICITIES]).astype(np.int8)

        # Second observation periods: a gap (re-registration) or an overlap (duplicated enrolment record).
        u = rng.random(n)
        gapped = (u < P.TWO_PERIODS_SHARE) & (length > 900)
        overlapping = (u >= P.TWO_PERIODS_SHARE) & (u < P.TWO_PERIODS_SHARE + P.OVERLAPPING_PERIODS_SHARE) & (
            length > 400)
        gap = rng.integers(P.GAP_DAYS[0], P.GAP_DAYS[1] + 1, n)
        gap = np.minimum(gap, np.maximum(length - 800, 1))
        split_room = np.maximum(length - 360 - gap, 1)
        split = start + 180 + np.floor(rng.random(n) * split_room).astype(np.int64)
        overlap = rng.integers(P.OVERLAP_DAYS[0], P.OVERLAP_DAYS[1] + 1, n)
        overlap = np.minimum(overlap, split - start - 1)

        p1_end = np.where(gapped | overlapping, split, end)
        p2_start = np.where(gapped, split + gap, np.where(overlapping, split - overlap, -1))

        # Deaths: Gompertz-like yearly rate by age in the middle of observation; death ends observation.
        age_mid = age_start + length / DAYS_PER_YEAR / 2
        rate = P.DEATH_RATE_AT_70_PER_YEAR * np.exp(P.DEATH_LOG_RATE_PER_YEAR * (age_mid - 70.0))
        dead = rng.random(n) < 1.0 - np.exp(-rate * length / DAYS_PER_YEAR)
        last_span_start = np.where(gapped, p2_start, start)
        death_lo = np.where(overlapping, split + 1, last_span_start + 30)
        death_day = death_lo + np.floor(rng.random(n) * (end - death_lo + 1)).astype(np.int64)
        death_day = np.where(dead, death_day, -1)
        end = np.where(dead, death_day, end)
        p1_end = np.where(gapped | overlapping, p1_end, end)

        self.death_day = death_day
        self.overlapping = overlapping
        self.n_periods = np.where(gapped | overlapping, 2, 1)
        # The written observation periods.
        two = gapped | overlapping
        self.obs_rows = {
            "person": np.concatenate([np.arange(n), np.flatnonzero(two)]),
            "start": np.concatenate([start, p2_start[two]]),
            "end": np.concatenate([p1_end, end[two]]),
        }
        # Spans where events may fall: the union of the periods (overlapping periods merge into one span).
        self.span1_start = start
        self.span1_end = np.where(gapped, p1_end, end)
        self.span2_start = np.where(gapped, p2_start, -1)
        self.span2_end = np.where(gapped, end, -1)
        self.first_start = start
        self.last_end = end
        self.age_start = age_start
        self.age_end = (end - self.birth_day) / DAYS_PER_YEAR
        self.observed_days = (self.span1_end - self.span1_start + 1) + np.where(
            gapped, self.span2_end - self.span2_start + 1, 0)

        # One registration visit at the start of each span: where prevalent conditions are first recorded.
        reg1_day = np.minimum(start + rng.integers(0, 31, n), self.span1_end)
        self.registration_visit = self.request_visits(np.arange(n), reg1_day, OUTPATIENT)
        self.registration_day = reg1_day
        g = np.flatnonzero(gapped)
        reg2_day = np.minimum(self.span2_start[g] + rng.integers(0, 31, g.size), self.span2_end[g])
        self.request_visits(g, reg2_day, OUTPATIENT)
        self._background_requests = [(np.arange(n), reg1_day, self.registration_visit),
                                     (g, reg2_day, np.arange(self.n_visit_requests - g.size, self.n_visit_requests))]

    # ------------------------------------------------------------------------------------------------ 2. conditions
    def _record(self, name: str, has: np.ndarray, onset_day: np.ndarray, prevalent: np.ndarray,
                inpatient_share: float, emergency_share: float) -> LatentCondition:
        """First record of a latent condition: at the registration visit if prevalent, else at a visit on the onset
        day (moved into observation when it falls in a gap)."""
        n = self.n
        record_day = np.full(n, -1, dtype=np.int64)
        record_visit = np.full(n, -1, dtype=np.int64)
        prev = has & prevalent
        record_day[prev] = self.registration_day[prev]
        record_visit[prev] = self.registration_visit[prev]
        inc = np.flatnonzero(has & ~prevalent)
        day = self.snap_forward(inc, onset_day[inc])
        ok = day >= 0
        inc, day = inc[ok], day[ok]
        vtype, los = self.visit_types_for(inc.size, inpatient_share, emergency_share)
        record_day[inc] = day
        record_visit[inc] = self.request_visits(inc, day, vtype, los)
        coded = np.flatnonzero(record_day >= 0)
        self.add_condition_rows(name, coded, record_day[coded], record_visit[coded])
        return LatentCondition(has, onset_day, record_day, record_visit)

    def simulate_conditions(self) -> None:
        rng, n = self.rng, self.n
        age_mid = (self.age_start + self.age_end) / 2
        self.n_chronic = np.zeros(n, dtype=np.int64)
        for name, spec in P.CHRONIC.items():
            self.ensure_code_u(name)
            p60 = np.where(self.sex == FEMALE, spec.p60_female,
                           np.where(self.sex == MALE, spec.p60_male, (spec.p60_female + spec.p60_male) / 2))
            intercept = logit(p60)
            for other, odds_ratio in spec.odds_ratios:
                intercept = intercept + np.log(odds_ratio) * self.latent[other].has
            lu = logit(np.clip(rng.random(n), 1e-12, 1 - 1e-12))
            slope = spec.logit_slope_per_10_years / 10.0
            if slope > 0:
                onset_age = np.maximum(60.0 + (lu - intercept) / slope, 18.0)
                has = onset_age <= self.age_end
                prevalent = onset_age <= self.age_start
            else:  # no age trend: present (or not) throughout, onset before observation
                has = lu < intercept
                prevalent = has.copy()
                onset_age = np.minimum(self.age_start - 1.0, 18.0 + rng.random(n) * (self.age_start - 18.0))
            onset_day = self.birth_day + np.round(onset_age * DAYS_PER_YEAR).astype(np.int64)
            latent = self._record(name, has, onset_day, prevalent, spec.inpatient_share, spec.emergency_share)
            self.latent[name] = latent
            self.n_chronic += latent.record_day >= 0

        for child, (parent, share) in P.SUBCONDITIONS.items():
            self.ensure_code_u(child)
            par = self.latent[parent]
            has = par.has & (par.record_day >= 0) & (rng.random(n) < share)
            onset_day = par.onset_day + np.floor(rng.random(n) * 3 * DAYS_PER_YEAR).astype(np.int64)
            prevalent = onset_day <= self.first_start
            has = has & (onset_day <= self.last_end)
            self.latent[child] = self._record(child, has, onset_day, prevalent, 0.0, 0.0)

        for name, spec in P.ACUTE.items():
            self.ensure_code_u(name)
            rate = spec.rate60_per_year * np.exp(spec.log_rate_slope_per_10_years * (age_mid - 60.0) / 10.0)
            rate = rate * np.where(self.sex == FEMALE, spec.female_rate_ratio, 1.0)
            has = rng.random(n) < 1.0 - np.exp(-rate * self.observed_days / DAYS_PER_YEAR)
            person = np.flatnonzero(has)
            day = self.uniform_observed_day(person, rng.random(person.size))
            vtype, los = self.visit_types_for(person.size, spec.inpatient_share, spec.emergency_share)
            visit = self.request_visits(person, day, vtype, los)
            # Acute episodes: an end date a week later at half of the rows.
            end_day = np.where(rng.random(person.size) < 0.5, np.minimum(day + 7, self.last_end[person]), -1)
            self.add_condition_rows(name, person, day, visit, end_day)
            onset = np.full(n, -1, dtype=np.int64)
            onset[person] = day
            record_visit = np.full(n, -1, dtype=np.int64)
            record_visit[person] = visit
            self.latent[name] = LatentCondition(has, onset, onset.copy(), record_visit)

    # ------------------------------------------------------------------------------------------------ 3. visits
    def simulate_background_visits(self) -> None:
        """Poisson visits per span; they carry repeat codes, labs and ABI measurements."""
        rng = self.rng
        spans = [(np.arange(self.n), self.span1_start, self.span1_end)]
        g = np.flatnonzero(self.span2_start >= 0)
        spans.append((g, self.span2_start[g], self.span2_end[g]))
        for person, s, e in spans:
            years = (e - s + 1) / DAYS_PER_YEAR
            age = self.age_at(person, (s + e) / 2)
            decades = np.maximum(age - 18.0, 0.0) / 10.0
            rates = {
                OUTPATIENT: P.OUTPATIENT_PER_YEAR_AT_18 + P.OUTPATIENT_PER_YEAR_PER_10_YEARS * decades
                + P.OUTPATIENT_PER_YEAR_PER_CHRONIC_CONDITION * self.n_chronic[person],
                EMERGENCY: P.EMERGENCY_PER_YEAR[0] + P.EMERGENCY_PER_YEAR[1] * decades,
                INPATIENT: P.INPATIENT_PER_YEAR[0] + P.INPATIENT_PER_YEAR[1] * decades,
            }
            for vtype, rate in rates.items():
                owner, _ = expand(rng.poisson(rate * years))
                who = person[owner]
                day = s[owner] + np.floor(rng.random(owner.size) * (e[owner] - s[owner] + 1)).astype(np.int64)
                los = np.zeros(owner.size, dtype=np.int64)
                if vtype == INPATIENT:
                    los = 1 + rng.poisson(P.INPATIENT_LENGTH_OF_STAY_MEAN_DAYS - 1, owner.size)
                req = self.request_visits(who, day, vtype, los)
                self._background_requests.append((who, day, req))
        who = np.concatenate([b[0] for b in self._background_requests])
        day = np.concatenate([b[1] for b in self._background_requests])
        req = np.concatenate([b[2] for b in self._background_requests])
        order = np.lexsort((day, who))
        self.bg_key = who[order] * DAY_KEY + day[order]
        self.bg_day = day[order]
        self.bg_person = who[order]
        self.bg_request = req[order]
        # The visit type of each background visit (for outpatient-only picks): concatenate the requests so far and
        # keep them as one batch in the buffer.
        requests = self.visit_requests.finish()
        self.visit_requests = RowBuffer(person=np.int64, day=np.int64, type=np.int8, los=np.int64)
        self.visit_requests.add(**requests)
        self.bg_type = requests["type"][self.bg_request]

    def pick_background_visit(self, person: np.ndarray, after_day: np.ndarray,
                              outpatient_only: bool = False) -> np.ndarray:
        """Position (into the bg_* arrays) of a random background visit of the person on or after ``after_day``;
        -1 where there is none."""
        lo = np.searchsorted(self.bg_key, person * DAY_KEY + after_day, side="left")
        hi = np.searchsorted(self.bg_key, (person + 1) * DAY_KEY, side="left")
        pos = lo + np.floor(self.rng.random(person.size) * (hi - lo)).astype(np.int64)
        pos = np.where(hi > lo, pos, -1)
        if outpatient_only:
            ok = pos >= 0
            ok[ok] = self.bg_type[pos[ok]] == OUTPATIENT
            pos = np.where(ok, pos, -1)
        return pos

    def add_repeat_codes(self, name: str, per_year: float) -> None:
        latent = self.latent[name]
        person = np.flatnonzero(latent.record_day >= 0)
        years = (self.last_end[person] - latent.record_day[person]) / DAYS_PER_YEAR
        owner, _ = expand(self.rng.poisson(per_year * np.maximum(years, 0.0)))
        who = person[owner]
        pos = self.pick_background_visit(who, latent.record_day[who] + 1)
        ok = pos >= 0
        self.add_condition_rows(name, who[ok], self.bg_day[pos[ok]], self.bg_request[pos[ok]])

    def simulate_repeat_codes(self) -> None:
        for name, spec in P.CHRONIC.items():
            self.add_repeat_codes(name, spec.repeat_codes_per_year)
        for child in P.SUBCONDITIONS:
            self.add_repeat_codes(child, P.SUBCONDITION_REPEAT_CODES_PER_YEAR)

    # ------------------------------------------------------------------------------------------------ 4. drugs
    def simulate_drugs(self) -> None:
        rng, n = self.rng, self.n
        self.refill_interval = np.array([i for i, _ in P.REFILL_INTERVAL_DAYS])[
            weighted_choice(rng.random(n), [w for _, w in P.REFILL_INTERVAL_DAYS])].astype(np.int64)
        self.refill_anchor = self.first_start + np.floor(rng.random(n) * self.refill_interval).astype(np.int64)
        age_mid = (self.age_start + self.age_end) / 2
        never = np.iinfo(np.int64).max
        for name, model in P.DRUGS.items():
            start = np.full(n, never, dtype=np.int64)
            for indication, prob in model.indications:
                ind = self.latent[indication]
                takes = (ind.record_day >= 0) & (rng.random(n) < prob)
                already = (ind.record_visit == self.registration_visit) & (
                    rng.random(n) < P.DRUG_ALREADY_STARTED_IF_PREVALENT)
                delay = np.where(already, 0, np.round(rng.exponential(P.DRUG_START_DELAY_MEAN_DAYS, n)))
                start = np.where(takes, np.minimum(start, ind.record_day + delay.astype(np.int64)), start)
            stop = self.last_end.copy()
            if model.no_indication_p60 > 0:
                p = logistic(logit(model.no_indication_p60)
                             + np.log(model.no_indication_or_per_10_years) * (age_mid - 60.0) / 10.0)
                takes = rng.random(n) < p
                day = self.uniform_observed_day(np.arange(n), rng.random(n))
                start = np.where(takes, np.minimum(start, day), start)
            if model.female_only_until_age is not None:
                stop_day = self.birth_day + np.round(model.female_only_until_age * DAYS_PER_YEAR).astype(np.int64)
                p = logistic(logit(P.ORAL_CONTRACEPTIVE_P_AT_25)
                             + np.log(P.ORAL_CONTRACEPTIVE_OR_PER_10_YEARS) * (self.age_start - 25.0) / 10.0)
                takes = (self.sex == FEMALE) & (self.age_start < model.female_only_until_age) & (rng.random(n) < p)
                day = np.where(rng.random(n) < 0.7, self.registration_day,
                               self.uniform_observed_day(np.arange(n), rng.random(n)))
                start = np.where(takes & (day < stop_day), day, start)
                stop = np.minimum(stop, stop_day)
            person = np.flatnonzero(start != never)
            first = self.snap_forward(person, start[person])
            ok = (first >= 0) & (first <= stop[person])
            person, first = person[ok], first[ok]
            first_fill = np.full(n, -1, dtype=np.int64)
            first_fill[person] = first
            self.drug_first_fill[name] = first_fill
            if self.dynamics is None:
                self._add_fills(name, person, first, stop[person])
            else:
                self._add_treatment_episodes(name, person, first, stop[person])

    def _substance_codes(self, drug_class: str, person: np.ndarray) -> np.ndarray:
        """Per person: the substance (stable choice) and its code at the person's site."""
        key = "drug:" + drug_class
        self.ensure_code_u(key)
        subs = cat.DRUG_CLASSES[drug_class].substances
        choice = weighted_choice(self.code_u[key][person], [w for _, w in subs])
        atc = np.array([cat.code_index(cat.ATC, s.atc) for s, _ in subs], dtype=np.int32)
        rx = np.array([cat.code_index(cat.RXNORM, s.rxcui) if s.rxcui else cat.code_index(cat.ATC, s.atc)
                       for s, _ in subs], dtype=np.int32)
        return np.where(SITE_DRUG_RXNORM[self.site[person]], rx[choice], atc[choice])

    def _add_fills(self, drug_class: str, person: np.ndarray, first: np.ndarray, stop: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Persistent use: a fill on the start day, then on every point of the person's refill grid until stop.
        Returns the fills written: (index into ``person``, day, days' supply)."""
        interval = self.refill_interval[person]
        anchor = self.refill_anchor[person]
        j0 = np.floor_divide(first - anchor, interval) + 1  # first grid point strictly after the start
        j_last = np.floor_divide(stop - anchor, interval)
        owner, pos = expand(np.maximum(j_last - j0 + 1, 0))
        j = j0[owner] + pos
        jitter = (splitmix64(self.person_id[person[owner]] * 100_003 + j)
                  % np.uint64(P.REFILL_JITTER_MAX_DAYS + 1)).astype(np.int64)
        grid_day = anchor[owner] + j * interval[owner] + jitter
        fill_person = np.concatenate([person, person[owner]])
        fill_owner = np.concatenate([np.arange(person.size), owner])
        fill_day = np.concatenate([first, grid_day])
        # The first fill only lasts until the person's next refill day (a "synchronisation" supply, at least 7 days).
        first_supply = np.clip(anchor + j0 * interval - first, 7, interval)
        supply = np.concatenate([first_supply, interval[owner]])
        keep = (fill_day <= np.concatenate([stop, stop[owner]])) & self.in_observation(fill_person, fill_day)
        fill_person, fill_day, supply = fill_person[keep], fill_day[keep], supply[keep]
        self._add_drug_rows(drug_class, fill_person, fill_day, supply)
        return fill_owner[keep], fill_day, supply

    def _add_treatment_episodes(self, drug_class: str, person: np.ndarray, first: np.ndarray,
                                stop: np.ndarray) -> None:
        """Use in episodes (profiles with exposure dynamics): from ``first``, an episode of fills on the refill
        grid, a stop, and after a gap a restart with probability restart_share, until stop. The person is on drug
        from a fill to the end of its days' supply; refills late by up to REFILL_JITTER_MAX_DAYS stay one era."""
        dyn, rng = self.dynamics, self.dynamics_rng
        m, k = person.size, dyn.max_episodes
        length = dyn.episode_min_days + np.round(rng.exponential(dyn.episode_extra_days_mean, (m, k)))
        gap = dyn.gap_min_days + np.round(rng.exponential(dyn.gap_extra_days_mean, (m, k)))
        restarts = rng.random((m, k)) < dyn.restart_share
        reached = np.c_[np.ones((m, 1), dtype=bool), np.cumprod(restarts[:, :-1], axis=1).astype(bool)]
        offset = np.c_[np.zeros((m, 1)), np.cumsum(length + gap, axis=1)[:, :-1]].astype(np.int64)
        episode_start = first[:, None] + offset
        row, col = np.nonzero(reached & (episode_start <= stop[:, None]))
        start = episode_start[row, col]
        end = np.minimum(start + length[row, col].astype(np.int64) - 1, stop[row])
        owner, fill_day, supply = self._add_fills(drug_class, person[row], start, end)
        self.drug_on_intervals[drug_class] = merge_intervals(person[row][owner], fill_day, fill_day + supply - 1,
                                                             join_gap_days=P.REFILL_JITTER_MAX_DAYS)

    def _add_drug_rows(self, drug_class: str, person: np.ndarray, day: np.ndarray, supply: np.ndarray) -> None:
        visit = self.request_visits(person, day, OUTPATIENT)
        quantity = np.round(supply * cat.DRUG_CLASSES[drug_class].quantity_per_day, 1)
        self.drugs.add(person=person, day=day, code=self._substance_codes(drug_class, person), visit=visit,
                       days_supply=supply, quantity=quantity)

    def on_drug(self, drug_class: str, person: np.ndarray, day: np.ndarray) -> np.ndarray:
        if self.dynamics is not None:
            return in_intervals(self.drug_on_intervals[drug_class], person, day)
        first = self.drug_first_fill[drug_class][person]
        return (first >= 0) & (day >= first)

    # ------------------------------------------------------------------------------------------------ 5. labs
    def simulate_labs(self) -> None:
        rng = self.rng
        # Labs are drawn at most once per person and day (the first background visit of the day), so the clean
        # data never hold two results of one test on one day.
        first_of_day = np.r_[True, self.bg_key[1:] != self.bg_key[:-1]]
        person, day, req = self.bg_person[first_of_day], self.bg_day[first_of_day], self.bg_request[first_of_day]
        size = person.size
        age = self.age_at(person, day)
        thiazide = self.on_drug("thiazide_diuretics", person, day)
        thiazide_like = self.on_drug("thiazide_like_diuretics", person, day)
        loop = self.on_drug("loop_diuretics", person, day)
        k_sparing = self.on_drug("potassium_sparing_diuretics", person, day)
        diuretic = thiazide | thiazide_like | loop | k_sparing
        monitored = (diuretic | (self.latent["diabetes_mellitus"].record_day[person] >= 0)
                     | (self.latent["heart_failure"].record_day[person] >= 0) | (age >= 70))
        panel = rng.random(size) < np.where(monitored, P.PANEL_SHARE_OF_VISITS_MONITORED, P.PANEL_SHARE_OF_VISITS)
        mg_test = rng.random(size) < np.where(monitored | (self.latent["alcohol_use"].record_day[person] >= 0),
                                              P.MAGNESIUM_SHARE_OF_VISITS_MONITORED, P.MAGNESIUM_SHARE_OF_VISITS)
        low_mg = self._add_lab_results(person, day, req, panel, mg_test)

        # First low magnesium: the hypomagnesemia exposure of the cramp model.
        i = np.flatnonzero(low_mg)
        first_low = np.full(self.n, -1, dtype=np.int64)
        uniq, first = np.unique(person[i], return_index=True)  # bg arrays are sorted by person, day
        first_low[uniq] = day[i][first]
        self.first_low_magnesium = first_low
        self.low_magnesium_results = (person[i], day[i])  # every low result: the transient state's findings

    def _add_lab_results(self, person: np.ndarray, day: np.ndarray, req: np.ndarray, panel: np.ndarray,
                         mg_test: np.ndarray) -> np.ndarray:
        """Results of the tests done (a sodium/potassium panel where ``panel``, magnesium where ``mg_test``), low
        more often on diuretics; returns which magnesium results are low."""
        rng = self.rng
        size = person.size
        age = self.age_at(person, day)
        thiazide = self.on_drug("thiazide_diuretics", person, day)
        thiazide_like = self.on_drug("thiazide_like_diuretics", person, day)
        loop = self.on_drug("loop_diuretics", person, day)
        k_sparing = self.on_drug("potassium_sparing_diuretics", person, day)
        na = P.LOW_SODIUM
        p_low_na = (na["base"] + na["per_10_years_over_50"] * np.maximum(age - 50, 0) / 10 + na["thiazide"] * thiazide
                    + na["thiazide_like"] * thiazide_like + na["loop"] * loop + na["potassium_sparing"] * k_sparing)
        k = P.LOW_POTASSIUM
        p_low_k = (k["base"] + k["thiazide"] * thiazide + k["thiazide_like"] * thiazide_like + k["loop"] * loop)
        p_low_k = p_low_k * np.where(k_sparing, k["potassium_sparing_multiplier"], 1.0)
        low_na = panel & (rng.random(size) < p_low_na)
        low_k = panel & (rng.random(size) < p_low_k)
        mg = P.LOW_MAGNESIUM
        alcohol = self.latent["alcohol_use"].record_day[person] >= 0
        p_low_mg = (mg["base"] + mg["thiazide"] * thiazide + mg["thiazide_like"] * thiazide_like + mg["loop"] * loop
                    + mg["alcohol"] * alcohol + mg["if_low_potassium"] * low_k)
        low_mg = mg_test & (rng.random(size) < p_low_mg)

        def uniform(lo_hi: tuple[float, float], m: int) -> np.ndarray:
            return lo_hi[0] + rng.random(m) * (lo_hi[1] - lo_hi[0])

        # Sodium: whole numbers; potassium: one decimal; magnesium: two decimals (in the site's unit).
        sodium = np.where(low_na, rng.integers(P.SODIUM_LOW[0], P.SODIUM_LOW[1] + 1, size),
                          np.clip(np.round(rng.normal(143.5, 1.5, size)), *P.SODIUM_NORMAL)).astype(np.float64)
        potassium = np.where(low_k, np.round(uniform(P.POTASSIUM_LOW, size), 1),
                             np.clip(np.round(rng.normal(4.3, 0.35, size), 1), *P.POTASSIUM_NORMAL))
        magnesium_mmol = np.where(low_mg, uniform(P.MAGNESIUM_LOW, size),
                                  np.clip(rng.normal(0.86, 0.07, size), *P.MAGNESIUM_NORMAL))
        mg_dl = SITE_MG_IN_MG_DL[self.site[person]]
        magnesium = np.where(mg_dl, np.round(magnesium_mmol * cat.MG_PER_DL_PER_MMOL_PER_L, 2),
                             np.round(magnesium_mmol, 2))

        sodium_code = cat.code_index(cat.LOINC, cat.LAB_CODES["sodium"].code)
        potassium_code = cat.code_index(cat.LOINC, cat.LAB_CODES["potassium"].code)
        mg_codes = np.where(mg_dl, cat.code_index(cat.LOINC, cat.LAB_CODES["magnesium_mg_dl"].code),
                            cat.code_index(cat.LOINC, cat.LAB_CODES["magnesium_mmol_l"].code))
        for mask, kind, values, code, unit_mg in ((panel, SODIUM, sodium, sodium_code, False),
                                                  (panel, POTASSIUM, potassium, potassium_code, False),
                                                  (mg_test, MAGNESIUM, magnesium, mg_codes, mg_dl)):
            i = np.flatnonzero(mask)
            self.measurements.add(person=person[i], day=day[i], code=np.broadcast_to(code, size)[i], visit=req[i],
                                  kind=kind, value=values[i], unit_mg_dl=np.broadcast_to(unit_mg, size)[i])

        # A share of low results is also coded as a diagnosis at the same visit.
        for mask, name in ((low_na, "hyponatremia"), (low_k, "hypokalemia"), (low_mg, "hypomagnesemia")):
            i = np.flatnonzero(mask & (rng.random(size) < P.LAB_DIAGNOSIS_CODED_SHARE))
            self.add_condition_rows(name, person[i], day[i], req[i])
        return low_mg

    def simulate_abi(self) -> None:
        """ABI per leg on 1-3 outpatient visits; the lowest reading sets the person's category."""
        rng, n = self.rng, self.n
        pad = self.latent["peripheral_arterial_disease"]
        claud = self.latent["intermittent_claudication"]
        diabetes = self.latent["diabetes_mellitus"].record_day >= 0
        has_claud = claud.record_day >= 0
        has_pad = (pad.record_day >= 0) & ~has_claud
        share = P.ABI_MEASURED_SHARE
        p = np.where(has_claud, share["intermittent_claudication"],
                     np.where(has_pad, share["peripheral_arterial_disease"],
                              np.where(diabetes, share["diabetes_mellitus"],
                                       np.where(self.age_start >= 50, share["age_50_plus"], 0.0))))
        person = np.flatnonzero(rng.random(n) < p)
        after = np.where(has_claud[person], claud.record_day[person],
                         np.where(has_pad[person], pad.record_day[person], self.first_start[person]))
        n_dates = 1 + weighted_choice(rng.random(person.size), [0.6, 0.3, 0.1])
        first_pos = self.pick_background_visit(person, after, outpatient_only=True)
        ok = first_pos >= 0
        person, first_pos, n_dates = person[ok], first_pos[ok], n_dates[ok]
        # Consecutive background visits from the first pick, while they belong to the person.
        owner, k = expand(n_dates)
        pos = first_pos[owner] + k
        valid = pos < self.bg_person.size
        valid[valid] = self.bg_person[pos[valid]] == person[owner[valid]]
        valid[valid] = self.bg_type[pos[valid]] == OUTPATIENT
        owner, pos = owner[valid], pos[valid]
        # One measurement date per (person, day).
        _, keep = np.unique(person[owner] * DAY_KEY + self.bg_day[pos], return_index=True)
        owner, pos = owner[keep], pos[keep]
        m = person.size
        cells_per_person = 2 * np.bincount(owner, minlength=m)  # two legs per measurement date

        # Category of the lowest reading.
        cat_names = ("low", "borderline", "normal", "noncompressible")
        u = rng.random(m)
        pick = np.where(has_claud[person], weighted_choice(u, [w for _, w in P.ABI_LOWEST_CATEGORY_CLAUDICATION]),
                        np.where(has_pad[person], weighted_choice(u, [w for _, w in P.ABI_LOWEST_CATEGORY_PAD]),
                                 weighted_choice(u, [w for _, w in P.ABI_LOWEST_CATEGORY_OTHER])))
        lo = np.array([P.ABI_RANGES[c][0] for c in cat_names])[pick]
        hi = np.array([P.ABI_RANGES[c][1] for c in cat_names])[pick]
        lowest = np.round(lo + np.floor(rng.random(m) * (np.round((hi - lo) * 100) + 1)) / 100, 2)
        all_noncompressible = pick == 3
        flag_p = np.where(diabetes[person], P.ABI_ONE_LEG_NONCOMPRESSIBLE["diabetes_mellitus"],
                          P.ABI_ONE_LEG_NONCOMPRESSIBLE["other"])
        one_leg_flag = ~all_noncompressible & (rng.random(m) < flag_p) & (cells_per_person >= 2)

        # Cells: per date, left then right.
        cell_owner, cell_k = expand(cells_per_person)
        lowest_cell = np.floor(rng.random(m) * np.maximum(cells_per_person, 1)).astype(np.int64)
        flag_cell = (lowest_cell + 1 + np.floor(rng.random(m) * np.maximum(cells_per_person - 1, 1)).astype(
            np.int64)) % np.maximum(cells_per_person, 1)
        others = lowest[cell_owner] + np.round(0.01 + np.floor(rng.random(cell_owner.size) * 30) / 100, 2)
        others = np.where(all_noncompressible[cell_owner], others, np.minimum(others, 1.40))
        value = np.where(cell_k == lowest_cell[cell_owner], lowest[cell_owner], others)
        flag_value = np.round(1.41 + np.floor(rng.random(cell_owner.size) * 40) / 100, 2)
        value = np.where(one_leg_flag[cell_owner] & (cell_k == flag_cell[cell_owner]), flag_value, value)
        value = np.round(value, 2)
        # Map cells to their dates: the dates of each person are the (owner, pos) rows in order.
        date_start = np.cumsum(np.bincount(owner, minlength=m)) - np.bincount(owner, minlength=m)
        date_row = date_start[cell_owner] + cell_k // 2
        order_dates = np.argsort(owner, kind="stable")
        date_pos = pos[order_dates][date_row]
        who = person[cell_owner]
        abi_code = cat.code_index(cat.SNOMED, cat.LAB_CODES["abi"].code)
        self.measurements.add(person=who, day=self.bg_day[date_pos], code=abi_code, visit=self.bg_request[date_pos],
                              kind=ABI, value=value, unit_mg_dl=False, laterality=(cell_k % 2).astype(np.int8))
        # The noninvasive ABI study as a procedure on most measurement dates.
        d = np.flatnonzero(rng.random(pos.size) < P.ABI_STUDY_PROCEDURE_SHARE)
        self.procedures.add(person=person[owner[d]], day=self.bg_day[pos[d]],
                            code=cat.code_index(cat.CPT4, cat.ABI_STUDY.code), visit=self.bg_request[pos[d]])

    # ------------------------------------------------------------------------------------------------ 6. cramps
    def exposure_starts(self) -> dict[str, np.ndarray]:
        """Start day of each exposure of the hazard model (-1 = never exposed)."""
        starts = {}
        for exposure in self.cramp_effects:
            if exposure in self.drug_first_fill:
                starts[exposure] = self.drug_first_fill[exposure]
            elif exposure == "hypomagnesemia_lab":
                starts[exposure] = self.first_low_magnesium
            else:  # a condition: its latent onset (may precede observation)
                starts[exposure] = self.exposure_starts_of_conditions(exposure)
        return starts

    def _daily_cramp_hazard(self, person: np.ndarray, month: np.ndarray, log_rate: np.ndarray,
                            acting: dict[str, tuple[float, np.ndarray]], ms: np.ndarray,
                            me: np.ndarray) -> np.ndarray:
        """Cramp hazard of each (person, month) pair on each day of the month: len(person) x 31, zero on days
        outside the month or outside observation; an exposure acts from its start day on."""
        day = ms[month][:, None] + np.arange(31)[None, :]
        rate = np.exp(log_rate[person, month])[:, None] * np.ones((1, 31))
        for log_hr, start in acting.values():
            s = start[person][:, None]
            on = (s >= 0) & (s <= day) & (s > ms[month][:, None])  # started inside this month, by this day
            rate *= np.where(on, np.exp(log_hr), 1.0)
        observed = (day <= me[month][:, None]) & self.in_observation(
            np.broadcast_to(person[:, None], day.shape), day)
        return rate * observed

    def simulate_cramps(self) -> None:
        rng, n = self.rng, self.n
        if self.dynamics is None:
            person, onset = self._cramp_onsets_from_first_exposure()
        else:
            person, onset = self._cramp_onsets_time_varying()
        self.cramp_onset = np.full(n, -1, dtype=np.int64)
        self.cramp_onset[person] = onset

        # Recorded at an outpatient visit on the onset day, with some repeat codes later.
        self.ensure_code_u("leg_cramps")
        visit = self.request_visits(person, onset, OUTPATIENT)
        self.add_condition_rows("leg_cramps", person, onset, visit)
        owner, _ = expand(rng.poisson(P.CRAMP_REPEAT_CODES_MEAN, person.size))
        who = person[owner]
        pos = self.pick_background_visit(who, onset[owner] + 1)
        ok = pos >= 0
        self.add_condition_rows("leg_cramps", who[ok], self.bg_day[pos[ok]], self.bg_request[pos[ok]])

        # About 10% start quinine within 60 days of onset.
        q = np.flatnonzero(rng.random(person.size) < P.QUININE_AFTER_CRAMP_SHARE)
        q_person = person[q]
        first = onset[q] + rng.integers(0, P.QUININE_WITHIN_DAYS + 1, q.size)
        ok = self.in_observation(q_person, first)
        self._add_quinine_course(q_person[ok], first[ok])

        # Quinine started for cramps that were never coded (older persons).
        no_cramp = np.flatnonzero((self.cramp_onset < 0) & (self.age_start >= 50))
        uq = no_cramp[rng.random(no_cramp.size) < P.QUININE_WITHOUT_CRAMP_CODE_SHARE_50_PLUS]
        self._add_quinine_course(uq, self.uniform_observed_day(uq, rng.random(uq.size)))
        self.quinine_without_code = np.zeros(n, dtype=bool)
        self.quinine_without_code[uq] = True
        if self.dynamics is not None:
            self._add_cramp_workup(person, onset)

    def _month_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """First and last day of each calendar month of the data window."""
        month_start = np.arange(np.datetime64(P.DATA_START, "M"), np.datetime64(P.DATA_END, "M") + 2).astype(
            "datetime64[D]").astype(np.int64)
        return month_start[:-1], month_start[1:] - 1

    def _cramp_log_rate(self, ms: np.ndarray, me: np.ndarray) -> np.ndarray:
        """Log cramp hazard per day of each person and month without exposures (age at the month's midpoint)."""
        mid = (ms + me) // 2
        return (np.log(P.CRAMP_LAMBDA0_PER_YEAR / DAYS_PER_YEAR)
                + P.CRAMP_AGE_LOG_HR_PER_YEAR * ((mid[None, :] - self.birth_day[:, None]) / DAYS_PER_YEAR
                                                 - P.CRAMP_REFERENCE_AGE)
                + P.CRAMP_FEMALE_LOG_HR * (self.sex == FEMALE)[:, None])

    def _cramp_onsets_from_first_exposure(self) -> tuple[np.ndarray, np.ndarray]:
        """First cramp onset when each exposure acts from its start day on, forever: (person, onset day)."""
        rng, n = self.rng, self.n
        ms, me = self._month_grid()  # month m covers days ms[m]..me[m]

        def overlap(s: np.ndarray, e: np.ndarray) -> np.ndarray:  # days of [s, e] inside each month, n x months
            lo = np.maximum(s[:, None], ms[None, :])
            hi = np.minimum(e[:, None], me[None, :])
            return np.maximum(hi - lo + 1, 0)

        has2 = self.span2_start >= 0
        days1 = overlap(self.span1_start, self.span1_end)
        days2 = np.where(has2[:, None], overlap(self.span2_start, self.span2_end), 0)
        observed = days1 + days2

        # Age and sex are constant within a month (age at its midpoint); exposures are exact to the day.
        log_rate = self._cramp_log_rate(ms, me)
        self.cramp_exposure_start = self.exposure_starts()
        acting = {exposure: (np.log(hr), self.cramp_exposure_start[exposure])
                  for exposure, (hr, _) in self.cramp_effects.items() if hr != 1.0}
        for log_hr, start in acting.values():  # months that begin on or after the start are exposed throughout
            log_rate += log_hr * ((start[:, None] >= 0) & (start[:, None] <= ms[None, :]))
        hazard = np.exp(log_rate) * observed  # expected onsets per person and month
        # A month in which some exposure starts after its first day is summed day by day.
        split = [(np.flatnonzero((start >= 0) & (start > ms[0]) & (start <= me[-1])), start)
                 for _, start in acting.values()]
        split_person = np.concatenate([p for p, _ in split]) if split else np.empty(0, dtype=np.int64)
        split_month = (np.concatenate([np.searchsorted(ms, s[p], side="right") - 1 for p, s in split])
                       if split else np.empty(0, dtype=np.int64))
        pairs = np.unique(np.stack([split_person, split_month]), axis=1)
        pair_person, pair_month = pairs[0], pairs[1]
        pair_daily = self._daily_cramp_hazard(pair_person, pair_month, log_rate, acting, ms, me)
        hazard[pair_person, pair_month] = pair_daily.sum(axis=1)

        cumulative = np.cumsum(hazard, axis=1)
        threshold = rng.exponential(1.0, n)
        month = np.argmax(cumulative >= threshold[:, None], axis=1)
        has = cumulative[:, -1] >= threshold
        person = np.flatnonzero(has)
        m = month[person]
        # The onset day within its month is drawn in proportion to the day's hazard (zero outside observation).
        daily = self._daily_cramp_hazard(person, m, log_rate, acting, ms, me)
        below = np.cumsum(daily, axis=1)
        u = rng.random(person.size) * below[:, -1]
        offset = np.minimum((below <= u[:, None]).sum(axis=1), below.shape[1] - 1)
        return person, ms[m] + offset

    def exposure_intervals(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Profiles with exposure dynamics: the days on which each exposure's hazard ratio acts, as merged
        (person, start, end) intervals: drugs while on drug, transient states for transient_state_days after each
        finding, chronic conditions from their latent onset to the end of the data."""
        out = {}
        for exposure in self.cramp_effects:
            if exposure in self.drug_on_intervals:
                out[exposure] = self.drug_on_intervals[exposure]
            elif exposure in P.TRANSIENT_EXPOSURES:
                if exposure != "hypomagnesemia_lab":
                    raise ValueError(f"no findings are simulated for the transient exposure {exposure!r}")
                person, day = self.low_magnesium_results
                out[exposure] = merge_intervals(person, day, day + self.dynamics.transient_state_days - 1)
            else:
                start = self.exposure_starts_of_conditions(exposure)
                person = np.flatnonzero(start >= 0)
                out[exposure] = merge_intervals(person, start[person], np.full(person.size, DATA_END_DAY))
        return out

    def exposure_starts_of_conditions(self, exposure: str) -> np.ndarray:
        lat = self.latent[exposure]
        return np.where(lat.has & (lat.onset_day <= self.last_end), lat.onset_day, -1)

    def _cramp_onsets_time_varying(self) -> tuple[np.ndarray, np.ndarray]:
        """First cramp onset when exposures act only inside their intervals and a gamma frailty multiplies each
        person's hazard: (person, onset day). Exact on the day grid: each person's time is cut into segments of
        constant hazard (calendar months for age, observation spans, every exposure interval's ends)."""
        rng, n, dyn = self.dynamics_rng, self.n, self.dynamics
        ms, me = self._month_grid()
        log_rate = self._cramp_log_rate(ms, me)
        self.cramp_exposure_start = self.exposure_starts()
        intervals = self.exposure_intervals()
        self.exposure_on_intervals = intervals
        acting = {e: np.log(hr) for e, (hr, _) in self.cramp_effects.items() if hr != 1.0}
        self.cramp_frailty = rng.gamma(1.0 / dyn.frailty_variance, dyn.frailty_variance, n)

        end_excl = ms[-1] + 31  # the day after the last month (DATA_END + 1)
        cut_person = [np.repeat(np.arange(n), ms.size), np.arange(n)]
        cut_day = [np.tile(ms, n), np.full(n, end_excl)]
        spans = [(np.arange(n), self.span1_start, self.span1_end)]
        g = np.flatnonzero(self.span2_start >= 0)
        spans.append((g, self.span2_start[g], self.span2_end[g]))
        for exposure in acting:
            spans.append(intervals[exposure])
        for person, start, end in spans:
            cut_person += [person, person]
            cut_day += [start, end + 1]
        key = sorted_unique(np.concatenate(cut_person) * DAY_KEY
                            + np.clip(np.concatenate(cut_day), ms[0], end_excl))
        seg_person, seg_start = key // DAY_KEY, key % DAY_KEY
        last = np.r_[seg_person[1:] != seg_person[:-1], True]  # each person's last cut is end_excl: length 0
        seg_length = np.where(last, 0, np.r_[seg_start[1:], 0] - seg_start)
        month = np.minimum(np.searchsorted(ms, seg_start, side="right") - 1, ms.size - 1)
        base = log_rate[seg_person, month]
        on = {e: in_intervals(intervals[e], seg_person, seg_start) for e in acting}
        seg_log_rate = base + sum((acting[e] * on[e] for e in acting), np.zeros(seg_person.size))
        observed = self.in_observation(seg_person, seg_start) & (seg_length > 0)
        rate = np.exp(seg_log_rate) * observed * self.cramp_frailty[seg_person]
        hazard = rate * seg_length
        cumulative = np.cumsum(hazard)
        first_seg = np.flatnonzero(np.r_[True, seg_person[1:] != seg_person[:-1]])
        cumulative -= (cumulative[first_seg] - hazard[first_seg])[seg_person]
        threshold = rng.exponential(1.0, n)
        hit = np.flatnonzero(cumulative >= threshold[seg_person])
        seg = first_per_group(seg_person[hit], n, hit)
        person = np.flatnonzero(seg >= 0)
        i = seg[person]
        offset = np.floor((threshold[person] - (cumulative[i] - hazard[i])) / rate[i]).astype(np.int64)
        onset = seg_start[i] + np.minimum(offset, seg_length[i] - 1)

        # Intention-to-treat parts per exposure: expected onsets among the exposed, from their first exposure day
        # to the end of observation (ignoring earlier onsets and the frailty), with the effect and without it.
        for exposure, log_hr in acting.items():
            first_day = first_per_group(intervals[exposure][0], n, intervals[exposure][1])
            after = (first_day[seg_person] >= 0) & (seg_start >= first_day[seg_person]) & observed
            without = np.exp(seg_log_rate - log_hr * on[exposure]) * seg_length * after
            self.itt_expected_onsets[exposure] = (float((without * np.exp(log_hr * on[exposure])).sum()),
                                                  float(without.sum()))
        return person, onset

    def _add_cramp_workup(self, person: np.ndarray, onset: np.ndarray) -> None:
        """Detection bias: a share of persons with a cramp get an electrolyte panel and magnesium soon after."""
        dyn = self.dynamics
        w = np.flatnonzero(self.dynamics_rng.random(person.size) < dyn.workup_share)
        who = person[w]
        day = onset[w] + self.dynamics_rng.integers(0, dyn.workup_within_days + 1, w.size)
        ok = self.in_observation(who, day)
        who, day = who[ok], day[ok]
        visit = self.request_visits(who, day, OUTPATIENT)
        tested = np.ones(who.size, dtype=bool)
        low = self._add_lab_results(who, day, visit, tested, tested)
        self.workup_low_magnesium_results = (who[low], day[low])

    def _add_quinine_course(self, person: np.ndarray, first: np.ndarray) -> None:
        owner, k = expand(self.rng.integers(P.QUININE_FILLS[0], P.QUININE_FILLS[1] + 1, person.size))
        who = person[owner]
        day = first[owner] + 30 * k
        ok = self.in_observation(who, day)
        self._add_drug_rows("quinine", who[ok], day[ok], np.full(int(ok.sum()), 30))

    # ------------------------------------------------------------------------------------------------ 7. extras
    def simulate_malaria_and_rule_outs(self) -> None:
        rng, n = self.rng, self.n
        # Malaria treated with quinine: a distractor for quinine_start (never a cramp patient).
        eligible = np.flatnonzero((self.cramp_onset < 0) & ~self.quinine_without_code)
        person = eligible[rng.random(eligible.size) < P.MALARIA_SHARE]
        day = self.uniform_observed_day(person, rng.random(person.size))
        vtype, los = self.visit_types_for(person.size, 0.2, 0.4)
        visit = self.request_visits(person, day, vtype, los)
        self.add_condition_rows("malaria", person, day, visit)
        quinine = self._substance_codes("quinine", person)
        self.drugs.add(person=person, day=day, code=quinine, visit=visit, days_supply=7, quantity=21.0)
        self.malaria = np.zeros(n, dtype=bool)
        self.malaria[person] = True

        # Rule-outs: one outpatient code only, for persons without the condition.
        for name, share in P.RULE_OUT_SHARE.items():
            lat = self.latent[name]
            eligible = np.flatnonzero(~lat.has & (lat.record_day < 0))
            person = eligible[rng.random(eligible.size) < share]
            day = self.uniform_observed_day(person, rng.random(person.size))
            visit = self.request_visits(person, day, OUTPATIENT)
            self.add_condition_rows(name, person, day, visit)
            self.rule_outs[name] = int(person.size)

    # ------------------------------------------------------------------------------------------------ 8. assemble
    def assemble(self) -> ChunkEvents:
        requests = self.visit_requests.finish()
        key = (requests["person"] << 17) | (requests["day"] << 2) | requests["type"].astype(np.int64)
        uniq, first, request_to_visit = np.unique(key, return_index=True, return_inverse=True)
        v_person = requests["person"][first]
        v_day = requests["day"][first]
        v_type = requests["type"][first]
        # Inpatient stays end after the length of stay, but never after the end of the span they are in.
        span_end = np.where((self.span2_start[v_person] >= 0) & (v_day >= self.span2_start[v_person]),
                            self.span2_end[v_person], self.span1_end[v_person])
        v_end = np.where(v_type == INPATIENT, np.minimum(v_day + requests["los"][first], span_end), v_day)
        visits = {"person": v_person, "day": v_day, "type": v_type, "end_day": v_end}

        def link(rows: dict[str, np.ndarray], unlinked_share: float, keep_linked: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
            """Replace visit requests by visit indices; leave a share of rows without a visit id (as extracts do),
            except rows whose codes need the visit type (the two-code rule phenotypes)."""
            visit = np.where(rows["visit"] >= 0, request_to_visit[np.maximum(rows["visit"], 0)], -1)
            unlink = self.rng.random(visit.size) < unlinked_share
            if keep_linked is not None:
                unlink &= ~keep_linked[rows["code"]]
            rows["visit"] = np.where(unlink, -1, visit)
            order = np.lexsort((rows["code"], rows["day"], rows["person"]))
            rows = {k: v[order] for k, v in rows.items()}
            # One row per (person, day, code): two repeat codes may land on the same day; a second row would be a
            # duplicate event, which only the planted defects may contain.
            same = ((rows["person"][1:] == rows["person"][:-1]) & (rows["day"][1:] == rows["day"][:-1])
                    & (rows["code"][1:] == rows["code"][:-1]))
            if "laterality" in rows:
                same &= rows["laterality"][1:] == rows["laterality"][:-1]
            keep = np.r_[True, ~same][:rows["person"].size]  # an empty chunk keeps nothing
            return {k: v[keep] for k, v in rows.items()}

        rule_codes = np.array([any(p in cat.TWO_CODE_RULE_PHENOTYPES for p in c.phenotypes) for c in cat.ALL_CODES])

        persons = {
            "person_id": self.person_id, "site": self.site, "sex": self.sex, "birth_day": self.birth_day,
            "year_of_birth": self.year_of_birth, "death_day": self.death_day, "first_start": self.first_start,
            "last_end": self.last_end, "n_periods": self.n_periods, "overlapping": self.overlapping,
            "race": self.race, "ethnicity": self.ethnicity,
        }
        latent = {f"exposure_{k}_start_date": v for k, v in self.cramp_exposure_start.items()}
        latent["cramp_onset_date"] = self.cramp_onset
        return ChunkEvents(
            n=self.n, persons=persons, observation_periods=self.obs_rows, visits=visits,
            conditions=link(self.conditions.finish(), 0.05, rule_codes), drugs=link(self.drugs.finish(), 0.10),
            measurements=link(self.measurements.finish(), 0.03), procedures=link(self.procedures.finish(), 0.0),
            latent=latent, rule_outs=dict(self.rule_outs), exposure_intervals=self.exposure_on_intervals,
            itt_expected_onsets=dict(self.itt_expected_onsets), cramp_frailty=self.cramp_frailty,
        )


def simulate_chunk(rng: np.random.Generator, n: int, first_person_id: int,
                   cramp_effects: dict[str, tuple[float, str]] = P.CRAMP_EFFECTS,
                   dynamics: P.ExposureDynamics | None = None,
                   negative_controls: tuple[np.random.Generator, dict[str, float], tuple[str, ...]] | None = None,
                   control_exposure_rng: np.random.Generator | None = None) -> ChunkEvents:
    """Simulate one chunk. `cramp_effects` (one of parameters.CRAMP_EFFECTS_PROFILES) is used only from the cramp
    step on, so for one seed the profiles without `dynamics` give the same persons, conditions, drugs and labs;
    `dynamics` (parameters.EXPOSURE_DYNAMICS) keeps persons, conditions and drug starts and changes the rest.
    `negative_controls` = (their own Generator, planted log-HR bias per control, the drugs whose first fill starts
    the bias): adds the controls' records after everything else is simulated, from that Generator only.
    `control_exposure_rng`: adds the negative-control exposures' fills likewise, from that Generator only."""
    sim = ChunkSimulation(rng, n, first_person_id, cramp_effects, dynamics)
    sim.simulate(through=SIMULATION_STEPS[-1])
    events = sim.assemble()
    if negative_controls is not None:
        control_rng, log_hr_bias, bias_exposures = negative_controls
        events.negative_controls = simulate_negative_controls(sim, events.visits, control_rng, log_hr_bias,
                                                              bias_exposures)
    if control_exposure_rng is not None:
        events.negative_control_exposures = simulate_negative_control_exposures(sim, events.visits,
                                                                                control_exposure_rng)
    return events
