"""generate_extract: write a synthetic extract in the canonical layout, chunk by chunk, with its ground truth.

Each chunk of persons is simulated, rendered, given its defects and serialised by ``build_chunk`` from its own
numpy Generator, seeded by SeedSequence(seed, spawn_key=(chunk index,)), so a chunk's bytes depend only on
(seed, patients, chunk_size, format, defect_rate, chunk index). Chunks may therefore be built in parallel worker
processes; the main process appends them to the files in chunk order. ``_manifest.json`` is written last.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipelines import extract_spec as spec

from . import catalog as cat
from . import parameters as P
from .defects import IMPLAUSIBLE_BY_TABLE, DefectContext, PlantedTable, plant_defects, rejectable_reasons
from .model import simulate_chunk
from .negative_control_exposures import negative_control_exposure_rng
from .negative_controls import negative_control_rng, planted_log_hr_biases
from .render import ID_STRIDE, NEGATIVE_CONTROL_ID_OFFSET, render_chunk, render_negative_control_records
from .truth import MEMBER, PHENOTYPE_RULES, phenotype_first_days
from .writers import DeferredRows, TableWriter, csv_payload, file_name, sha256_of, write_part

# 1.5.0: RxNorm ingredient CUIs read from phenotypes/reference/drug_ingredients.csv (insulin glargine, bumetanide,
# torasemide, eplerenone, lisinopril, losartan, amlodipine and metoprolol gained one, so RxNorm sites write them as
# RxNorm); the quinine_start truth follows the phenotype's 30-day malaria window (same persons on generated data).
GENERATOR_VERSION = "1.5.0"
FORMATS = ("csv", "csv.gz", "parquet")
TRUTH_DIR = "_truth"
# Profiles with exposure dynamics only: the intervals in which each exposure's hazard ratio acts.
EXPOSURE_INTERVALS_FILE = "exposure_intervals.parquet"
# Extracts with negative-control outcomes: each person's first record of each control.
NEGATIVE_CONTROLS_FILE = "negative_controls.parquet"
NEGATIVE_CONTROLS_PART = "_negative_controls.part"
NEGATIVE_CONTROL_EXPOSURES_PART = "_negative_control_exposures.part"
MANIFEST = spec.MANIFEST_FILE
PARTS_DIR = "_parts"
SEX_CANONICAL = np.array(["F", "M", "U"], dtype=object)


@dataclass(frozen=True)
class Settings:
    patients: int
    seed: int
    fmt: str
    defect_rate: float
    chunk_size: int
    effects_profile: str = P.DEFAULT_EFFECTS_PROFILE  # a key of parameters.CRAMP_EFFECTS_PROFILES
    # write records of the negative-control outcomes (negative_controls.py) and fills of the negative-control
    # exposures (negative_control_exposures.py)
    negative_controls: bool = True
    negative_control_bias: P.NegativeControlBias = P.NO_NEGATIVE_CONTROL_BIAS
    # Worker processes write their chunk's payloads here (one part file per table) instead of sending them back
    # through a pipe; None = return them in memory (single process).
    parts_dir: str | None = None


@dataclass
class ChunkResult:
    index: int
    persons: int
    payloads: dict[str, bytes | pa.Table | Path]
    rows: dict[str, int]
    rejects: dict[str, dict[str, int]]
    implausible: dict[str, dict[str, int]]
    truth_persons: pa.Table
    phenotype_persons: dict[str, int]
    rule_outs: dict[str, int]
    summary: dict[str, int]
    exposure_intervals: pa.Table | None = None
    itt_expected_onsets: dict[str, dict[str, float]] = field(default_factory=dict)
    # Extracts with negative controls: their condition rows (appended after every chunk's rows), their count, the
    # persons with a record per control, and (person_id, control, first_date) for the truth.
    control_payload: bytes | pa.Table | Path | None = None
    control_rows: int = 0
    control_persons: dict[str, int] = field(default_factory=dict)
    control_truth: pa.Table | None = None
    # The same for the negative-control exposures: their drug_exposure rows (appended after every chunk's rows), their
    # count, and the persons with a fill per control drug.
    exposure_control_payload: bytes | pa.Table | Path | None = None
    exposure_control_rows: int = 0
    exposure_control_persons: dict[str, int] = field(default_factory=dict)


def chunk_rng(seed: int, chunk_index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk_index,)))


def _date_array(days: np.ndarray) -> pa.Array:
    days = np.asarray(days, dtype=np.int64)
    return pa.array(days.astype(np.int32), mask=days < 0).cast(pa.date32())


def _truth_table(ev, first_days: dict[str, np.ndarray]) -> pa.Table:
    p = ev.persons
    columns: dict[str, pa.Array] = {
        "person_id": pa.array(p["person_id"]).cast(pa.string()),
        "year_of_birth": pa.array(p["year_of_birth"].astype(np.int32)),
        "sex": pa.array(SEX_CANONICAL[p["sex"]].tolist(), pa.string()),
        "site_id": pa.array(np.array([s.site_id for s in cat.SITES], dtype=object)[p["site"]].tolist(), pa.string()),
        "observation_first_start": _date_array(p["first_start"]),
        "observation_last_end": _date_array(p["last_end"]),
        "observation_periods": pa.array(p["n_periods"].astype(np.int32)),
        "observation_overlapping": pa.array(p["overlapping"]),
        "death_date": _date_array(p["death_day"]),
    }
    for pid in cat.PHENOTYPE_IDS:
        columns[f"{pid}_date"] = _date_array(first_days[pid])
    for name, days in ev.latent.items():  # exposure_<id>_start_date (hazard model) and cramp_onset_date
        columns[name] = _date_array(days)
    if ev.cramp_frailty is not None:
        columns["cramp_frailty"] = pa.array(ev.cramp_frailty)
    return pa.table(columns)


def _intervals_table(ev) -> pa.Table:
    """One row per interval in which an exposure's hazard ratio acts (end_date inclusive)."""
    parts = [(exposure, person, start, end) for exposure, (person, start, end) in ev.exposure_intervals.items()]
    return pa.table({
        "person_id": pa.array(np.concatenate([ev.persons["person_id"][p] for _, p, _, _ in parts])).cast(pa.string()),
        "exposure": pa.array(np.concatenate([np.full(p.size, e, dtype=object) for e, p, _, _ in parts]).tolist(),
                             pa.string()),
        "start_date": _date_array(np.concatenate([s for _, _, s, _ in parts])),
        "end_date": _date_array(np.concatenate([e for _, _, _, e in parts])),
    })


