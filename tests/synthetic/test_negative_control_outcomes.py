"""The generator's negative-control outcomes: the same controls and codes as the phenotype library, records that
leave every other byte of the extract alone, a truth that lists each record, a hazard that no exposure changes,
and a planted bias that multiplies it by exactly exp(b_c) from the first diuretic fill on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.phenotypes import phenotype_library
from pipelines.synthetic import catalog as cat
from pipelines.synthetic import generate_extract
from pipelines.synthetic import parameters as P
from pipelines.synthetic.generator import chunk_rng
from pipelines.synthetic.model import DAYS_PER_YEAR, FEMALE, SIMULATION_STEPS, ChunkSimulation
from pipelines.synthetic.negative_controls import (_segments, negative_control_rng, planted_log_hr_biases,
                                                   simulate_negative_controls)
from pipelines.synthetic.render import NEGATIVE_CONTROL_ID_OFFSET
from tests.support.icd10cm_reference import icd10cm
from tests.support.paths import REPO_ROOT

CONTROLS_FOLDER = REPO_ROOT / "phenotypes" / "negative_controls"


def _control_definitions():
    return {p.id: p.definition for p in phenotype_library()
            if (REPO_ROOT / p.source_file).resolve().parent == CONTROLS_FOLDER.resolve()}


def _matches(definition, code: str) -> bool:
    """Whether an ICD-10-CM code (with its dot) counts for a phenotype, as the library's code groups say."""
    def in_groups(groups) -> bool:
        for group in groups:
            if group.vocabulary != "ICD10CM":
                continue
            if any(code == listed or (group.match == "prefix" and code.startswith(listed)) for listed in group.codes):
                return True
        return False
    return in_groups(definition.codes) and not in_groups(definition.exclude_codes)


def test_the_generator_lists_the_controls_of_the_phenotype_library_itself():
    """The generator keeps its own list (an independent oracle); the two lists must name the same controls."""
    definitions = _control_definitions()
    assert len(definitions) == 22
    assert set(cat.NEGATIVE_CONTROL_IDS) == set(definitions) == set(P.NEGATIVE_CONTROL_OUTCOMES)


def test_each_generated_control_code_exists_and_counts_for_its_control_and_no_other_phenotype():
    library = {p.id: p.definition for p in phenotype_library()}
    for control in cat.NEGATIVE_CONTROL_IDS:
        for code, weight in cat.NEGATIVE_CONTROL_CODES[control].icd:
            assert code.vocabulary == cat.ICD and weight > 0
            assert icd10cm().is_valid_item(code.code) and icd10cm().is_leaf(code.code), code.code  # a billable CMS code
            assert code.phenotypes == (control,)
            counted_by = {pid for pid, definition in library.items() if _matches(definition, code.code)}
            assert counted_by == {control}, (code.code, counted_by)


def _condition_rows(folder: Path, fmt: str):
    if fmt == "parquet":
        return pq.read_table(folder / "condition_occurrence.parquet")
    return (folder / "condition_occurrence.csv").read_bytes()


