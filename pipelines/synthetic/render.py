"""Turn a chunk's clean event arrays into typed Arrow tables in the canonical layout (extract_spec.TABLES).

Column order and types come from extract_spec; sites decide spellings (vocabulary aliases, ICD-10-CM dot, sex,
visit type, laterality, units). Each table comes with ``meta`` arrays (local person index, main day, code index,
lab kind) that the defect planter uses to pick rows to copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines import extract_spec as spec

from . import catalog as cat
from .model import ABI, MAGNESIUM, POTASSIUM, SODIUM, ChunkEvents

ARROW_TYPES = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "DOUBLE": pa.float64(), "DATE": pa.date32()}
ID_STRIDE = 10**9  # row ids of chunk k are k * ID_STRIDE + 1, + 2, ...; a chunk never has a billion rows

N_SITES = len(cat.SITES)
N_CODES = len(cat.ALL_CODES)


def arrow_schema(table: spec.Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in table.columns])


def _site_code_texts() -> tuple[pa.Array, pa.Array]:
    """(vocabulary spelling, code text) for every (site, code): index site * N_CODES + code."""
    vocab, text = [], []
    for site in cat.SITES:
        for c in cat.ALL_CODES:
            vocab.append(site.spell[c.vocabulary])
            text.append(c.code if (c.vocabulary != cat.ICD or site.icd_dot) else c.code.replace(".", ""))
    return pa.array(vocab, pa.string()), pa.array(text, pa.string())


VOCAB_TEXT, CODE_TEXT = _site_code_texts()


def lookup(strings: pa.Array | list[str], index: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """strings[index] as an Arrow string array (vectorised), null where null_mask."""
    arr = strings if isinstance(strings, pa.Array) else pa.array(strings, pa.string())
    idx = pa.array(np.asarray(index, dtype=np.int64), mask=null_mask)
    return arr.take(idx)


def ids(values: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), mask=null_mask).cast(pa.string())


def dates(days: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    days = np.asarray(days, dtype=np.int64)
    if null_mask is None:
        null_mask = days < 0
    return pa.array(days.astype(np.int32), type=pa.int32(), mask=null_mask).cast(pa.date32())


def numbers(values: np.ndarray, arrow_type: pa.DataType, null_mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, mask=null_mask).cast(arrow_type)


@dataclass
class RenderedTable:
    name: str
    table: pa.Table  # typed, spec column order
    person: np.ndarray  # local person index per row (-1: none)
    day: np.ndarray  # main date per row
    code: np.ndarray  # catalog code index per row (-1: none)
    kind: np.ndarray  # lab kind per row (measurement), else -1


def _build(table: spec.Table, columns: dict[str, pa.Array]) -> pa.Table:
    schema = arrow_schema(table)
    missing = set(table.column_names) ^ set(columns)
    if missing:
        raise ValueError(f"{table.name}: columns do not match the spec: {sorted(missing)}")
    return pa.Table.from_arrays([columns[c].cast(schema.field(c).type) for c in table.column_names], schema=schema)


def _row_ids(chunk_index: int, n: int) -> np.ndarray:
    return chunk_index * ID_STRIDE + 1 + np.arange(n, dtype=np.int64)


def render_chunk(ev: ChunkEvents, chunk_index: int) -> dict[str, RenderedTable]:
    p = ev.persons
    site = p["site"].astype(np.int64)
    pid = p["person_id"]
    out: dict[str, RenderedTable] = {}
    none = np.full(ev.n, -1, dtype=np.int64)

    def row_site(person: np.ndarray) -> np.ndarray:
        return site[person]

    # person ----------------------------------------------------------------------------------------------------
    sex_strings = [s for site_ in cat.SITES for s in site_.sex_spelling]
    writes_birth = np.array([s.writes_birth_date for s in cat.SITES])[site]
    writes_race = np.array([s.writes_race for s in cat.SITES])[site]
    race_strings = [r for r, _ in cat.RACES]
    eth_strings = [e for e, _ in cat.ETHNICITIES]
    race_null = ~writes_race | (np.array([r == "" for r in race_strings])[p["race"]])
    eth_null = ~writes_race | (np.array([e == "" for e in eth_strings])[p["ethnicity"]])
    person_table = _build(spec.PERSON, {
        "person_id": ids(pid),
        "year_of_birth": numbers(p["year_of_birth"], pa.int32()),
        "birth_date": dates(p["birth_day"], ~writes_birth),
        "sex": lookup(sex_strings, site * 3 + p["sex"]),
        "race": lookup(race_strings, p["race"], race_null),
        "ethnicity": lookup(eth_strings, p["ethnicity"], eth_null),
        "site_id": lookup([s.site_id for s in cat.SITES], site),
    })
    out["person"] = RenderedTable("person", person_table, np.arange(ev.n), p["first_start"], none, none)

    # observation_period ----------------------------------------------------------------------------------------
    o = ev.observation_periods
    order = np.lexsort((o["start"], o["person"]))
    o_person, o_start, o_end = o["person"][order], o["start"][order], o["end"][order]
    k = o_person.size
    out["observation_period"] = RenderedTable("observation_period", _build(spec.OBSERVATION_PERIOD, {
        "observation_period_id": ids(_row_ids(chunk_index, k)),
        "person_id": ids(pid[o_person]),
        "observation_period_start_date": dates(o_start),
        "observation_period_end_date": dates(o_end),
    }), o_person, o_start, np.full(k, -1), np.full(k, -1))

    # visit_occurrence ------------------------------------------------------------------------------------------
    v = ev.visits
    k = v["person"].size
    visit_ids = _row_ids(chunk_index, k)
    type_strings = [t for site_ in cat.SITES for t in site_.visit_type_spelling]
    out["visit_occurrence"] = RenderedTable("visit_occurrence", _build(spec.VISIT_OCCURRENCE, {
        "visit_occurrence_id": ids(visit_ids),
        "person_id": ids(pid[v["person"]]),
        "visit_type": lookup(type_strings, row_site(v["person"]) * 3 + v["type"]),
        "visit_start_date": dates(v["day"]),
        # Empty end = same day: only stays that end on another day carry an end date.
        "visit_end_date": dates(v["end_day"], v["end_day"] == v["day"]),
    }), v["person"], v["day"], np.full(k, -1), np.full(k, -1))

    def visit_column(visit: np.ndarray) -> pa.Array:
        return ids(visit_ids[np.maximum(visit, 0)] if visit_ids.size else np.zeros(visit.size, np.int64),
                   visit < 0)

    def coded(person: np.ndarray, code: np.ndarray) -> tuple[pa.Array, pa.Array]:
        i = row_site(person) * N_CODES + code
        return lookup(VOCAB_TEXT, i), lookup(CODE_TEXT, i)

    # condition_occurrence --------------------------------------------------------------------------------------
    c = ev.conditions
    k = c["person"].size
    vocab, code = coded(c["person"], c["code"])
    out["condition_occurrence"] = RenderedTable("condition_occurrence", _build(spec.CONDITION_OCCURRENCE, {
        "condition_occurrence_id": ids(_row_ids(chunk_index, k)),
        "person_id": ids(pid[c["person"]]),
        "condition_vocabulary": vocab,
        "condition_code": code,
        "condition_start_date": dates(c["day"]),
        "condition_end_date": dates(c["end_day"]),
        "visit_occurrence_id": visit_column(c["visit"]),
    }), c["person"], c["day"], c["code"], np.full(k, -1))

    # drug_exposure ---------------------------------------------------------------------------------------------
    d = ev.drugs
    k = d["person"].size
    vocab, code = coded(d["person"], d["code"])
    writes_end = np.array([s.writes_drug_end_date for s in cat.SITES])[row_site(d["person"])]
    out["drug_exposure"] = RenderedTable("drug_exposure", _build(spec.DRUG_EXPOSURE, {
        "drug_exposure_id": ids(_row_ids(chunk_index, k)),
        "person_id": ids(pid[d["person"]]),
        "drug_vocabulary": vocab,
        "drug_code": code,
        "drug_exposure_start_date": dates(d["day"]),
        "drug_exposure_end_date": dates(d["day"] + d["days_supply"] - 1, ~writes_end),
        "days_supply": numbers(d["days_supply"], pa.int32()),
        "quantity": numbers(d["quantity"], pa.float64()),
        "visit_occurrence_id": visit_column(d["visit"]),
    }), d["person"], d["day"], d["code"], np.full(k, -1))

    # measurement -----------------------------------------------------------------------------------------------
    m = ev.measurements
    k = m["person"].size
    vocab, code = coded(m["person"], m["code"])
    ms = row_site(m["person"])
    # unit per row: electrolytes by site, magnesium by its code, ABI by site.
    unit_options = ["mmol/L", "mEq/L", "mg/dL", "ratio", ""]
    electrolyte = np.array([unit_options.index(s.electrolyte_unit) for s in cat.SITES])[ms]
    abi_unit = np.array([unit_options.index(s.abi_unit) for s in cat.SITES])[ms]
    unit = np.select([(m["kind"] == SODIUM) | (m["kind"] == POTASSIUM), (m["kind"] == MAGNESIUM) & m["unit_mg_dl"],
                      m["kind"] == MAGNESIUM], [electrolyte, 2, 0], abi_unit)
    lat_strings = [s for site_ in cat.SITES for s in site_.laterality_spelling]
    is_abi = m["kind"] == ABI
    out["measurement"] = RenderedTable("measurement", _build(spec.MEASUREMENT, {
        "measurement_id": ids(_row_ids(chunk_index, k)),
        "person_id": ids(pid[m["person"]]),
        "measurement_vocabulary": vocab,
        "measurement_code": code,
        "measurement_date": dates(m["day"]),
        "value_as_number": numbers(m["value"], pa.float64()),
        "unit": lookup(unit_options, unit, np.array([u == "" for u in unit_options])[unit]),
        "laterality": lookup(lat_strings, ms * 2 + np.maximum(m["laterality"], 0), ~is_abi),
        "visit_occurrence_id": visit_column(m["visit"]),
    }), m["person"], m["day"], m["code"], m["kind"].astype(np.int64))

    # procedure_occurrence --------------------------------------------------------------------------------------
    r = ev.procedures
    k = r["person"].size
    vocab, code = coded(r["person"], r["code"])
    out["procedure_occurrence"] = RenderedTable("procedure_occurrence", _build(spec.PROCEDURE_OCCURRENCE, {
        "procedure_occurrence_id": ids(_row_ids(chunk_index, k)),
        "person_id": ids(pid[r["person"]]),
        "procedure_vocabulary": vocab,
        "procedure_code": code,
        "procedure_date": dates(r["day"]),
        "visit_occurrence_id": visit_column(r["visit"]),
    }), r["person"], r["day"], r["code"], np.full(k, -1))

    # death -----------------------------------------------------------------------------------------------------
    dead = np.flatnonzero(p["death_day"] >= 0)
    out["death"] = RenderedTable("death", _build(spec.DEATH, {
        "person_id": ids(pid[dead]),
        "death_date": dates(p["death_day"][dead]),
    }), dead, p["death_day"][dead], np.full(dead.size, -1), np.full(dead.size, -1))

    return {t.name: out[t.name] for t in spec.TABLES}


# The negative-control records' ids: chunk k's are k * ID_STRIDE + NEGATIVE_CONTROL_ID_OFFSET + 1, + 2, ..., above
# every clean and planted row id of the chunk (a chunk never has half a billion rows).
NEGATIVE_CONTROL_ID_OFFSET = ID_STRIDE // 2


# The tables negative-control records go to: the ChunkEvents field holding them, and the prefixes of the table's code
# and date columns.
NEGATIVE_CONTROL_TABLES = {
    spec.CONDITION_OCCURRENCE.name: ("negative_controls", "condition", "condition"),
    spec.DRUG_EXPOSURE.name: ("negative_control_exposures", "drug", "drug_exposure"),
}


def render_negative_control_records(ev: ChunkEvents, chunk_index: int, table: spec.Table) -> pa.Table:
    """The chunk's negative-control records as rows of `table`: the outcome controls' diagnoses as
    condition_occurrence rows, the exposure controls' fills as drug_exposure rows (with their supply, and an end date
    where the site writes one). Ids are above every clean and planted row id of the chunk; no defects are planted
    among them."""
    field_name, code_prefix, date_prefix = NEGATIVE_CONTROL_TABLES[table.name]
    c = getattr(ev, field_name)
    k = c.person.size
    site = ev.persons["site"].astype(np.int64)[c.person]
    i = site * N_CODES + c.code
    visit_ids = _row_ids(chunk_index, ev.visits["person"].size)
    visit = visit_ids[np.maximum(c.visit, 0)] if visit_ids.size else np.zeros(k, dtype=np.int64)
    columns = {
        f"{table.name}_id": ids(chunk_index * ID_STRIDE + NEGATIVE_CONTROL_ID_OFFSET + 1
                                + np.arange(k, dtype=np.int64)),
        "person_id": ids(ev.persons["person_id"][c.person]),
        f"{code_prefix}_vocabulary": lookup(VOCAB_TEXT, i),
        f"{code_prefix}_code": lookup(CODE_TEXT, i),
        f"{date_prefix}_start_date": dates(c.day),
        f"{date_prefix}_end_date": dates(np.full(k, -1, dtype=np.int64)),
        "visit_occurrence_id": ids(visit, c.visit < 0),
    }
    if table.name == spec.DRUG_EXPOSURE.name:
        writes_end = np.array([s.writes_drug_end_date for s in cat.SITES])[site]
        columns.update({
            "drug_exposure_end_date": dates(c.day + c.days_supply - 1, ~writes_end),
            "days_supply": numbers(c.days_supply, pa.int32()),
            "quantity": numbers(c.quantity, pa.float64()),
        })
    return _build(table, columns)