def build_chunk(settings: Settings, chunk_index: int) -> ChunkResult:
    """Simulate, render, plant defects and serialise one chunk (runs in a worker process)."""
    rng = chunk_rng(settings.seed, chunk_index)
    first_person = chunk_index * settings.chunk_size
    n = min(settings.chunk_size, settings.patients - first_person)
    controls = None
    if settings.negative_controls:
        controls = (negative_control_rng(settings.seed, chunk_index),
                    planted_log_hr_biases(settings.seed, settings.negative_control_bias),
                    settings.negative_control_bias.exposures)
    events = simulate_chunk(rng, n, first_person + 1, P.CRAMP_EFFECTS_PROFILES[settings.effects_profile],
                            P.EXPOSURE_DYNAMICS.get(settings.effects_profile), controls,
                            negative_control_exposure_rng(settings.seed, chunk_index)
                            if settings.negative_controls else None)
    first_days = phenotype_first_days(events)
    rendered = render_chunk(events, chunk_index)
    ctx = DefectContext(chunk_index=chunk_index, rng=rng, fmt=settings.fmt, defect_rate=settings.defect_rate,
                        person_id=events.persons["person_id"], site=events.persons["site"],
                        death_day=events.persons["death_day"], last_end=events.persons["last_end"],
                        truth=first_days, phenotype_member=MEMBER,
                        single_period=events.persons["n_periods"] == 1)
    planted = plant_defects(rendered, ctx)
    payloads = {name: (t.table if settings.fmt == "parquet" else csv_payload(t)) for name, t in planted.items()}
    if settings.parts_dir is not None:
        payloads = {name: write_part(Path(settings.parts_dir) / f"{name}.{chunk_index:07d}.part", payload)
                    for name, payload in payloads.items()}
    control_payload = control_truth = None
    control_rows, control_persons = 0, {}
    if events.negative_controls is not None:
        table = render_negative_control_records(events, chunk_index, spec.CONDITION_OCCURRENCE)
        control_rows = table.num_rows
        control_payload = table if settings.fmt == "parquet" else csv_payload(PlantedTable(table))
        if settings.parts_dir is not None:
            control_payload = write_part(Path(settings.parts_dir) / f"negative_controls.{chunk_index:07d}.part",
                                         control_payload)
        control_persons = {c: int((d >= 0).sum()) for c, d in events.negative_controls.first_day.items()}
        control_truth = _control_truth_table(events)
    exposure_payload, exposure_rows, exposure_persons = None, 0, {}
    if events.negative_control_exposures is not None:
        table = render_negative_control_records(events, chunk_index, spec.DRUG_EXPOSURE)
        exposure_rows = table.num_rows
        exposure_payload = table if settings.fmt == "parquet" else csv_payload(PlantedTable(table))
        if settings.parts_dir is not None:
            exposure_payload = write_part(
                Path(settings.parts_dir) / f"negative_control_exposures.{chunk_index:07d}.part", exposure_payload)
        exposure_persons = {d: int((f >= 0).sum()) for d, f in events.negative_control_exposures.first_fill.items()}
    summary = {
        "female": int((events.persons["sex"] == 0).sum()),
        "dead": int((events.persons["death_day"] >= 0).sum()),
        "two_periods": int((events.persons["n_periods"] == 2).sum()),
        "overlapping_periods": int(events.persons["overlapping"].sum()),
    }
    return ChunkResult(
        index=chunk_index, persons=n, payloads=payloads,
        rows={name: t.rows for name, t in planted.items()},
        rejects={name: t.rejects for name, t in planted.items()},
        implausible={name: t.implausible for name, t in planted.items()},
        truth_persons=_truth_table(events, first_days),
        phenotype_persons={pid: int((d >= 0).sum()) for pid, d in first_days.items()},
        rule_outs=events.rule_outs, summary=summary,
        exposure_intervals=_intervals_table(events) if events.exposure_intervals else None,
        itt_expected_onsets={e: {"with_effect": w, "without_effect": wo}
                             for e, (w, wo) in events.itt_expected_onsets.items()},
        control_payload=control_payload, control_rows=control_rows, control_persons=control_persons,
        control_truth=control_truth, exposure_control_payload=exposure_payload,
        exposure_control_rows=exposure_rows, exposure_control_persons=exposure_persons,
    )


