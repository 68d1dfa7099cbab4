"""Planted defects: EXTRA rows, never changes to clean rows, so the clean data and the truth stay exact.

Two families, counted separately in the truth:

* rejectable rows (extract_spec.REJECT_REASONS) that the ingest must refuse, each for exactly the planted reason:
  every other field of the row is valid, so the first reason in spec order that applies is the planted one.
  ``malformed_line``, ``unparseable_date`` and ``unparseable_number`` can only exist as CSV text; in Parquet the
  column types forbid them, so only ``missing_required_field``, ``duplicate_primary_key`` and ``unknown_person``
  are planted there.
* implausible rows that load and that data-quality checks must flag. They are copies of clean rows chosen so that
  no phenotype's person set or first date changes: dates only move later, copies of diagnosis rows come only from
  persons already positive for every phenotype the code counts for, ABI rows are never moved, impossible lab values
  are outside the plausible ranges the phenotypes use.

Rejected person rows belong to EXTRA persons (ids outside the real range) who have no events; a duplicated person id
repeats a real person AFTER that person's row, so the first (valid) row loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import extract_spec as spec

from . import catalog as cat
from .model import ABI, DATA_END_DAY, MAGNESIUM, POTASSIUM, SODIUM
from .render import ID_STRIDE, RenderedTable, dates, ids, numbers

IMPLAUSIBLE_KINDS: tuple[str, ...] = ("duplicate_event", "event_after_death", "event_outside_observation",
                                      "end_before_start", "impossible_lab_value", "unknown_code")
IMPLAUSIBLE_BY_TABLE: dict[str, tuple[str, ...]] = {
    "visit_occurrence": ("event_after_death", "event_outside_observation", "end_before_start"),
    "condition_occurrence": ("duplicate_event", "event_after_death", "event_outside_observation", "end_before_start",
                             "unknown_code"),
    "drug_exposure": ("duplicate_event", "event_after_death", "event_outside_observation", "end_before_start"),
    "measurement": ("duplicate_event", "event_after_death", "event_outside_observation", "impossible_lab_value"),
    "procedure_occurrence": ("duplicate_event",),
}
TEXT_ONLY_REASONS = ("malformed_line", "unparseable_date", "unparseable_number")
# The reject reasons the generator plants (the number-range reasons are exercised by
# tests/ingest/test_faults_ingest.py).
PLANTED_REJECT_REASONS = ("malformed_line", "missing_required_field", "unparseable_date", "unparseable_number",
                          "duplicate_primary_key", "unknown_person")
MAIN_DATE = {
    "person": "birth_date", "observation_period": "observation_period_start_date",
    "visit_occurrence": "visit_start_date", "condition_occurrence": "condition_start_date",
    "drug_exposure": "drug_exposure_start_date", "measurement": "measurement_date",
    "procedure_occurrence": "procedure_date", "death": "death_date",
}
END_DATE = {"visit_occurrence": "visit_end_date", "condition_occurrence": "condition_end_date",
            "drug_exposure": "drug_exposure_end_date"}
BAD_DATES = ("2019-13-45", "31/12/2019", "n/a", "2020-02-30", "20190101")
BAD_NUMBERS = ("abc", '"1,5"', "n/a", "1.2.3")
# Impossible lab values, all outside the plausible ranges the phenotypes use.
IMPOSSIBLE_VALUE = {SODIUM: 1350.0, POTASSIUM: -1.0, ABI: 9.9}
IMPOSSIBLE_MAGNESIUM = {True: 40.0, False: 16.0}  # mg/dL sites, mmol/L sites
EXTRA_PERSON_ID_BASE = 8 * 10**12  # rejected person rows: ids no real person has
UNKNOWN_PERSON_ID_BASE = 9 * 10**12  # unknown_person rows: ids absent from the person file


def rejectable_reasons(table: spec.Table, fmt: str) -> tuple[str, ...]:
    types = {c.type for c in table.columns}
    reasons = []
    for reason in spec.REJECT_REASON_CODES:
        if reason not in PLANTED_REJECT_REASONS:
            continue
        if fmt == "parquet" and reason in TEXT_ONLY_REASONS:
            continue
        if reason == "unparseable_number" and not types & {"INTEGER", "DOUBLE"}:
            continue
        if reason == "unparseable_date" and "DATE" not in types:
            continue
        if reason == "unknown_person" and not table.references_person:
            continue
        reasons.append(reason)
    return tuple(reasons)


@dataclass
class DefectContext:
    chunk_index: int
    rng: np.random.Generator
    fmt: str
    defect_rate: float
    person_id: np.ndarray  # global person ids of the chunk
    site: np.ndarray
    death_day: np.ndarray
    last_end: np.ndarray
    truth: dict[str, np.ndarray]  # phenotype -> first day per local person (-1 none)
    phenotype_member: dict[str, np.ndarray]  # phenotype -> bool per catalog code
    single_period: np.ndarray  # bool per person: one observation period (no gap to fall into)


@dataclass
class PlantedTable:
    table: pa.Table  # clean rows and typed extra rows, in file order
    text_lines: list[str] = field(default_factory=list)  # CSV-only rows
    text_after: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    rejects: dict[str, int] = field(default_factory=dict)
    implausible: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.table.num_rows + len(self.text_lines)


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), values.cast(table.schema.field(i).type))


def _shift_days(table: pa.Table, name: str, days: np.ndarray) -> pa.Array:
    """Move a date column by ``days``; empty dates stay empty."""
    old = table.column(name).combine_chunks()
    missing = old.is_null().to_numpy(zero_copy_only=False)
    as_int = old.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return dates(as_int + days, missing)


class Planter:
    """Plants the defects of one table of one chunk."""

    def __init__(self, rendered: RenderedTable, ctx: DefectContext) -> None:
        self.r = rendered
        self.ctx = ctx
        self.rng = ctx.rng
        self.spec = spec.TABLES_BY_NAME[rendered.name]
        self.n = rendered.table.num_rows
        self.pk = self.spec.primary_key
        self._next_row_id = ctx.chunk_index * ID_STRIDE + self.n + 1
        self._next_extra_person = EXTRA_PERSON_ID_BASE + ctx.chunk_index * 10**6 + 1
        self._next_unknown_person = UNKNOWN_PERSON_ID_BASE + ctx.chunk_index * 10**6 + 1
        alive = np.flatnonzero(ctx.death_day < 0)
        self._alive_pool = self.rng.permutation(alive)  # death-table defects use distinct living persons
        self._alive_used = 0
        # (person, code, day) of every clean row and every planted row that must not look like a duplicate event:
        # only ``duplicate_event`` rows may repeat an event, so each planted row is caught by one check only.
        self.clean_keys = np.sort(self.event_key(self.r.person, self.r.code, self.r.day))
        self.planted_keys = np.empty(0, dtype=np.int64)
        self.typed: list[pa.Table] = []
        self.typed_after: list[np.ndarray] = []
        self.text_lines: list[np.ndarray] = []

    # ---------------------------------------------------------------------------------------------- id helpers
    def new_row_ids(self, k: int) -> pa.Array:
        if self.spec.name == "person":
            out = self._next_extra_person + np.arange(k)
            self._next_extra_person += k
            return ids(out)
        if self.spec.name == "death":
            take = self._alive_pool[self._alive_used:self._alive_used + k]
            self._alive_used += take.size
            if take.size < k:
                raise _NoSource
            return ids(self.ctx.person_id[take])
        out = self._next_row_id + np.arange(k)
        self._next_row_id += k
        return ids(out)

    def unknown_person_ids(self, k: int) -> pa.Array:
        out = self._next_unknown_person + np.arange(k)
        self._next_unknown_person += k
        return ids(out)

    @staticmethod
    def event_key(person: np.ndarray, code: np.ndarray, day: np.ndarray) -> np.ndarray:
        return (np.asarray(person, np.int64) << 28) | ((np.asarray(code, np.int64) + 1) << 16) | np.asarray(day,
                                                                                                          np.int64)

    def keep_new_events(self, keys: np.ndarray) -> np.ndarray:
        """Mask of keys that repeat no clean or planted event (first of equal keys kept); records them as taken."""
        _, first = np.unique(keys, return_index=True)
        keep = np.zeros(keys.size, dtype=bool)
        keep[first] = True
        # Membership by binary search in the sorted clean keys (np.isin would hash millions of keys).
        pos = np.minimum(np.searchsorted(self.clean_keys, keys), max(self.clean_keys.size - 1, 0))
        in_clean = (self.clean_keys.size > 0) & (self.clean_keys[pos] == keys) if self.clean_keys.size else \
            np.zeros(keys.size, dtype=bool)
        keep &= ~in_clean & ~np.isin(keys, self.planted_keys, kind="sort")
        self.planted_keys = np.concatenate([self.planted_keys, keys[keep]])
        return keep

    def sources(self, k: int, eligible: np.ndarray | None = None) -> np.ndarray:
        pool = np.arange(self.n) if eligible is None else np.flatnonzero(eligible)
        if pool.size == 0:
            raise _NoSource
        return pool[self.rng.integers(0, pool.size, k)]

    def copies(self, src: np.ndarray, new_id: bool = True) -> pa.Table:
        rows = self.r.table.take(pa.array(src))
        if new_id:
            rows = _set(rows, self.pk, self.new_row_ids(src.size))
        return rows

    def add_typed(self, rows: pa.Table, after: np.ndarray | None = None) -> None:
        if after is None:
            after = self.rng.integers(0, self.n, rows.num_rows)
        self.typed.append(rows)
        self.typed_after.append(after)

    def add_text(self, columns: list[np.ndarray], kind: str) -> None:
        if kind == "too_few":
            columns = columns[:-1]
        elif kind == "too_many":
            columns = columns + [np.full(columns[0].size, "extra", dtype=object)]
        line = columns[0]
        for col in columns[1:]:
            line = line + "," + col
        self.text_lines.append(line)

    def as_text(self, rows: pa.Table) -> list[np.ndarray]:
        return [col.cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False).astype(object)
                for col in rows.columns]

    # ---------------------------------------------------------------------------------------------- safety
    def safe_to_move_later(self) -> np.ndarray:
        """Rows whose copy, dated later, cannot change any phenotype: diagnosis rows of persons already positive for
        every phenotype of the code; drug rows (their person is positive by the row itself, and malaria persons
        stay excluded from quinine_start); lab rows except ABI (whose lowest-value date could tie)."""
        ok = np.ones(self.n, dtype=bool)
        if self.spec.name == "condition_occurrence":
            for pid, member in self.ctx.phenotype_member.items():
                counts = member[self.r.code]
                ok &= ~counts | (self.ctx.truth[pid][self.r.person] >= 0)
        if self.spec.name == "measurement":
            ok &= self.r.kind != ABI
        return ok

    # ---------------------------------------------------------------------------------------------- implausible
    def plant_implausible(self, kind: str, k: int) -> int:
        t = self.spec.name
        person = self.r.person
        if kind == "duplicate_event":
            self.add_typed(self.copies(self.sources(k)))
            return k
        if kind in ("event_after_death", "event_outside_observation"):
            if kind == "event_after_death":
                anchor = self.ctx.death_day[person]
                eligible = (anchor >= 0) & (anchor <= DATA_END_DAY - 2)
            else:
                anchor = self.ctx.last_end[person]
                eligible = (self.ctx.death_day[person] < 0) & (anchor <= DATA_END_DAY - 2)
            eligible &= self.safe_to_move_later()
            src = self.sources(k, eligible)
            room = np.minimum(365, DATA_END_DAY - anchor[src])
            new_day = anchor[src] + 1 + np.floor(self.rng.random(k) * room).astype(np.int64)
            return self._add_moved_copies(src, new_day, end_back_days=None)
        if kind == "end_before_start":
            if t == "visit_occurrence":  # a second record of a visit, ending before it starts
                src = self.sources(k)
                rows = self.copies(src)
                back = 1 + self.rng.integers(0, 5, k)
                self.add_typed(_set(rows, "visit_end_date", dates(self.r.day[src] - back)))
                return k
            # Conditions and drugs: a copy moved later inside the same (single) observation period, so it repeats
            # no event, with its end date 1-30 days before its start.
            eligible = self.safe_to_move_later() & self.ctx.single_period[person] & (
                self.ctx.last_end[person] > self.r.day)
            src = self.sources(k, eligible)
            room = self.ctx.last_end[person[src]] - self.r.day[src]
            new_day = self.r.day[src] + 1 + np.floor(self.rng.random(k) * room).astype(np.int64)
            return self._add_moved_copies(src, new_day, end_back_days=1 + self.rng.integers(0, 30, k))
        if kind == "impossible_lab_value":
            src = self.rng.permutation(self.n)[:k]  # distinct sources: two equal impossible rows would be duplicates
            k = src.size
            lab = self.r.kind[src]
            mg_dl = pc.fill_null(pc.equal(self.r.table.column("unit").take(pa.array(src)), "mg/dL"), False)
            mg_dl = mg_dl.to_numpy(zero_copy_only=False).astype(bool)
            value = np.select([lab == SODIUM, lab == POTASSIUM, lab == ABI, lab == MAGNESIUM],
                              [IMPOSSIBLE_VALUE[SODIUM], IMPOSSIBLE_VALUE[POTASSIUM], IMPOSSIBLE_VALUE[ABI],
                               np.where(mg_dl, IMPOSSIBLE_MAGNESIUM[True], IMPOSSIBLE_MAGNESIUM[False])])
            rows = _set(self.copies(src), "value_as_number", numbers(value, pa.float64()))
            self.add_typed(rows)
            return k
        if kind == "unknown_code":
            icd_rows = np.array([c.vocabulary == cat.ICD for c in cat.ALL_CODES])[np.maximum(self.r.code, 0)]
            src = self.sources(k, icd_rows & (self.r.code >= 0))
            bad = np.array(cat.UNKNOWN_ICD10CM_CODES, dtype=object)[self.rng.integers(0, len(cat.UNKNOWN_ICD10CM_CODES),
                                                                                       k)]
            dot = np.array([s.icd_dot for s in cat.SITES])[self.ctx.site[person[src]]]
            text = np.where(dot, bad, np.array([b.replace(".", "") for b in bad], dtype=object))
            bad_index = np.array([cat.code_index(cat.ICD, b) for b in bad], dtype=np.int64)
            keep = self.keep_new_events(self.event_key(person[src], bad_index, self.r.day[src]))
            rows = _set(self.copies(src[keep]), "condition_code", pa.array(list(text[keep]), pa.string()))
            self.add_typed(rows)
            return int(keep.sum())
        raise ValueError(kind)

    def _add_moved_copies(self, src: np.ndarray, new_day: np.ndarray, end_back_days: np.ndarray | None) -> int:
        """Copies of ``src`` rows dated ``new_day`` (always later than the source), without a visit id; an end date
        ``end_back_days`` before the new start, else moved along (visits: same day; conditions: none)."""
        t = self.spec.name
        keep = self.keep_new_events(self.event_key(self.r.person[src], self.r.code[src], new_day))
        src, new_day = src[keep], new_day[keep]
        k = src.size
        if k == 0:
            return 0
        rows = _set(self.copies(src), MAIN_DATE[t], dates(new_day))
        if end_back_days is not None:
            rows = _set(rows, END_DATE[t], dates(new_day - end_back_days[keep]))
        elif t == "visit_occurrence":
            rows = _set(rows, "visit_end_date", dates(new_day, np.ones(k, dtype=bool)))
        elif t == "condition_occurrence":
            rows = _set(rows, "condition_end_date", dates(new_day, np.ones(k, dtype=bool)))
        elif t == "drug_exposure":
            rows = _set(rows, "drug_exposure_end_date",
                        _shift_days(rows, "drug_exposure_end_date", new_day - self.r.day[src]))
        if t != "visit_occurrence":
            rows = _set(rows, "visit_occurrence_id", pa.nulls(k, pa.string()))
        self.add_typed(rows)
        return k

    # ---------------------------------------------------------------------------------------------- rejectable
    def plant_reject(self, reason: str, k: int) -> int:
        t = self.spec.name
        if reason == "duplicate_primary_key":
            src = self.sources(k)
            rows = self.copies(src, new_id=False)
            if t == "death":  # same person, another date: a conflicting second death record
                rows = _set(rows, "death_date", dates(self.r.day[src] - 1 - self.rng.integers(0, 30, k)))
            after = src + np.floor(self.rng.random(k) * (self.n - src)).astype(np.int64)
            self.add_typed(rows, after)
            return k
        src = self.sources(k)
        rows = self.copies(src)
        # (death rows: new_row_ids gave living persons without a death row, so only the planted reason applies)
        if reason == "unknown_person":
            rows = _set(rows, "person_id", self.unknown_person_ids(k))
            self.add_typed(rows)
            return k
        if reason == "missing_required_field":
            required = list(self.spec.required_columns)
            which = self.rng.integers(0, len(required), k)
            for j, name in enumerate(required):
                mask = which == j
                if mask.any():
                    col = rows.column(name).combine_chunks()
                    rows = _set(rows, name, pc.if_else(pa.array(mask), pa.nulls(k, col.type), col))
            self.add_typed(rows)
            return k
        # Text-only reasons (CSV).
        text = self.as_text(rows)
        names = rows.column_names
        if reason == "unparseable_date":
            col = names.index(MAIN_DATE[t])
            text[col] = np.array(BAD_DATES, dtype=object)[self.rng.integers(0, len(BAD_DATES), k)]
            self.add_text(text, "normal")
        elif reason == "unparseable_number":
            numeric = [i for i, c in enumerate(self.spec.columns) if c.type in ("INTEGER", "DOUBLE")]
            which = np.array(numeric)[self.rng.integers(0, len(numeric), k)]
            bad = np.array(BAD_NUMBERS, dtype=object)[self.rng.integers(0, len(BAD_NUMBERS), k)]
            for i in numeric:
                text[i] = np.where(which == i, bad, text[i]).astype(object)
            self.add_text(text, "normal")
        elif reason == "malformed_line":
            too_many = self.rng.random(k) < 0.5
            few = [c[~too_many] for c in text]
            many = [c[too_many] for c in text]
            if few[0].size:
                self.add_text(few, "too_few")
            if many[0].size:
                self.add_text(many, "too_many")
        else:
            raise ValueError(reason)
        return k

    # ---------------------------------------------------------------------------------------------- run
    def plant(self) -> PlantedTable:
        rejects = {r: 0 for r in spec.REJECT_REASON_CODES}
        implausible = {k: 0 for k in IMPLAUSIBLE_BY_TABLE.get(self.spec.name, ())}
        if self.n == 0 or self.ctx.defect_rate <= 0:
            return PlantedTable(self.r.table, rejects=rejects, implausible=implausible)
        kinds = [("implausible", k) for k in implausible] + [
            ("reject", r) for r in rejectable_reasons(self.spec, self.ctx.fmt)]
        total = self.rng.binomial(self.n, self.ctx.defect_rate)
        counts = self.rng.multinomial(total, np.full(len(kinds), 1.0 / len(kinds)))
        for (family, kind), k in zip(kinds, counts):
            if k == 0:
                continue
            try:
                if family == "implausible":
                    implausible[kind] += self.plant_implausible(kind, int(k))
                else:
                    rejects[kind] += self.plant_reject(kind, int(k))
            except _NoSource:
                continue
        return self._merge(rejects, implausible)

    def _merge(self, rejects: dict[str, int], implausible: dict[str, int]) -> PlantedTable:
        table = self.r.table
        if self.typed:
            extra = pa.concat_tables(self.typed)
            after = np.concatenate(self.typed_after)
            key = np.concatenate([np.arange(self.n, dtype=np.float64), after + 0.5])
            order = np.argsort(key, kind="stable")
            table = pa.concat_tables([table, extra]).take(pa.array(order))
        lines: list[str] = []
        text_after = np.empty(0, dtype=np.int64)
        if self.text_lines:
            lines = list(np.concatenate(self.text_lines))
            total = table.num_rows
            # Keep the first rows of the file clean, so CSV sniffers see well-formed data first.
            low = min(100, total) if self.ctx.chunk_index == 0 else 0
            text_after = low + np.floor(self.rng.random(len(lines)) * (total - low + 1)).astype(np.int64)
        return PlantedTable(table, lines, text_after, rejects, implausible)


class _NoSource(Exception):
    """No row qualifies as a source for this defect in this chunk (e.g. no deaths): the defect is skipped."""


def plant_defects(rendered: dict[str, RenderedTable], ctx: DefectContext) -> dict[str, PlantedTable]:
    return {name: Planter(r, ctx).plant() for name, r in rendered.items()}
