"""Negative-control outcomes: each person's first record of each control, from its own random stream.

A control's onset follows a constant hazard per person (parameters.NEGATIVE_CONTROL_OUTCOMES: a rate at age 60, a
slope per 10 years of age at the middle of observation, women only where said) over the person's observed days, so
no exposure changes it: every exposure's true hazard ratio on a control is 1. A planted bias
(parameters.NegativeControlBias) multiplies the hazard by exp(b_c) from the person's first fill of one of its drugs
on; b_c is drawn once per extract and control.

Every draw comes from a numpy Generator of its own (``negative_control_rng``), and the records are rendered and
written after every other row (generator.py), so the rest of the extract is byte-identical with and without them.
Records are written on the onset day, linked to the person's visit that day where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import catalog as cat
from . import parameters as P
from .arrays import DAY_KEY, weighted_choice

DAYS_PER_YEAR = 365.25
# The spawn-key word that names the negative-control streams. Chunk streams are SeedSequence(seed, (chunk,)) and
# their spawned children (chunk, 0), (chunk, 1), ...; no extract has 2**40 chunks or spawns 2**40 children.
NEGATIVE_CONTROL_STREAM = 1 << 40


def negative_control_rng(seed: int, chunk_index: int) -> np.random.Generator:
    """The chunk's stream for the control onsets and their codes."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk_index, NEGATIVE_CONTROL_STREAM)))


def planted_log_hr_biases(seed: int, bias: P.NegativeControlBias) -> dict[str, float]:
    """b_c = log_hr + sd * z_c per control, one standard normal z_c per control and extract (not per chunk)."""
    z = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(NEGATIVE_CONTROL_STREAM,))).standard_normal(
        len(cat.NEGATIVE_CONTROL_IDS))
    return {control: float(bias.log_hr + bias.sd * z_c) for control, z_c in zip(cat.NEGATIVE_CONTROL_IDS, z)}


@dataclass
class NegativeControlRows:
    """The records of one chunk (sorted by person, day, code) and each control's first day per local person."""

    person: np.ndarray
    day: np.ndarray
    code: np.ndarray  # catalog code index
    visit: np.ndarray  # index into the chunk's assembled visits, -1 = none that day
    first_day: dict[str, np.ndarray]  # control -> day per local person, -1 = none


def _segments(sim, exposed_from: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each person's observed days as up to four segments in time order (span 1 before / from the exposure start,
    span 2 likewise): (start, end inclusive, exposed), n x 4; empty segments have end < start."""
    has2 = sim.span2_start >= 0
    starts, ends, exposed = [], [], []
    for span_start, span_end, present in ((sim.span1_start, sim.span1_end, np.ones(sim.n, dtype=bool)),
                                          (sim.span2_start, sim.span2_end, has2)):
        cut = np.where(exposed_from >= 0, exposed_from, span_end + 1)  # first exposed day (after the span: none)
        starts += [span_start, np.maximum(span_start, cut)]
        ends += [np.where(present, np.minimum(span_end, cut - 1), span_start - 1),
                 np.where(present, span_end, span_start - 1)]
        exposed += [np.zeros(sim.n, dtype=bool), np.ones(sim.n, dtype=bool)]
    return np.stack(starts, axis=1), np.stack(ends, axis=1), np.stack(exposed, axis=1)


def simulate_negative_controls(sim, visits: dict[str, np.ndarray], rng: np.random.Generator,
                               log_hr_bias: dict[str, float], bias_exposures: tuple[str, ...]
                               ) -> NegativeControlRows:
    """First record of each control for every person of a simulated chunk (``sim``: a ChunkSimulation run through
    all its steps; ``visits``: its assembled visits)."""
    n = sim.n
    exposed_from = np.full(n, -1, dtype=np.int64)
    for drug in bias_exposures:
        first = sim.drug_first_fill[drug]
        exposed_from = np.where((first >= 0) & ((exposed_from < 0) | (first < exposed_from)), first, exposed_from)
    seg_start, seg_end, seg_exposed = _segments(sim, exposed_from)
    seg_days = np.maximum(seg_end - seg_start + 1, 0)
    age_mid = (sim.age_start + sim.age_end) / 2
    female = sim.sex == 0  # model.FEMALE

    person_parts, day_parts, code_parts = [], [], []
    first_day: dict[str, np.ndarray] = {}
    for control in cat.NEGATIVE_CONTROL_IDS:
        spec = P.NEGATIVE_CONTROL_OUTCOMES[control]
        yearly = spec.rate60_per_year * np.exp(spec.log_rate_slope_per_10_years * (age_mid - 60.0) / 10.0)
        if spec.female_only:
            yearly = np.where(female, yearly, 0.0)
        daily = (yearly / DAYS_PER_YEAR)[:, None] * np.where(seg_exposed, np.exp(log_hr_bias[control]), 1.0)
        hazard = daily * seg_days
        cumulative = np.cumsum(hazard, axis=1)
        threshold = rng.exponential(1.0, n)
        u_code = rng.random(n)
        person = np.flatnonzero(cumulative[:, -1] >= threshold)
        seg = np.argmax(cumulative[person] >= threshold[person, None], axis=1)
        before = cumulative[person, seg] - hazard[person, seg]
        offset = np.floor((threshold[person] - before) / daily[person, seg]).astype(np.int64)
        day = seg_start[person, seg] + np.minimum(offset, seg_days[person, seg] - 1)
        first = np.full(n, -1, dtype=np.int64)
        first[person] = day
        first_day[control] = first
        choices = cat.NEGATIVE_CONTROL_CODES[control].icd
        codes = np.array([cat.code_index(c.vocabulary, c.code) for c, _ in choices], dtype=np.int32)
        person_parts.append(person)
        day_parts.append(day)
        code_parts.append(codes[weighted_choice(u_code[person], [w for _, w in choices])])

    person = np.concatenate(person_parts)
    day = np.concatenate(day_parts)
    code = np.concatenate(code_parts)
    order = np.lexsort((code, day, person))
    person, day, code = person[order], day[order], code[order]
    # The person's visit that day (visits are sorted by person, day, type): the outpatient one when there are several.
    visit_key = visits["person"] * DAY_KEY + visits["day"]
    key = person * DAY_KEY + day
    pos = np.minimum(np.searchsorted(visit_key, key), max(visit_key.size - 1, 0))
    visit = np.where((visit_key.size > 0) & (visit_key[pos] == key), pos, -1) if visit_key.size else np.full(
        key.size, -1, dtype=np.int64)
    return NegativeControlRows(person, day, code, visit.astype(np.int64), first_day)