def _control_truth_table(ev) -> pa.Table:
    """One row per person and negative control recorded: the first record's date."""
    first = ev.negative_controls.first_day
    parts = [(control, np.flatnonzero(day >= 0)) for control, day in first.items()]
    return pa.table({
        "person_id": pa.array(np.concatenate([ev.persons["person_id"][p] for _, p in parts])).cast(pa.string()),
        "control": pa.array(np.concatenate([np.full(p.size, c, dtype=object) for c, p in parts]).tolist(),
                            pa.string()),
        "first_date": _date_array(np.concatenate([first[c][p] for c, p in parts])),
    })


def _results_in_order(settings: Settings, n_chunks: int, workers: int):
    """Yield chunk results in chunk order; with workers > 1, at most 2 x workers chunks are in flight."""
    if workers <= 1 or n_chunks <= 1:
        for i in range(n_chunks):
            yield build_chunk(settings, i)
        return
    # Not "fork": a caller that has run DuckDB or Dagster has threads, and a child forked from a threaded process
    # can inherit a lock that one of those threads held, and hang (seen in bench/validate_sequence_symmetry.py).
    ctx = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
    with ctx.Pool(workers) as pool:
        pending: deque = deque()
        next_index = 0
        while next_index < n_chunks or pending:
            while next_index < n_chunks and len(pending) < 2 * workers:
                pending.append(pool.apply_async(build_chunk, (settings, next_index)))
                next_index += 1
            yield pending.popleft().get()


def _add(total: dict, part: dict) -> None:
    for k, v in part.items():
        if isinstance(v, dict):
            _add(total.setdefault(k, {}), v)
        else:
            total[k] = total.get(k, 0) + v


