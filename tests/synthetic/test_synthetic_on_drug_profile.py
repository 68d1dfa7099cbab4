"""The generator's "on_drug" effects profile plants what its truth says, and the older profiles are unchanged.

- Byte identity: the default and sequence_symmetry profiles write the same files as before the on_drug profile
  existed (hashes recorded from main's generator, 300 persons, seed 1, CSV).
- On a 20,000-person on_drug extract, computed in SQL on the written files: cramp incidence among users of a
  large-effect drug is near the planted hazard ratio while on drug and near 1 for a null drug; low magnesium acts in
  6-week windows that start at low results in measurement; magnesium tests concentrate after the cramp onset
  (detection bias); and cramp cases are the frail (depletion of susceptibles).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from pipelines.sql_quoting import quote_literal
from pipelines.synthetic import generate_extract
from pipelines.synthetic import parameters as P
from pipelines.synthetic.cli import parse_args

# sha256 of every file written by `legcramp-generate --patients 300 --seed 1 --out DIR [--effects PROFILE]`,
# recorded with main's generator (commit 09f9440) before the on_drug profile was added; drug_exposure.csv and the
# truth re-recorded for generator 1.5.0 (RxNorm CUIs read from drug_ingredients.csv, the quinine_start rule's text).
MAIN_HASHES = {
    "default": {
        "_manifest.json": "484d3b47c1ade96b145a06e290e08a78c6a2095de560088638d7481e03daccec",
        "_truth/ground_truth.json": "f325de27714d25ddb9cecbcba00c7d8d9edf69c31a5cede96ea08a9f828575f6",
        "_truth/persons.parquet": "ad72adfde9b802ddd4ade81327c80c3fe646283d1d57c4774b691f6b9e9558c6",
        "condition_occurrence.csv": "5696c036bf523e594226f1b7d2b146f153c9107956311e11fce4c4a7a53206a1",
        "death.csv": "a28260173d5cfea4f2f120e8448dfbb854f39c1cf5cf1b9c7a3e0e4b7b186f15",
        "drug_exposure.csv": "d3db7d61bb81a2d5adb612c1cfdeec22b5c76cc22a5250e367fb97e337772c16",
        "measurement.csv": "67796859aeac33d51536d45c68c5718bf8fea57172580ce6e3a4b9eb83fb5ae2",
        "observation_period.csv": "2303c1ba0d641b79a4398e5b88a29960ab19af1a7d84dd1a82b6e60893673130",
        "person.csv": "a2cf3e980c789e16ea6a8d01ef60042156c29424674d5b5fc1cd36e9d5305b2e",
        "procedure_occurrence.csv": "9d4dca3756c99dbf92cdd4ff7765cc2811adc5a6871e411d93f540aa6427e4f1",
        "visit_occurrence.csv": "ad564e6ecf3d3fc37fa64107581cda0fe4e85d4846dc9ab7b5de29d9520c2761",
    },
    "sequence_symmetry": {
        "_manifest.json": "c6824fec5bf43d973ad518cb7b2b5266cd2769a3a11ea389c235efeedd86c13d",
        "_truth/ground_truth.json": "4730ab56a6d645c7100af7bf1e27e3e92f0659623df387e78505b448804d71f8",
        "_truth/persons.parquet": "1dacde0381dc3918424c9642dcf49b2c7a08dadbc4a145c41f3ef63fc8d8e7de",
        "condition_occurrence.csv": "f8002952fe660b80678e2920e7e6bd4dc9d7e86e03852e3348b454badaa7740f",
        "death.csv": "a28260173d5cfea4f2f120e8448dfbb854f39c1cf5cf1b9c7a3e0e4b7b186f15",
        "drug_exposure.csv": "9f78437a4b77de90b95a7a7c5e30ddf094e4e49de844a35e1b2b5bc1bedcfda7",
        "measurement.csv": "d1110169589a911dc9e2235f2e803c58195e9bd15ed30f1fb8ca8243a78b7f2c",
        "observation_period.csv": "f7d812ec1a42047e1753cdeae812baa5feb6579cfee0d171fc83936e990206e1",
        "person.csv": "a2cf3e980c789e16ea6a8d01ef60042156c29424674d5b5fc1cd36e9d5305b2e",
        "procedure_occurrence.csv": "a0323dff30b2c1548e698d90355fd7656af27b3926c5b77844be4145c99ddeb6",
        "visit_occurrence.csv": "b07d570abe73c5f1ddff5965d3e0eb050f64afc51cc530759879489249b1aa86",
    },
}

PERSONS = 20_000
MAGNESIUM_CODES = ("19123-9", "2601-3")  # LOINC mg/dL and mmol/L


def _file_hashes(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


# The generator version these hashes were taken with (it is written into the truth and the manifest).
MAIN_HASHES_VERSION = "1.2.0"


@pytest.mark.parametrize("profile", sorted(MAIN_HASHES))
def test_older_profiles_write_the_same_bytes_as_before(tmp_path, profile):
    """Without the negative controls every file is as before (the truth but for the generator version, the manifest
    being their hashes); with them (the default) every table but condition_occurrence and drug_exposure is, and
    those two are the files as before followed by the controls' rows."""
    generate_extract(tmp_path / "without", 300, seed=1, effects_profile=profile, progress=False, workers=1,
                     negative_controls=False)
    hashes = _file_hashes(tmp_path / "without")
    truth = json.loads((tmp_path / "without" / "_truth" / "ground_truth.json").read_text())
    truth["generator"]["version"] = MAIN_HASHES_VERSION
    hashes["_truth/ground_truth.json"] = hashlib.sha256((json.dumps(truth, indent=2) + "\n").encode()).hexdigest()
    unchanged = {name: digest for name, digest in MAIN_HASHES[profile].items() if name != "_manifest.json"}
    assert {name: hashes[name] for name in unchanged} == unchanged
    generate_extract(tmp_path / "with", 300, seed=1, effects_profile=profile, progress=False, workers=1)
    hashes = _file_hashes(tmp_path / "with")
    tables = {name: digest for name, digest in unchanged.items()
              if not name.startswith(("_truth/ground_truth", "condition_occurrence", "drug_exposure"))}
    assert {name: hashes[name] for name in tables} == tables
    # The controls' records and fills are appended: the files as before are a prefix of the files with them.
    for name in ("condition_occurrence.csv", "drug_exposure.csv"):
        before = (tmp_path / "without" / name).read_bytes()
        after = (tmp_path / "with" / name).read_bytes()
        assert after.startswith(before) and len(after) > len(before), name