@pytest.mark.parametrize("fmt, workers", [("csv", 2), ("parquet", 1)])
def test_the_records_are_appended_and_every_other_row_keeps_its_bytes(tmp_path, fmt, workers):
    """Three chunks, with and without the controls (and with worker processes, through part files): every table
    but condition_occurrence is byte-identical, and condition_occurrence is the same rows followed by the controls'
    (in CSV, the file without them is a prefix of the file with them: every row keeps its line)."""
    options = dict(seed=9, fmt=fmt, chunk_size=400, progress=False)
    without = generate_extract(tmp_path / "without", 1000, negative_controls=False, workers=1, **options)
    with_controls = generate_extract(tmp_path / "with", 1000, workers=workers, **options)
    assert "negative_controls" not in without and "negative_control_exposures" not in without
    added = sum(o["persons"] for o in with_controls["negative_controls"]["outcomes"])
    assert added > 1000
    fills = with_controls["rows_written"]["drug_exposure"] - without["rows_written"]["drug_exposure"]
    users = {e["phenotype_id"]: e["persons"] for e in with_controls["negative_control_exposures"]["exposures"]}
    assert set(users) == set(cat.NEGATIVE_CONTROL_DRUG_IDS) and min(users.values()) > 30
    assert fills >= sum(users.values())  # at least one fill per user
    for name, rows in without["rows_written"].items():
        extra = {"condition_occurrence": added, "drug_exposure": fills}.get(name, 0)
        assert with_controls["rows_written"][name] == rows + extra, name
        assert with_controls["rejects_planted"][name] == without["rejects_planted"][name]
    assert with_controls["implausible_planted"] == without["implausible_planted"]
    assert with_controls["phenotype_persons"] == without["phenotype_persons"]
    for path in (tmp_path / "without").iterdir():
        if path.is_file() and not path.name.startswith(("condition_occurrence", "drug_exposure", "_manifest")):
            assert path.read_bytes() == (tmp_path / "with" / path.name).read_bytes(), path.name
    for name in ("persons.parquet",):
        assert (tmp_path / "without" / "_truth" / name).read_bytes() == (tmp_path / "with" / "_truth" / name
                                                                         ).read_bytes()
    old, new = _condition_rows(tmp_path / "without", fmt), _condition_rows(tmp_path / "with", fmt)
    if fmt == "parquet":
        assert new.slice(0, old.num_rows).equals(old)
        appended = new.slice(old.num_rows)
        ids = np.array(appended.column("condition_occurrence_id").to_pylist(), dtype=np.int64)
    else:
        assert new.startswith(old) and len(new) > len(old)
        lines = new[len(old):].decode().splitlines()
        ids = np.array([int(line.split(",")[0]) for line in lines], dtype=np.int64)
    assert ids.size == added
    assert ((ids % 10**9) > NEGATIVE_CONTROL_ID_OFFSET).all()  # above every other row id of its chunk
    assert np.unique(ids).size == ids.size
    # The control drugs' fills: appended to drug_exposure after every other row, ids above every other row id.
    if fmt == "parquet":
        old = pq.read_table(tmp_path / "without" / "drug_exposure.parquet")
        new = pq.read_table(tmp_path / "with" / "drug_exposure.parquet")
        assert new.slice(0, old.num_rows).equals(old)
        appended = new.slice(old.num_rows)
        fill_ids = np.array(appended.column("drug_exposure_id").to_pylist(), dtype=np.int64)
        codes = set(appended.column("drug_code").to_pylist())
    else:
        old = (tmp_path / "without" / "drug_exposure.csv").read_bytes()
        new = (tmp_path / "with" / "drug_exposure.csv").read_bytes()
        assert new.startswith(old) and len(new) > len(old)
        lines = [line.split(",") for line in new[len(old):].decode().splitlines()]
        fill_ids = np.array([int(line[0]) for line in lines], dtype=np.int64)
        codes = {line[3] for line in lines}
    assert fill_ids.size == fills and np.unique(fill_ids).size == fills
    assert ((fill_ids % 10**9) > NEGATIVE_CONTROL_ID_OFFSET).all()
    assert codes <= {c.code for s in cat.NEGATIVE_CONTROL_DRUGS.values() for c in s.codes()}
    manifest = json.loads((tmp_path / "with" / "_manifest.json").read_text())
    assert manifest["negative_controls"] is True
    assert "_truth/negative_controls.parquet" in {f["file"] for f in manifest["files"]}


@pytest.fixture(scope="module")
def loaded_controls(generated_extract):
    """A 2,000-person CSV extract through the real ingest and phenotype stage."""
    from pipelines.ingest.loader import load_extract
    from pipelines.phenotypes import run_phenotypes

    extract = generated_extract(2000, 4)
    con = duckdb.connect()
    load_extract(con, extract.path)
    run_phenotypes(con)
    yield extract, con
    con.close()