def generate_extract(out_dir: str | os.PathLike, patients: int, seed: int = 42, fmt: str = "csv",
                     defect_rate: float = 0.002, chunk_size: int = 50_000, progress: bool = True,
                     workers: int | None = None, effects_profile: str = P.DEFAULT_EFFECTS_PROFILE,
                     negative_controls: bool = True, negative_control_bias: float = 0.0,
                     negative_control_bias_sd: float = 0.0) -> dict:
    """Write a synthetic extract to ``out_dir`` and return its ground truth (also in _truth/ground_truth.json).

    ``workers``: processes that build chunks (default: up to 2, the CPU count); the output does not depend on it.
    ``effects_profile``: which planted effects act on cramp onset, a key of parameters.CRAMP_EFFECTS_PROFILES
    ("default", or "sequence_symmetry": only Garrison's three drugs, so an SSA should recover their ratios).
    ``negative_controls``: also write records of the negative-control outcomes (appended to condition_occurrence
    after every other row; the rest of the extract is byte-identical without them). ``negative_control_bias`` and
    ``negative_control_bias_sd``: a planted systematic error on them (parameters.NegativeControlBias), off by default.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    if effects_profile not in P.CRAMP_EFFECTS_PROFILES:
        raise ValueError(f"effects_profile must be one of {tuple(P.CRAMP_EFFECTS_PROFILES)}, "
                         f"not {effects_profile!r}")
    if patients < 1 or chunk_size < 1:
        raise ValueError("patients and chunk_size must be positive")
    if not 0 <= defect_rate < 0.5:
        raise ValueError("defect_rate must be in [0, 0.5)")
    if negative_control_bias_sd < 0 or not (math.isfinite(negative_control_bias)
                                            and math.isfinite(negative_control_bias_sd)):
        raise ValueError("negative_control_bias must be finite and negative_control_bias_sd finite and >= 0")
    if not negative_controls and (negative_control_bias or negative_control_bias_sd):
        raise ValueError("a negative-control bias needs negative_controls=True")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / TRUTH_DIR).mkdir(exist_ok=True)
    # A stale manifest would mark a half-written folder as complete: remove it first, and stale files of other
    # formats so the folder holds one extract.
    (out / MANIFEST).unlink(missing_ok=True)
    for t in spec.TABLES:
        for other in FORMATS:
            if other != fmt:
                (out / file_name(t.name, other)).unlink(missing_ok=True)

    n_chunks = math.ceil(patients / chunk_size)
    workers = workers if workers is not None else max(1, min(2, os.cpu_count() or 1))
    parts_dir = out / PARTS_DIR if workers > 1 and n_chunks > 1 else None
    if parts_dir is not None:
        parts_dir.mkdir(exist_ok=True)
    settings = Settings(patients=patients, seed=seed, fmt=fmt, defect_rate=defect_rate, chunk_size=chunk_size,
                        effects_profile=effects_profile, negative_controls=negative_controls,
                        negative_control_bias=P.NegativeControlBias(negative_control_bias, negative_control_bias_sd),
                        parts_dir=str(parts_dir) if parts_dir else None)
    writers = {t.name: TableWriter(out, t, fmt) for t in spec.TABLES}
    (out / TRUTH_DIR / NEGATIVE_CONTROLS_FILE).unlink(missing_ok=True)
    deferred = (DeferredRows(out / NEGATIVE_CONTROLS_PART, spec.CONDITION_OCCURRENCE, fmt) if negative_controls
                else None)
    deferred_fills = (DeferredRows(out / NEGATIVE_CONTROL_EXPOSURES_PART, spec.DRUG_EXPOSURE, fmt)
                      if negative_controls else None)
    truth_writer = intervals_writer = controls_writer = None
    totals: dict = {"rows": {}, "rejects": {}, "implausible": {}, "phenotypes": {}, "rule_outs": {}, "summary": {},
                    "itt": {}, "controls": {}, "exposure_controls": {}}
    bar = tqdm(total=patients, unit="persons", desc="legcramp-generate", disable=None if progress else True)
    try:
        for result in _results_in_order(settings, n_chunks, workers):
            for name, writer in writers.items():
                writer.write(result.payloads[name], result.rows[name])
            if truth_writer is None:
                truth_writer = pq.ParquetWriter(out / TRUTH_DIR / "persons.parquet", result.truth_persons.schema,
                                                compression="zstd")
            truth_writer.write_table(result.truth_persons)
            if result.exposure_intervals is not None:
                if intervals_writer is None:
                    intervals_writer = pq.ParquetWriter(out / TRUTH_DIR / EXPOSURE_INTERVALS_FILE,
                                                        result.exposure_intervals.schema, compression="zstd")
                intervals_writer.write_table(result.exposure_intervals)
            if result.control_payload is not None:
                deferred.add(result.control_payload, result.control_rows)
                if controls_writer is None:
                    controls_writer = pq.ParquetWriter(out / TRUTH_DIR / NEGATIVE_CONTROLS_FILE,
                                                       result.control_truth.schema, compression="zstd")
                controls_writer.write_table(result.control_truth)
                _add(totals["rows"], {spec.CONDITION_OCCURRENCE.name: result.control_rows})
                _add(totals["controls"], result.control_persons)
            if result.exposure_control_payload is not None:
                deferred_fills.add(result.exposure_control_payload, result.exposure_control_rows)
                _add(totals["rows"], {spec.DRUG_EXPOSURE.name: result.exposure_control_rows})
                _add(totals["exposure_controls"], result.exposure_control_persons)
            _add(totals["itt"], result.itt_expected_onsets)
            _add(totals["rows"], result.rows)
            _add(totals["rejects"], result.rejects)
            _add(totals["implausible"], result.implausible)
            _add(totals["phenotypes"], result.phenotype_persons)
            _add(totals["rule_outs"], result.rule_outs)
            _add(totals["summary"], result.summary)
            bar.update(result.persons)
        if deferred is not None:
            deferred.append_to(writers[spec.CONDITION_OCCURRENCE.name])
            deferred = None
        if deferred_fills is not None:
            deferred_fills.append_to(writers[spec.DRUG_EXPOSURE.name])
            deferred_fills = None
    finally:
        bar.close()
        for held in (deferred, deferred_fills):
            if held is not None:  # a failed run: the held rows go with it
                held.discard()
        for writer in writers.values():
            writer.close()
        if controls_writer is not None:
            controls_writer.close()
        if truth_writer is not None:
            truth_writer.close()
        if intervals_writer is not None:
            intervals_writer.close()
        if parts_dir is not None:
            for leftover in parts_dir.glob("*.part"):
                leftover.unlink()
            parts_dir.rmdir()

    truth = _ground_truth(settings, totals)
    (out / TRUTH_DIR / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    _write_manifest(out, settings, totals["rows"])
    return truth


def _ground_truth(settings: Settings, totals: dict) -> dict:
    rows = {t.name: int(totals["rows"].get(t.name, 0)) for t in spec.TABLES}
    rejects = {t.name: {r: int(totals["rejects"].get(t.name, {}).get(r, 0)) for r in spec.REJECT_REASON_CODES}
               for t in spec.TABLES}
    implausible = {t.name: {k: int(v) for k, v in totals["implausible"].get(t.name, {}).items()}
                   for t in spec.TABLES if t.name in IMPLAUSIBLE_BY_TABLE}
    clean = {t: rows[t] - sum(rejects[t].values()) for t in rows}
    dynamics = P.EXPOSURE_DYNAMICS.get(settings.effects_profile)
    if dynamics is None:
        effects = [{"exposure": exposure, "outcome": "leg_cramps", "hazard_ratio": hr,
                    "applies_from": "first exposure date", "source": source}
                   for exposure, (hr, source) in P.CRAMP_EFFECTS_PROFILES[settings.effects_profile].items()]
    else:
        effects = _time_varying_effects(settings.effects_profile, dynamics, totals["itt"])
    distractors = []
    for latent, note in cat.DISTRACTOR_NOTES.items():
        for code, _ in cat.CONDITION_CODES[latent].icd:
            distractors.append({"vocabulary": code.vocabulary, "code": code.code, "meaning": code.meaning,
                                "must_not_count_as": note})
    for s, _ in cat.DRUG_CLASSES["quinine"].substances:
        for code in s.codes():
            distractors.append({"vocabulary": code.vocabulary, "code": code.code, "meaning": "quinine given with a "
                                "malaria diagnosis", "must_not_count_as": cat.DISTRACTOR_NOTES["malaria"]})
    summary = totals["summary"]
    truth = {
        "generator": {"version": GENERATOR_VERSION, "seed": settings.seed, "patients": settings.patients,
                      "format": settings.fmt, "defect_rate": settings.defect_rate,
                      "chunk_size": settings.chunk_size, "effects_profile": settings.effects_profile},
        "rows_written": rows,
        "rejects_planted": rejects,
        "clean_rows": clean,
        "implausible_planted": implausible,
        "phenotype_persons": {pid: int(totals["phenotypes"].get(pid, 0)) for pid in cat.PHENOTYPE_IDS},
        "effects": effects,
        "sequence_ratios": _sequence_ratio_targets(settings.effects_profile),
        "baseline_hazard": {
            "model": "h(t) = lambda0 * exp(age_log_hr_per_year * (age(t) - reference_age) + female_log_hr * female) "
                     "* prod(hazard_ratio of each exposure started on or before t); first onset only",
            "lambda0_per_year": P.CRAMP_LAMBDA0_PER_YEAR,
            "reference_age": P.CRAMP_REFERENCE_AGE,
            "age_log_hr_per_year": P.CRAMP_AGE_LOG_HR_PER_YEAR,
            "female_log_hr": P.CRAMP_FEMALE_LOG_HR,
            "female_hazard_ratio": math.exp(P.CRAMP_FEMALE_LOG_HR),
            "time_grid": "days; age is taken at the midpoint of each calendar month, exposures act from their "
                         "start day",
            "exposure_start": "drugs: first fill; peripheral_arterial_disease, hypothyroidism, osteoarthritis: latent "
                              "onset (may precede observation); hypomagnesemia_lab: first low magnesium result",
        },
        "distractor_codes": distractors,
        "study_calendar": {"data_start": P.DATA_START, "data_end": P.DATA_END},
        # Beyond the contract: context for readers of the truth.
        "rejects_possible": {fmt: {t.name: list(rejectable_reasons(t, fmt)) for t in spec.TABLES}
                             for fmt in ("csv", "parquet")},
        "rule_out_persons": {k: int(v) for k, v in totals["rule_outs"].items()},
        "population": {"persons": settings.patients, **{k: int(v) for k, v in summary.items()}},
        "phenotype_rules": PHENOTYPE_RULES,
        "phenotype_codes": cat.phenotype_code_lists(),
    }
    if dynamics is not None:
        truth["exposure_dynamics"] = _exposure_dynamics_truth(dynamics)
    if settings.negative_controls:
        truth["negative_controls"] = _negative_controls_truth(settings, totals["controls"])
        truth["negative_control_exposures"] = _negative_control_exposures_truth(totals["exposure_controls"])
    return truth


def _negative_controls_truth(settings: Settings, persons: dict[str, int]) -> dict:
    """The negative-control outcomes: their codes, rates, planted bias and the hazard ratios a design should find."""
    bias = settings.negative_control_bias
    log_hr_bias = planted_log_hr_biases(settings.seed, bias)
    outcomes = []
    for control in cat.NEGATIVE_CONTROL_IDS:
        spec_ = P.NEGATIVE_CONTROL_OUTCOMES[control]
        outcomes.append({
            "phenotype_id": control,
            "codes": [{"vocabulary": c.vocabulary, "code": c.code, "meaning": c.meaning, "weight": w}
                      for c, w in cat.NEGATIVE_CONTROL_CODES[control].icd],
            "rate60_per_year": spec_.rate60_per_year,
            "rate_ratio_per_10_years": math.exp(spec_.log_rate_slope_per_10_years),
            "female_only": spec_.female_only,
            "persons": int(persons.get(control, 0)),
            "causal_hazard_ratio": 1.0,
            "planted_log_hr_bias": log_hr_bias[control],
            "observed_hazard_ratio_from_bias_exposure_start": math.exp(log_hr_bias[control]),
        })
    return {
        "model": "first record only, on the onset day; hazard per person = rate60_per_year * rate_ratio_per_10_years "
                 "^ ((age at the middle of observation - 60) / 10), women only where female_only, over observed "
                 "days; times exp(planted_log_hr_bias) from the first fill of any bias exposure on",
        "bias": {"log_hr": bias.log_hr, "sd": bias.sd, "exposures": list(bias.exposures), "planted": bias.planted,
                 "mechanism": "detection bias: users of the bias exposures are seen more often, so more of their "
                              "minor conditions are recorded; b_c = log_hr + sd * z_c, one standard normal z_c per "
                              "control and extract; cramps and every other record are untouched"},
        "estimand": "every exposure's causal hazard ratio on every control is 1; a new-user comparison of a bias "
                    "exposure with a drug outside it observes exp(planted_log_hr_bias) (intention to treat), so the "
                    "empirical null fitted on the controls should find mean bias.log_hr and sd bias.sd",
        "records": f"condition_occurrence rows with ids k * {ID_STRIDE} + {NEGATIVE_CONTROL_ID_OFFSET} + 1, ... "
                   "(chunk k), after every other row of the file; no defects planted among them",
        "persons_file": f"{TRUTH_DIR}/{NEGATIVE_CONTROLS_FILE}",
        "outcomes": outcomes,
    }


def _negative_control_exposures_truth(persons: dict[str, int]) -> dict:
    """The negative-control exposures: their codes, who uses them, and the hazard ratio on cramps a design should
    find (1)."""
    exposures = []
    for drug in cat.NEGATIVE_CONTROL_DRUG_IDS:
        spec_ = P.NEGATIVE_CONTROL_EXPOSURES[drug]
        substance = cat.NEGATIVE_CONTROL_DRUGS[drug]
        exposures.append({
            "phenotype_id": drug,
            "codes": [{"vocabulary": c.vocabulary, "code": c.code, "meaning": c.meaning} for c in substance.codes()],
            "user_probability_at_60": spec_.p60,
            "logit_slope_per_10_years": spec_.logit_slope_per_10_years,
            "sex": spec_.sex,
            "prevalent_share": spec_.prevalent_share,
            "persons": int(persons.get(drug, 0)),
            "outcome": "leg_cramps",
            "causal_hazard_ratio": 1.0,
        })
    return {
        "model": "users drawn by age (at the middle of observation) and sex only; a user is on the drug from the "
                 "first observed day (prevalent_share) or from a uniformly drawn day of the first observation "
                 "period, refilling on the person's repeat-prescription grid until that period ends; the cramp "
                 "hazard never sees these fills",
        "estimand": "each control drug's causal hazard ratio on leg cramps is 1: a screening analysis adjusted for "
                    "age and sex should find 1, and an empirical null fitted on the controls mean 0 (log scale)",
        "records": f"drug_exposure rows with ids k * {ID_STRIDE} + {NEGATIVE_CONTROL_ID_OFFSET} + 1, ... (chunk k), "
                   "after every other row of the file; no defects planted among them",
        "exposures": exposures,
    }


def _acts(exposure: str, dynamics: P.ExposureDynamics) -> str:
    if exposure in P.DRUGS:
        return (f"while on drug: from a fill to the end of its days' supply, refills up to "
                f"{P.REFILL_JITTER_MAX_DAYS} days late bridged ({TRUTH_DIR}/{EXPOSURE_INTERVALS_FILE})")
    if exposure in P.TRANSIENT_EXPOSURES:
        return f"for {dynamics.transient_state_days} days from each low result ({TRUTH_DIR}/{EXPOSURE_INTERVALS_FILE})"
    return "from latent onset on (a chronic condition)"


def _time_varying_effects(effects_profile: str, dynamics: P.ExposureDynamics, itt: dict) -> list[dict]:
    """Each planted effect with the estimands a design can target (profiles with exposure dynamics)."""
    effects = []
    for exposure, (hr, source) in P.CRAMP_EFFECTS_PROFILES[effects_profile].items():
        sums = itt.get(exposure)
        itt_ratio = (sums["with_effect"] / sums["without_effect"] if sums and sums["without_effect"] > 0
                     else (1.0 if hr == 1.0 else None))
        effects.append({
            "exposure": exposure, "outcome": "leg_cramps", "hazard_ratio": hr,
            "applies_from": _acts(exposure, dynamics),
            "source": source,
            "estimands": {
                "on_treatment_hazard_ratio": hr,
                "on_treatment_note": "hazard ratio while the exposure acts vs while it does not, conditional on the "
                                     "person's frailty (and age, sex); what a new-user on-treatment or a "
                                     "time-varying current-exposure design targets",
                "intention_to_treat_rate_ratio": None if itt_ratio is None else round(itt_ratio, 6),
                "intention_to_treat_note": "among the exposed, from the first exposure day to the end of "
                                           "observation: expected cramp onsets with the effect / without it (planted "
                                           "baseline hazard, no frailty, earlier onsets not removed); what an "
                                           "ever-exposed (frozen from first exposure) new-user comparison targets "
                                           "before depletion of susceptibles",
            },
        })
    return effects


def _exposure_dynamics_truth(dynamics: P.ExposureDynamics) -> dict:
    return {
        **{k: getattr(dynamics, k) for k in dynamics.__dataclass_fields__},
        "drugs": "treatment episodes: the first from the first fill; each lasts episode_min_days plus an exponential "
                 "number of days, then a stop; after gap_min_days plus an exponential gap a share restart_share "
                 "restarts, otherwise the person stops for good",
        "transient_exposures": list(P.TRANSIENT_EXPOSURES),
        "workup": "a share workup_share of persons with a cramp onset get a sodium/potassium panel and magnesium "
                  "within workup_within_days after onset (detection bias)",
        "frailty": "each person's cramp hazard is multiplied by a gamma frailty with mean 1 and variance "
                   "frailty_variance (column cramp_frailty of persons.parquet): depletion of susceptibles",
        "intervals_file": f"{TRUTH_DIR}/{EXPOSURE_INTERVALS_FILE}",
    }


def _sequence_ratio_targets(effects_profile: str) -> dict:
    """The sequence ratios a sequence symmetry analysis should recover in this profile (none in the default one)."""
    effects = P.CRAMP_EFFECTS_PROFILES[effects_profile]
    targets = [{"index_drug": exposure, "marker": "leg_cramps", "sequence_ratio": effects[exposure][0],
                "source": effects[exposure][1]}
               for exposure in P.SEQUENCE_RATIO_TARGETS[effects_profile]]
    if targets:
        note = ("no other exposure has an effect on cramps in this profile, so no time-varying confounding: each "
                "drug's sequence ratio (marker after vs before the first fill, adjusted for trends) should equal "
                "its hazard ratio. Other drugs are not null targets: they share indications (and so start dates) "
                "with these three drugs, and carry their effects into a sequence ratio.")
    else:
        note = ("none: drugs started for the same indication have effects of their own and diuretics act partly "
                "through low magnesium, so sequence ratios mix several effects here; use the 'sequence_symmetry' "
                "profile to validate a sequence symmetry analysis.")
    return {"targets": targets, "note": note}


def _write_manifest(out: Path, settings: Settings, rows: dict[str, int]) -> None:
    files = []
    for t in spec.TABLES:
        path = out / file_name(t.name, settings.fmt)
        files.append({"table": t.name, "file": path.name, "bytes": path.stat().st_size, "sha256": sha256_of(path),
                      "rows": int(rows.get(t.name, 0))})
    for name in ("ground_truth.json", "persons.parquet", EXPOSURE_INTERVALS_FILE, NEGATIVE_CONTROLS_FILE):
        path = out / TRUTH_DIR / name
        if name == EXPOSURE_INTERVALS_FILE and settings.effects_profile not in P.EXPOSURE_DYNAMICS:
            continue
        if name == NEGATIVE_CONTROLS_FILE and not settings.negative_controls:
            continue
        files.append({"table": None, "file": f"{TRUTH_DIR}/{name}", "bytes": path.stat().st_size,
                      "sha256": sha256_of(path), "rows": None})
    manifest = {"generator": "pipelines.synthetic", "version": GENERATOR_VERSION, "format": settings.fmt,
                "seed": settings.seed, "patients": settings.patients, "effects_profile": settings.effects_profile,
                "negative_controls": settings.negative_controls, "files": files}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out / MANIFEST)  # atomic: the manifest appears complete or not at all