@pytest.fixture(scope="module")
def on_drug(tmp_path_factory) -> tuple[Path, dict, duckdb.DuckDBPyConnection]:
    out = tmp_path_factory.mktemp("on_drug")
    truth = generate_extract(out, PERSONS, seed=3, fmt="parquet", defect_rate=0.0, effects_profile="on_drug",
                             progress=False)
    con = duckdb.connect()
    for name, file in (("persons", out / "_truth" / "persons.parquet"),
                       ("intervals", out / "_truth" / "exposure_intervals.parquet"),
                       ("measurement", out / "measurement.parquet")):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({quote_literal(str(file))})")
    return out, truth, con


def test_cli_offers_the_on_drug_profile():
    assert parse_args(["--patients", "5", "--out", "x", "--effects", "on_drug"]).effects_profile == "on_drug"


def test_truth_states_each_estimand(on_drug):
    out, truth, _ = on_drug
    assert truth["generator"]["effects_profile"] == "on_drug"
    assert truth["exposure_dynamics"]["transient_state_days"] == P.EXPOSURE_DYNAMICS["on_drug"].transient_state_days
    effects = {e["exposure"]: e for e in truth["effects"]}
    assert set(effects) == set(P.CRAMP_EFFECTS)
    for exposure, (hr, _) in P.CRAMP_EFFECTS.items():
        estimands = effects[exposure]["estimands"]
        assert estimands["on_treatment_hazard_ratio"] == hr
        itt = estimands["intention_to_treat_rate_ratio"]
        if hr == 1.0:
            assert itt == 1.0
        elif exposure in P.DRUGS or exposure in P.TRANSIENT_EXPOSURES:
            # Users spend much of their follow-up off drug: the ITT ratio lies strictly between 1 and the HR.
            assert 1.0 < itt < 1.0 + 0.7 * (hr - 1.0), exposure
        else:  # a chronic condition acts for the whole follow-up
            assert itt == pytest.approx(hr, rel=1e-9)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert "_truth/exposure_intervals.parquet" in {f["file"] for f in manifest["files"]}


def _users_rate_ratio(con: duckdb.DuckDBPyConnection, exposure: str) -> tuple[float, int, int]:
    """Among persons ever exposed: cramp onsets per person-day while the exposure acts / while it does not."""
    row = con.execute("""
        WITH users AS (
            SELECT p.person_id, p.cramp_onset_date AS onset,
                   GREATEST(p.observation_first_start, DATE '2012-01-01') AS t0,
                   LEAST(p.observation_last_end, COALESCE(p.cramp_onset_date, p.observation_last_end)) AS t1
            FROM persons p WHERE p.person_id IN (SELECT person_id FROM intervals WHERE exposure = $exposure)
        ), on_drug AS (
            SELECT u.person_id,
                   SUM(GREATEST(0, LEAST(i.end_date, u.t1) - GREATEST(i.start_date, u.t0) + 1)) AS days_on,
                   BOOL_OR(u.onset BETWEEN i.start_date AND i.end_date) AS onset_on
            FROM users u JOIN intervals i ON i.person_id = u.person_id AND i.exposure = $exposure
            GROUP BY u.person_id
        )
        SELECT COUNT(*) FILTER (WHERE o.onset_on) AS events_on,
               COUNT(u.onset) FILTER (WHERE NOT o.onset_on) AS events_off,
               SUM(o.days_on) AS days_on, SUM(u.t1 - u.t0 + 1) - SUM(o.days_on) AS days_off
        FROM users u JOIN on_drug o USING (person_id)""", {"exposure": exposure}).fetchone()
    events_on, events_off, days_on, days_off = row
    return (events_on / days_on) / (events_off / days_off), events_on, events_off