def test_the_phenotypes_find_exactly_the_planted_first_records(loaded_controls):
    """The library's 22 control phenotypes on the generated records give the truth file's persons and dates, and
    each count in the truth JSON."""
    extract, con = loaded_controls
    truth_file = extract.path / "_truth" / "negative_controls.parquet"
    planted = set(con.execute(f"SELECT person_id, control, first_date FROM read_parquet('{truth_file}')").fetchall())
    found = set(con.execute("SELECT person_id, phenotype_id, first_date FROM phenotype.person_summary "
                            "WHERE list_contains($controls, phenotype_id)",
                            {"controls": list(cat.NEGATIVE_CONTROL_IDS)}).fetchall())
    assert found == planted
    persons = {o["phenotype_id"]: o["persons"] for o in extract.truth["negative_controls"]["outcomes"]}
    counted = dict(con.execute(f"SELECT control, count(*) FROM read_parquet('{truth_file}') GROUP BY ALL").fetchall())
    assert persons == {c: counted.get(c, 0) for c in cat.NEGATIVE_CONTROL_IDS}
    assert min(persons[c] for c in ("impacted_cerumen", "seborrheic_keratosis", "presbyopia")) > 100
    # Women only where the control is a women's condition.
    sexes = con.execute(f"""SELECT DISTINCT t.control, p.sex FROM read_parquet('{truth_file}') t
                            JOIN staging.person p USING (person_id)
                            WHERE t.control IN ('endometriosis', 'vaginitis_and_vulvitis')""").fetchall()
    assert {sex for _, sex in sexes} == {"F"}


def test_records_fall_in_observation_and_link_only_to_a_visit_on_their_day(loaded_controls):
    _, con = loaded_controls
    rows = con.execute(f"""
        SELECT count(*) AS records,
               count(*) FILTER (WHERE v.visit_occurrence_id IS NOT NULL) AS linked,
               count(*) FILTER (WHERE v.visit_occurrence_id IS NOT NULL
                                  AND v.visit_start_date <> c.condition_start_date) AS linked_elsewhere,
               count(*) FILTER (WHERE NOT EXISTS (
                   SELECT 1 FROM staging.observation_period o WHERE o.person_id = c.person_id
                   AND c.condition_start_date BETWEEN o.observation_period_start_date
                                                   AND o.observation_period_end_date)) AS outside
        FROM staging.condition_occurrence c LEFT JOIN staging.visit_occurrence v USING (visit_occurrence_id)
        WHERE CAST(c.condition_occurrence_id AS BIGINT) % 1000000000 > {NEGATIVE_CONTROL_ID_OFFSET}""").fetchone()
    records, linked, linked_elsewhere, outside = rows
    assert records > 3000 and 0 < linked < records
    assert linked_elsewhere == 0 and outside == 0


def _observed_over_expected(log_hr: float, sd: float, patients: int = 12_000, seed: int = 21):
    """Simulate one chunk with a planted bias; per control, onsets observed over expected (the model's own hazard
    integrated over each person's days at risk) in exposed time (from the first thiazide or thiazide-like fill) and
    in unexposed time."""
    sim = ChunkSimulation(chunk_rng(seed, 0), patients, 1)
    sim.simulate(through=SIMULATION_STEPS[-1])
    events = sim.assemble()
    bias = P.NegativeControlBias(log_hr, sd)
    planted = planted_log_hr_biases(seed, bias)
    rows = simulate_negative_controls(sim, events.visits, negative_control_rng(seed, 0), planted, bias.exposures)
    exposed_from = np.full(patients, -1, dtype=np.int64)
    for drug in bias.exposures:
        first = sim.drug_first_fill[drug]
        exposed_from = np.where((first >= 0) & ((exposed_from < 0) | (first < exposed_from)), first, exposed_from)
    start, end, exposed = _segments(sim, exposed_from)
    age_mid = (sim.age_start + sim.age_end) / 2
    out = {}
    for control, first_day in rows.first_day.items():
        spec = P.NEGATIVE_CONTROL_OUTCOMES[control]
        yearly = spec.rate60_per_year * np.exp(spec.log_rate_slope_per_10_years * (age_mid - 60) / 10)
        if spec.female_only:
            yearly = np.where(sim.sex == FEMALE, yearly, 0.0)
        last = np.where(first_day >= 0, first_day, np.iinfo(np.int64).max)[:, None]  # at risk through the onset
        days_at_risk = np.maximum(np.minimum(end, last) - start + 1, 0)
        expected = (yearly / DAYS_PER_YEAR)[:, None] * days_at_risk
        onset_exposed = first_day >= 0
        onset_exposed[onset_exposed] = (exposed_from[onset_exposed] >= 0) & (
            first_day[onset_exposed] >= exposed_from[onset_exposed])
        out[control] = {"observed_exposed": int(onset_exposed.sum()),
                        "observed_unexposed": int(((first_day >= 0) & ~onset_exposed).sum()),
                        "expected_exposed": float(expected[exposed].sum()),
                        "expected_unexposed": float(expected[~exposed].sum()), "planted": planted[control]}
    return out


