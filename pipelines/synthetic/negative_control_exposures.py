"""Negative-control exposures: fills of drugs that do not act on cramps, from their own random stream.

Each control drug (parameters.NEGATIVE_CONTROL_EXPOSURES) has users drawn by age and sex only; a user is on the drug
from the first observed day (prevalent) or from a uniformly drawn observed day of the first observation period, and
refills every FILL_DAYS days from the person's refill anchor (no jitter) until that period ends. The cramp hazard
(model.py) never sees these fills, so every control's true hazard ratio on cramps is 1; confounding by age and sex
is the only association a study has to adjust away.

Every draw comes from a numpy Generator of its own (``negative_control_exposure_rng``), the simulation only reads the
chunk's persons, and the fills are rendered and appended to drug_exposure after every other row (generator.py), so
the rest of the extract is byte-identical with and without them. A fill is linked to the person's visit that day
where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import catalog as cat
from . import parameters as P
from .arrays import DAY_KEY, expand
from .negative_controls import NEGATIVE_CONTROL_STREAM

# The spawn-key word of the exposure controls' streams (the outcome controls use NEGATIVE_CONTROL_STREAM).
NEGATIVE_CONTROL_EXPOSURE_STREAM = NEGATIVE_CONTROL_STREAM + 1
SITE_WRITES_RXNORM = np.array(cat.SITE_WRITES_RXNORM)
# Control drugs are dispensed for 90 days at a time (long-term repeat prescriptions; fewer rows than a 30-day cycle).
FILL_DAYS = 90


def negative_control_exposure_rng(seed: int, chunk_index: int) -> np.random.Generator:
    """The chunk's stream for the control drugs' users and start days."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk_index,
                                                                          NEGATIVE_CONTROL_EXPOSURE_STREAM)))


@dataclass
class NegativeControlExposureRows:
    """The fills of one chunk (sorted by person, day, code) and each control drug's first fill per local person."""

    person: np.ndarray
    day: np.ndarray
    code: np.ndarray  # catalog code index (RxNorm CUI at RxNorm sites, ATC code elsewhere)
    days_supply: np.ndarray
    quantity: np.ndarray
    visit: np.ndarray  # index into the chunk's assembled visits, -1 = none that day
    first_fill: dict[str, np.ndarray]  # drug -> day per local person, -1 = none


def _user_probability(sim, spec: P.NegativeControlExposure) -> np.ndarray:
    age_mid = (sim.age_start + sim.age_end) / 2
    logit = np.log(spec.p60 / (1 - spec.p60)) + spec.logit_slope_per_10_years * (age_mid - 60.0) / 10.0
    p = 1 / (1 + np.exp(-logit))
    if spec.sex is not None:
        p = np.where(sim.sex == (1 if spec.sex == "male" else 0), p, 0.0)  # model.MALE, model.FEMALE
    return p


def simulate_negative_control_exposures(sim, visits: dict[str, np.ndarray], rng: np.random.Generator
                                        ) -> NegativeControlExposureRows:
    """Fills of every control drug for every person of a simulated chunk (``sim``: a ChunkSimulation run through
    all its steps; ``visits``: its assembled visits). Draws, per drug: one uniform for use, one for prevalence, one
    for the start day, for every person (so a drug's draws do not depend on the others')."""
    n = sim.n
    start1, end1 = sim.span1_start, sim.span1_end
    parts = {"person": [], "day": [], "code": [], "days_supply": [], "quantity": []}
    first_fill: dict[str, np.ndarray] = {}
    for drug in cat.NEGATIVE_CONTROL_DRUG_IDS:
        spec = P.NEGATIVE_CONTROL_EXPOSURES[drug]
        u_use, u_prevalent, u_day = rng.random(n), rng.random(n), rng.random(n)
        length = end1 - start1 + 1
        start = np.where(u_prevalent < spec.prevalent_share, start1,
                         start1 + np.floor(u_day * length).astype(np.int64))
        person = np.flatnonzero(u_use < _user_probability(sim, spec))
        first = start[person]
        stop = end1[person]
        interval = np.full(person.size, FILL_DAYS, dtype=np.int64)
        anchor = sim.refill_anchor[person]
        j0 = np.floor_divide(first - anchor, interval) + 1  # first grid point strictly after the start
        j_last = np.floor_divide(stop - anchor, interval)
        owner, pos = expand(np.maximum(j_last - j0 + 1, 0))
        grid_day = anchor[owner] + (j0[owner] + pos) * interval[owner]
        fill_person = np.concatenate([person, person[owner]])
        fill_day = np.concatenate([first, grid_day])
        first_supply = np.clip(anchor + j0 * interval - first, 7, interval)  # until the next refill day
        supply = np.concatenate([first_supply, interval[owner]])
        keep = fill_day <= np.concatenate([stop, stop[owner]])
        fill_person, fill_day, supply = fill_person[keep], fill_day[keep], supply[keep]
        substance = cat.NEGATIVE_CONTROL_DRUGS[drug]
        codes = np.where(SITE_WRITES_RXNORM[sim.site[fill_person]], cat.code_index(cat.RXNORM, substance.rxcui),
                         cat.code_index(cat.ATC, substance.atc))
        parts["person"].append(fill_person)
        parts["day"].append(fill_day)
        parts["code"].append(codes.astype(np.int32))
        parts["days_supply"].append(supply.astype(np.int64))
        parts["quantity"].append(np.round(supply * spec.quantity_per_day, 1))
        day_of = np.full(n, -1, dtype=np.int64)
        day_of[person] = first
        first_fill[drug] = day_of

    person, day, code, supply, quantity = (np.concatenate(parts[k]) for k in
                                           ("person", "day", "code", "days_supply", "quantity"))
    order = np.lexsort((code, day, person))
    person, day, code, supply, quantity = person[order], day[order], code[order], supply[order], quantity[order]
    visit_key = visits["person"] * DAY_KEY + visits["day"]
    key = person * DAY_KEY + day
    if visit_key.size:
        pos = np.minimum(np.searchsorted(visit_key, key), visit_key.size - 1)
        visit = np.where(visit_key[pos] == key, pos, -1)
    else:
        visit = np.full(key.size, -1, dtype=np.int64)
    return NegativeControlExposureRows(person, day, code, supply, quantity, visit.astype(np.int64), first_fill)