def test_a_drug_acts_only_while_on_drug(on_drug):
    _, truth, con = on_drug
    ratio, events_on, events_off = _users_rate_ratio(con, "long_acting_beta2_agonists")
    # Planted on-drug HR 2.42; 95% interval of the estimate about x/÷ 1.45 at these counts. Had the effect acted
    # from the first fill on, the off-drug time after a stop would carry it too and the ratio would be near 1.3.
    assert events_on >= 30 and events_off >= 30
    assert 1.8 < ratio < 3.6
    itt = next(e["estimands"]["intention_to_treat_rate_ratio"] for e in truth["effects"]
               if e["exposure"] == "long_acting_beta2_agonists")
    assert ratio > itt
    null_ratio, _, _ = _users_rate_ratio(con, "calcium_channel_blockers")
    assert 0.7 < null_ratio < 1.6


def test_users_stop_and_restart(on_drug):
    _, _, con = on_drug
    users, eras, long_users = con.execute("""
        SELECT COUNT(DISTINCT person_id), COUNT(*),
               COUNT(DISTINCT person_id) FILTER (WHERE end_date - start_date >= 3 * 365)
        FROM intervals WHERE exposure = 'statins'""").fetchone()
    assert 1.5 < eras / users < 3.5  # stops, and restarts after gaps
    assert long_users < 0.1 * users


def test_low_magnesium_acts_in_six_week_windows_from_each_low_result(on_drug):
    _, _, con = on_drug
    days = P.EXPOSURE_DYNAMICS["on_drug"].transient_state_days
    windows, unmatched_starts, shorter = con.execute("""
        WITH low AS (
            SELECT DISTINCT person_id, measurement_date AS day FROM measurement
            WHERE measurement_code IN (SELECT UNNEST($codes))
              AND value_as_number < CASE WHEN unit = 'mg/dL' THEN 0.70 * 2.4305 ELSE 0.70 END
        )
        SELECT COUNT(*),
               COUNT(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM low l WHERE l.person_id = i.person_id
                                                                          AND l.day = i.start_date)),
               COUNT(*) FILTER (WHERE i.end_date - i.start_date + 1 < $days)
        FROM intervals i WHERE i.exposure = 'hypomagnesemia_lab'""",
                                                      {"codes": list(MAGNESIUM_CODES), "days": days}).fetchone()
    assert windows > 100
    assert unmatched_starts == 0 and shorter == 0


def test_magnesium_tests_concentrate_after_the_cramp_onset(on_drug):
    _, _, con = on_drug
    within = P.EXPOSURE_DYNAMICS["on_drug"].workup_within_days
    after, before = con.execute("""
        WITH tests AS (
            SELECT DISTINCT m.person_id, m.measurement_date AS day, p.cramp_onset_date AS onset
            FROM measurement m JOIN persons p USING (person_id)
            WHERE m.measurement_code IN (SELECT UNNEST($codes)) AND p.cramp_onset_date IS NOT NULL
        )
        SELECT COUNT(*) FILTER (WHERE day BETWEEN onset AND onset + $within),
               COUNT(*) FILTER (WHERE day BETWEEN onset - 365 AND onset - 1)
        FROM tests""", {"codes": list(MAGNESIUM_CODES), "within": within}).fetchone()
    per_day_after = after / (within + 1)
    per_day_before = before / 365
    assert per_day_after > 10 * per_day_before


def test_the_frail_get_their_cramp(on_drug):
    _, _, con = on_drug
    mean_all, variance, mean_cases = con.execute("""
        SELECT AVG(cramp_frailty), VAR_SAMP(cramp_frailty),
               AVG(cramp_frailty) FILTER (WHERE cramp_onset_date IS NOT NULL)
        FROM persons""").fetchone()
    assert mean_all == pytest.approx(1.0, abs=0.03)
    assert variance == pytest.approx(P.EXPOSURE_DYNAMICS["on_drug"].frailty_variance, rel=0.1)
    # With gamma frailty of variance 1 and small cumulative hazards, cases have mean frailty near 1 + variance.
    assert mean_cases > 1.6