def _ratio_and_tolerance(observed: float, expected: float) -> tuple[float, float]:
    return observed / expected, 4 * math.sqrt(observed) / expected  # 4 Poisson standard errors


def test_without_a_bias_the_control_hazard_is_the_same_with_and_without_exposure():
    counts = _observed_over_expected(0.0, 0.0)
    for key in ("exposed", "unexposed"):
        observed = sum(c[f"observed_{key}"] for c in counts.values())
        ratio, tolerance = _ratio_and_tolerance(observed, sum(c[f"expected_{key}"] for c in counts.values()))
        assert abs(ratio - 1) < tolerance, (key, ratio, tolerance)
    assert sum(c["observed_exposed"] for c in counts.values()) > 1000  # enough exposed time to see an effect


def test_a_planted_bias_multiplies_each_controls_hazard_by_exp_b_in_exposed_time_only():
    counts = _observed_over_expected(math.log(2.0), 0.3)
    observed = sum(c["observed_unexposed"] for c in counts.values())
    ratio, tolerance = _ratio_and_tolerance(observed, sum(c["expected_unexposed"] for c in counts.values()))
    assert abs(ratio - 1) < tolerance
    # Exposed: observed / (expected x exp(b_c)) is 1 for the controls together, and each control with enough events
    # is near its own exp(b_c), which differs between controls (sd 0.3).
    observed = sum(c["observed_exposed"] for c in counts.values())
    ratio, tolerance = _ratio_and_tolerance(
        observed, sum(c["expected_exposed"] * math.exp(c["planted"]) for c in counts.values()))
    assert abs(ratio - 1) < tolerance
    for control, c in counts.items():
        if c["observed_exposed"] >= 200:
            ratio, tolerance = _ratio_and_tolerance(c["observed_exposed"], c["expected_exposed"])
            assert abs(ratio - math.exp(c["planted"])) < tolerance, control


def test_the_planted_biases_are_log_hr_plus_sd_times_one_normal_draw_per_control_and_extract():
    low = planted_log_hr_biases(5, P.NegativeControlBias(0.4, 0.1))
    high = planted_log_hr_biases(5, P.NegativeControlBias(-0.2, 0.3))
    z_low = np.array([(low[c] - 0.4) / 0.1 for c in cat.NEGATIVE_CONTROL_IDS])
    z_high = np.array([(high[c] + 0.2) / 0.3 for c in cat.NEGATIVE_CONTROL_IDS])
    assert np.allclose(z_low, z_high) and z_low.std() > 0.5
    assert planted_log_hr_biases(6, P.NegativeControlBias(0.4, 0.1)) != low
    assert set(planted_log_hr_biases(5, P.NO_NEGATIVE_CONTROL_BIAS).values()) == {0.0}


def test_the_truth_records_the_bias_and_the_estimand(tmp_path):
    truth = generate_extract(tmp_path / "x", 300, seed=2, progress=False, workers=1,
                             negative_control_bias=0.5, negative_control_bias_sd=0.2)
    section = truth["negative_controls"]
    assert section["bias"]["log_hr"] == 0.5 and section["bias"]["sd"] == 0.2 and section["bias"]["planted"]
    assert section["bias"]["exposures"] == ["thiazide_diuretics", "thiazide_like_diuretics"]
    planted = planted_log_hr_biases(2, P.NegativeControlBias(0.5, 0.2))
    for outcome in section["outcomes"]:
        assert outcome["causal_hazard_ratio"] == 1.0
        assert outcome["planted_log_hr_bias"] == planted[outcome["phenotype_id"]]
        assert outcome["observed_hazard_ratio_from_bias_exposure_start"] == pytest.approx(
            math.exp(planted[outcome["phenotype_id"]]))
    assert json.loads((tmp_path / "x" / "_truth" / "ground_truth.json").read_text())["negative_controls"] == section


def test_cli_options_and_refusals(tmp_path):
    from pipelines.synthetic.cli import parse_args

    args = parse_args(["--patients", "5", "--out", "x"])
    assert args.negative_controls is True and args.negative_control_bias == (0.0, 0.0)
    assert parse_args(["--patients", "5", "--out", "x", "--negative-control-bias", "0.5,0.2"]
                      ).negative_control_bias == (0.5, 0.2)
    assert parse_args(["--patients", "5", "--out", "x", "--negative-control-bias", "-0.3"]
                      ).negative_control_bias == (-0.3, 0.0)
    assert parse_args(["--patients", "5", "--out", "x", "--no-negative-controls"]).negative_controls is False
    for bad in (["--negative-control-bias", "0.5,-1"], ["--negative-control-bias", "a"],
                ["--no-negative-controls", "--negative-control-bias", "0.5"]):
        with pytest.raises(SystemExit):
            parse_args(["--patients", "5", "--out", "x", *bad])
    with pytest.raises(ValueError, match="needs negative_controls=True"):
        generate_extract(tmp_path / "y", 10, negative_controls=False, negative_control_bias=0.5, progress=False)


def test_the_negative_control_drugs_are_the_library_s_with_its_codes_and_the_cramp_hazard_ignores_them():
    """The generator's control drugs are the phenotype library's negative-control exposures, each written with the
    phenotype's own ATC and RxNorm codes, and every cramp-hazard input is the same with and without their fills (the
    simulation of a chunk ends before they are drawn, from a stream of their own): their true hazard ratio is 1."""
    from pipelines.synthetic.model import simulate_chunk
    from pipelines.synthetic.negative_control_exposures import negative_control_exposure_rng

    library = {p.id: p for p in phenotype_library()}
    folder = REPO_ROOT / "phenotypes" / "negative_control_exposures"
    defined = {pid for pid, p in library.items() if (REPO_ROOT / p.source_file).resolve().parent == folder.resolve()}
    assert set(cat.NEGATIVE_CONTROL_DRUG_IDS) == defined == set(P.NEGATIVE_CONTROL_EXPOSURES)
    for drug, substance in cat.NEGATIVE_CONTROL_DRUGS.items():
        listed = {(g.vocabulary, c) for g in library[drug].definition.codes for c in g.codes}
        assert {(c.vocabulary, c.code) for c in substance.codes()} <= listed, drug
        assert substance.codes()[0].phenotypes == (drug,)
    plain = simulate_chunk(chunk_rng(3, 0), 600, 1)
    with_fills = simulate_chunk(chunk_rng(3, 0), 600, 1, control_exposure_rng=negative_control_exposure_rng(3, 0))
    assert plain.negative_control_exposures is None and with_fills.negative_control_exposures.person.size > 0
    for name, days in plain.latent.items():
        assert np.array_equal(days, with_fills.latent[name]), name
    for key in plain.drugs:
        assert np.array_equal(plain.drugs[key], with_fills.drugs[key]), key
