"""Tests of the synthetic extract generator (pipelines/synthetic): determinism, layout, codes, truth, defects.

The truth checks recompute phenotypes independently with DuckDB over the written CSV files, treating the files the
way a correct ingest would (reject rows per extract_spec.REJECT_REASONS, keep the implausible rows).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipelines import extract_spec as spec  # noqa: E402
from pipelines.synthetic.parameters import THRESHOLD_MARGIN_RELATIVE
from pipelines.synthetic import catalog as cat  # noqa: E402
from pipelines.synthetic import generate_extract  # noqa: E402
from pipelines.synthetic.defects import IMPLAUSIBLE_BY_TABLE, rejectable_reasons  # noqa: E402
from pipelines.synthetic.generator import chunk_rng  # noqa: E402
from pipelines.synthetic.model import DATA_END_DAY, DATA_START_DAY, ChunkSimulation  # noqa: E402
from pipelines.synthetic.parameters import CRAMP_EFFECTS_PROFILES  # noqa: E402
from tests.support.icd10cm_reference import icd10cm  # noqa: E402

PATIENTS = 1500


def _manifest_hashes(folder: Path) -> dict[str, str]:
    manifest = json.loads((folder / "_manifest.json").read_text())
    return {f["file"]: f["sha256"] for f in manifest["files"]}


@pytest.fixture(scope="module")
def extract(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("csv42")
    truth = generate_extract(out, PATIENTS, seed=42, fmt="csv", chunk_size=700, progress=False, workers=1)
    return out, truth


@pytest.fixture(scope="module")
def defect_heavy(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("defects")
    truth = generate_extract(out, 1000, seed=7, fmt="csv", defect_rate=0.05, progress=False, workers=1)
    return out, truth


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET threads = 1")  # row_number() OVER () then follows the file order
    return con


def load_tables(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """Load every CSV the way the ingest should: all text, malformed lines skipped, then each rejectable row dropped
    (missing required field, unparseable date or number, repeated primary key, unknown person)."""
    for table in spec.TABLES:
        columns = ", ".join(f"'{c}': 'VARCHAR'" for c in table.column_names)
        con.execute(f"""
            CREATE TABLE raw_{table.name} AS
            SELECT *, row_number() OVER () AS line
            FROM read_csv('{folder / (table.name + '.csv')}', header = true, auto_detect = false,
                          columns = {{{columns}}}, delim = ',', quote = '"', ignore_errors = true)""")
        checks = [f"{c} IS NOT NULL" for c in table.required_columns]
        for c in table.columns:
            if c.type == "DATE":
                checks.append(f"({c.name} IS NULL OR try_strptime({c.name}, '%Y-%m-%d') IS NOT NULL)")
            elif c.type in ("INTEGER", "DOUBLE"):
                checks.append(f"({c.name} IS NULL OR try_cast({c.name} AS DOUBLE) IS NOT NULL)")
        con.execute(f"""
            CREATE TABLE parsed_{table.name} AS SELECT * FROM raw_{table.name} WHERE {' AND '.join(checks)}
            QUALIFY row_number() OVER (PARTITION BY {table.primary_key} ORDER BY line) = 1""")
    for table in spec.TABLES:
        where = "TRUE" if not table.references_person else "person_id IN (SELECT person_id FROM parsed_person)"
        con.execute(f"CREATE TABLE {table.name} AS SELECT * FROM parsed_{table.name} WHERE {where}")


@pytest.fixture(scope="module")
def loaded(extract) -> duckdb.DuckDBPyConnection:
    folder, _ = extract
    con = _con()
    load_tables(con, folder)
    con.execute(f"CREATE TABLE truth AS SELECT * FROM read_parquet('{folder / '_truth' / 'persons.parquet'}')")
    return con


# ------------------------------------------------------------------------------------------------ determinism
def test_same_seed_gives_identical_files(extract, tmp_path):
    folder, _ = extract
    again = tmp_path / "again"
    generate_extract(again, PATIENTS, seed=42, fmt="csv", chunk_size=700, progress=False, workers=2)
    assert _manifest_hashes(again) == _manifest_hashes(folder)
    assert (again / "_manifest.json").read_bytes() == (folder / "_manifest.json").read_bytes()


def test_different_seed_gives_different_files(extract, tmp_path):
    folder, _ = extract
    other = tmp_path / "other"
    generate_extract(other, PATIENTS, seed=43, fmt="csv", chunk_size=700, progress=False, workers=1)
    a, b = _manifest_hashes(folder), _manifest_hashes(other)
    for table in ("person", "condition_occurrence", "drug_exposure", "measurement"):
        assert a[f"{table}.csv"] != b[f"{table}.csv"]


@pytest.mark.parametrize("fmt", ["parquet", "csv.gz"])
def test_other_formats_are_deterministic_and_complete(tmp_path, fmt):
    a = generate_extract(tmp_path / "a", 600, seed=5, fmt=fmt, defect_rate=0.02, progress=False, workers=1)
    generate_extract(tmp_path / "b", 600, seed=5, fmt=fmt, defect_rate=0.02, progress=False, workers=1)
    assert _manifest_hashes(tmp_path / "a") == _manifest_hashes(tmp_path / "b")
    for table in spec.TABLES:
        path = tmp_path / "a" / f"{table.name}.{fmt}"
        if fmt == "parquet":
            assert pq.ParquetFile(path).metadata.num_rows == a["rows_written"][table.name]
            assert tuple(pq.read_schema(path).names) == table.column_names
        else:
            import gzip
            with gzip.open(path, "rt") as f:
                lines = f.read().splitlines()
            assert lines[0] == ",".join(table.column_names)
            assert len(lines) - 1 == a["rows_written"][table.name]
    if fmt == "parquet":  # text-only reasons cannot exist in Parquet
        for table, reasons in a["rejects_planted"].items():
            for reason in ("malformed_line", "unparseable_date", "unparseable_number"):
                assert reasons[reason] == 0


# ------------------------------------------------------------------------------------------------ layout
def test_files_follow_the_spec_and_row_counts(extract):
    folder, truth = extract
    assert set(truth) >= {"generator", "rows_written", "rejects_planted", "clean_rows", "implausible_planted",
                          "phenotype_persons", "effects", "baseline_hazard", "distractor_codes", "study_calendar"}
    manifest = json.loads((folder / "_manifest.json").read_text())
    by_file = {f["file"]: f for f in manifest["files"]}
    for table in spec.TABLES:
        path = folder / f"{table.name}.csv"
        lines = path.read_text().splitlines()
        assert lines[0] == ",".join(table.column_names)
        assert len(lines) - 1 == truth["rows_written"][table.name] == by_file[path.name]["rows"]
        assert path.stat().st_size == by_file[path.name]["bytes"]
        assert truth["clean_rows"][table.name] == (truth["rows_written"][table.name]
                                                   - sum(truth["rejects_planted"][table.name].values()))
        assert set(truth["rejects_planted"][table.name]) == set(spec.REJECT_REASON_CODES)
    assert truth["clean_rows"]["person"] == PATIENTS


def test_clean_rows_load_exactly(extract, loaded):
    _, truth = extract
    for table in spec.TABLES:
        n = loaded.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
        assert n == truth["clean_rows"][table.name], table.name


def test_vocabularies_and_spellings_are_accepted_by_the_spec(loaded):
    aliases = {k.upper() for k in spec.VOCABULARY_ALIASES}
    for table in spec.TABLES:
        for vocab_col, _ in table.coded:
            for (v,) in loaded.execute(f"SELECT DISTINCT {vocab_col} FROM {table.name}").fetchall():
                assert v.upper().replace(" ", "").replace("-", "").replace("_", "") in aliases, v
    for col, values in (("sex", spec.SEX_VALUES), ):
        accepted = {s for spellings in values.values() for s in spellings}
        for (v,) in loaded.execute(f"SELECT DISTINCT {col} FROM person").fetchall():
            assert v.upper() in accepted
    accepted = {s for spellings in spec.VISIT_TYPES.values() for s in spellings}
    for (v,) in loaded.execute("SELECT DISTINCT visit_type FROM visit_occurrence").fetchall():
        assert v.upper() in accepted
    accepted = {s for spellings in spec.LATERALITY_VALUES.values() for s in spellings}
    for (v,) in loaded.execute("SELECT DISTINCT laterality FROM measurement WHERE laterality IS NOT NULL").fetchall():
        assert v.upper() in accepted


def test_all_clean_codes_are_valid(extract, loaded):
    _, truth = extract
    known = {(c.vocabulary, c.code.replace(".", "")) for c in cat.ALL_CODES}
    unknown_icd = {u.replace(".", "") for u in cat.UNKNOWN_ICD10CM_CODES}
    rows = loaded.execute("""
        SELECT upper(replace(replace(replace(condition_vocabulary, ' ', ''), '-', ''), '_', '')) AS v,
               condition_code, count(*) FROM condition_occurrence GROUP BY ALL""").fetchall()
    invalid_rows = 0
    for vocab, code, n in rows:
        canonical = spec.VOCABULARY_ALIASES[vocab]
        if canonical == "ICD10CM":
            dotted = icd10cm().add_dot(code) if "." not in code else code
            if code.replace(".", "") in unknown_icd:
                assert not icd10cm().is_valid_item(dotted)
                invalid_rows += n
                continue
            assert icd10cm().is_valid_item(dotted), code
        else:
            assert (canonical, code) in known, (canonical, code)
    assert invalid_rows == truth["implausible_planted"]["condition_occurrence"]["unknown_code"]
    for table, vocab_col, code_col in (("drug_exposure", "drug_vocabulary", "drug_code"),
                                       ("measurement", "measurement_vocabulary", "measurement_code"),
                                       ("procedure_occurrence", "procedure_vocabulary", "procedure_code")):
        for vocab, code in loaded.execute(f"SELECT DISTINCT {vocab_col}, {code_col} FROM {table}").fetchall():
            canonical = spec.VOCABULARY_ALIASES[vocab.upper().replace(" ", "").replace("-", "").replace("_", "")]
            assert (canonical, code) in known, (table, vocab, code)


def test_catalog_rxnorm_codes_are_the_phenotype_files_verified_ingredients():
    """Every RxNorm CUI the generator writes is a verified ingredient code of each phenotype it counts for, as the
    phenotype files list them (the catalog reads the CUIs from phenotypes/reference/drug_ingredients.csv, which the
    drug phenotypes are tested against: one fact in one place)."""
    from pipelines.phenotypes import phenotype_library

    library = phenotype_library()
    rxnorm_codes = [c for c in cat.ALL_CODES if c.vocabulary == cat.RXNORM]
    assert len(rxnorm_codes) >= 20
    for code in rxnorm_codes:
        for phenotype in code.phenotypes:
            listed = {(group.status, c) for group in library[phenotype].definition.codes
                      if group.vocabulary == "RxNorm" for c in group.codes}
            assert ("verified", code.code) in listed, (code.meaning, code.code, phenotype)
    # Insulin glargine (RxNorm 274783, drug_ingredients.csv) is written as RxNorm at RxNorm sites, not by ATC only.
    glargine = cat.DRUG_CLASSES["insulin"].substances[0][0]
    assert (glargine.name, glargine.rxcui) == ("insulin glargine", "274783")


def test_catalog_icd_codes_exist():
    for c in cat.ALL_CODES:
        if c.vocabulary == cat.ICD and c.code not in cat.UNKNOWN_ICD10CM_CODES:
            assert icd10cm().is_valid_item(c.code), c.code
    for u in cat.UNKNOWN_ICD10CM_CODES:
        assert not icd10cm().is_valid_item(u)


def test_clean_events_fall_in_observation_on_visits(loaded):
    # Every clean condition row with a visit id sits on that visit's date; dates stay in the data window.
    off_visit = loaded.execute("""
        SELECT count(*) FROM condition_occurrence c JOIN visit_occurrence v USING (visit_occurrence_id)
        WHERE c.condition_start_date <> v.visit_start_date""").fetchone()[0]
    assert off_visit == 0
    lo, hi = loaded.execute("SELECT min(visit_start_date), max(visit_start_date) FROM visit_occurrence").fetchone()
    assert "2012-01-01" <= lo and hi <= "2023-12-31"


# ------------------------------------------------------------------------------------------------ truth
def test_phenotype_counts_match_persons_parquet(extract):
    folder, truth = extract
    persons = pq.read_table(folder / "_truth" / "persons.parquet")
    assert persons.num_rows == PATIENTS
    assert set(truth["phenotype_persons"]) == set(cat.PHENOTYPE_IDS)
    for pid, n in truth["phenotype_persons"].items():
        column = persons.column(f"{pid}_date")
        assert len(column) - column.null_count == n, pid
    # Every phenotype is populated in a 1,500-person extract except the rarest conditions.
    rare = {"metabolic_myopathy", "inflammatory_myopathy", "chronic_compartment_syndrome", "heat_cramps"}
    for pid, n in truth["phenotype_persons"].items():
        if pid not in rare:
            assert n > 0, pid
    assert 0.08 <= truth["phenotype_persons"]["leg_cramps"] / PATIENTS <= 0.15


LAB_SQL = {
    "hyponatremia_lab": "measurement_code = '2951-2' AND v BETWEEN 100 AND 200 AND v < 135",
    "hypokalemia_lab": "measurement_code = '2823-3' AND v BETWEEN 1 AND 10 AND v < 3.5",
    "hypomagnesemia_lab": "measurement_code IN ('2601-3', '19123-9') AND v BETWEEN 0.1 AND 5 AND v < 0.70",
}


def _lab_values(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE OR REPLACE TEMP VIEW lab AS
        SELECT person_id, measurement_code, CAST(measurement_date AS DATE) AS d, laterality,
               CASE WHEN measurement_code = '19123-9' THEN CAST(value_as_number AS DOUBLE) / 2.4305
                    ELSE CAST(value_as_number AS DOUBLE) END AS v
        FROM measurement WHERE value_as_number IS NOT NULL""")


def _compare(con: duckdb.DuckDBPyConnection, pid: str, query: str) -> None:
    """query -> (person_id, d); must equal the truth's non-null <pid>_date rows exactly."""
    got = set(con.execute(query).fetchall())
    want = set(con.execute(f"SELECT person_id, {pid}_date FROM truth WHERE {pid}_date IS NOT NULL").fetchall())
    assert got == want, (pid, len(got), len(want), sorted(got ^ want)[:5])


def test_lab_truth_matches_written_measurements(loaded):
    _lab_values(loaded)
    for pid, condition in LAB_SQL.items():
        _compare(loaded, pid, f"SELECT person_id, min(d) FROM lab WHERE {condition} GROUP BY person_id")


def test_clean_lab_values_keep_away_from_thresholds(loaded):
    _lab_values(loaded)
    for code, threshold, lo, hi in (("2951-2", 135, 100, 200), ("2823-3", 3.5, 1, 10),
                                    ("2601-3", 0.70, 0.1, 5), ("19123-9", 0.70, 0.1, 5)):
        close = loaded.execute(f"""SELECT count(*) FROM lab WHERE measurement_code = '{code}'
            AND v BETWEEN {lo} AND {hi} AND abs(v - {threshold}) / {threshold} < {THRESHOLD_MARGIN_RELATIVE}""").fetchone()[0]
        assert close == 0, code


def test_abi_truth_matches_written_measurements(loaded):
    _lab_values(loaded)
    loaded.execute("""
        CREATE OR REPLACE TEMP VIEW abi AS SELECT person_id, d, v FROM lab
        WHERE measurement_code = '446841001' AND v BETWEEN 0.2 AND 2.5""")
    # Each day's verdict on the values up to that day: the lowest so far, and whether all so far were normal.
    loaded.execute("""
        CREATE OR REPLACE TEMP VIEW abi_day AS
        SELECT person_id, d,
               min(day_lowest) OVER so_far AS lowest_so_far,
               bool_and(day_normal) OVER so_far AS normal_so_far
        FROM (SELECT person_id, d, min(v) AS day_lowest, bool_and(v BETWEEN 1.00 AND 1.40) AS day_normal
              FROM abi GROUP BY ALL)
        WINDOW so_far AS (PARTITION BY person_id ORDER BY d ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)""")
    _compare(loaded, "abi_low", "SELECT person_id, min(d) FROM abi_day WHERE lowest_so_far <= 0.90 GROUP BY ALL")
    _compare(loaded, "abi_borderline",
             "SELECT person_id, min(d) FROM abi_day WHERE lowest_so_far BETWEEN 0.91 AND 0.99 GROUP BY ALL")
    _compare(loaded, "abi_normal", "SELECT person_id, min(d) FROM abi_day WHERE normal_so_far GROUP BY ALL")
    _compare(loaded, "abi_noncompressible", "SELECT person_id, min(d) FROM abi WHERE v > 1.40 GROUP BY ALL")
    # Both at once: from the claudication code if the ABI range holds then, else from the first ABI day after it.
    _compare(loaded, "claudication_with_borderline_or_normal_abi", """
        SELECT person_id, min(d) FROM (
        SELECT a.person_id, a.d FROM abi_day a JOIN truth t USING (person_id)
        WHERE a.lowest_so_far BETWEEN 0.91 AND 1.30 AND a.d >= t.intermittent_claudication_date
        UNION ALL
        SELECT a.person_id, t.intermittent_claudication_date FROM abi_day a JOIN truth t USING (person_id)
        WHERE a.lowest_so_far BETWEEN 0.91 AND 1.30 AND a.d < t.intermittent_claudication_date
          AND NOT EXISTS (SELECT 1 FROM abi_day b WHERE b.person_id = a.person_id AND b.lowest_so_far < 0.91
                          AND b.d <= t.intermittent_claudication_date))
        GROUP BY ALL""")
    for pid in ("abi_low", "abi_borderline", "abi_normal", "abi_noncompressible"):
        assert loaded.execute(f"SELECT count(*) FROM truth WHERE {pid}_date IS NOT NULL").fetchone()[0] > 0, pid


def _condition_codes_sql(pid: str) -> str:
    pairs = [(c.vocabulary, c.code.replace(".", "")) for c in cat.ALL_CODES if pid in c.phenotypes]
    return " OR ".join(f"(v = '{v}' AND code = '{c}')" for v, c in pairs)


def test_diagnosis_truth_matches_written_conditions(loaded):
    """Independent recomputation of the diagnosis phenotypes, including the two-code rule."""
    loaded.execute("""
        CREATE OR REPLACE TEMP VIEW dx AS
        SELECT c.person_id, CAST(c.condition_start_date AS DATE) AS d, replace(c.condition_code, '.', '') AS code,
               CASE WHEN upper(replace(replace(c.condition_vocabulary, ' ', ''), '-', '')) IN ('ICD10CM', 'ICD10')
                    THEN 'ICD10CM' ELSE 'SNOMED' END AS v,
               upper(vo.visit_type) IN ('INPATIENT', 'IP', 'IN', 'INPATIENT VISIT', '9201') AS inpatient
        FROM condition_occurrence c LEFT JOIN visit_occurrence vo USING (visit_occurrence_id)""")
    for pid in ("leg_cramps", "heat_cramps", "intermittent_claudication", "hypothyroidism", "parkinsons_disease",
                "pseudoclaudication", "lumbar_spinal_stenosis", "osteoarthritis", "alcohol_use", "dehydration",
                "restless_legs_syndrome", "venous_disease", "hyponatremia_diagnosis", "diabetic_neuropathy"):
        _compare(loaded, pid, f"SELECT person_id, min(d) FROM dx WHERE {_condition_codes_sql(pid)} GROUP BY ALL")
    for pid in cat.TWO_CODE_RULE_PHENOTYPES:
        # Dated at the confirming code: an inpatient code, or a code 30+ days after an earlier non-inpatient one.
        _compare(loaded, pid, f"""
            WITH codes AS (SELECT * FROM dx WHERE {_condition_codes_sql(pid)})
            SELECT a.person_id, min(a.d) FROM codes a
            WHERE a.inpatient OR (NOT a.inpatient AND EXISTS (
                SELECT 1 FROM codes b WHERE b.person_id = a.person_id AND NOT b.inpatient AND a.d - b.d >= 30))
            GROUP BY ALL""")


def test_rule_out_persons_are_not_in_the_truth(extract):
    _, truth = extract
    assert truth["rule_out_persons"]["diabetes_mellitus"] > 0
    assert truth["rule_out_persons"]["peripheral_arterial_disease"] > 0


def test_distractors_and_effects_are_listed(extract):
    _, truth = extract
    codes = {d["code"] for d in truth["distractor_codes"]}
    assert {"M62.830", "M62.838", "R29.0", "G47.61", "I70.0", "T79.A21A", "E87.0", "E83.51", "B54"} <= codes
    effects = {e["exposure"]: e["hazard_ratio"] for e in truth["effects"]}
    assert effects["long_acting_beta2_agonists"] == 2.42 and effects["thiazide_diuretics"] == 1.47
    assert effects["calcium_channel_blockers"] == 1.0
    assert set(effects) <= set(cat.PHENOTYPE_IDS)


def test_planted_effect_is_visible(extract):
    folder, _ = extract
    con = _con()
    rates = dict(con.execute(f"""
        SELECT exposure_long_acting_beta2_agonists_start_date IS NOT NULL AS laba,
               avg(CASE WHEN leg_cramps_date IS NOT NULL THEN 1.0 ELSE 0.0 END)
        FROM read_parquet('{folder / '_truth' / 'persons.parquet'}') GROUP BY ALL""").fetchall())
    assert rates[True] > rates[False] * 1.3
    onset_equal = con.execute(f"""SELECT count(*) FROM read_parquet('{folder / '_truth' / 'persons.parquet'}')
        WHERE cramp_onset_date IS DISTINCT FROM leg_cramps_date""").fetchone()[0]
    assert onset_equal == 0  # the first cramp code is the latent onset


def test_no_clean_event_after_death_or_outside_observation(extract, loaded):
    _, truth = extract
    after_death = loaded.execute("""
        SELECT count(*) FROM drug_exposure x JOIN death USING (person_id) WHERE x.drug_exposure_start_date > death_date
        """).fetchone()[0]
    assert after_death == truth["implausible_planted"]["drug_exposure"]["event_after_death"]
    outside = loaded.execute("""
        SELECT count(*) FROM condition_occurrence c WHERE NOT EXISTS (
            SELECT 1 FROM observation_period o WHERE o.person_id = c.person_id
            AND c.condition_start_date BETWEEN o.observation_period_start_date AND o.observation_period_end_date)
        """).fetchone()[0]
    planted = truth["implausible_planted"]["condition_occurrence"]
    assert outside == planted["event_after_death"] + planted["event_outside_observation"]


# ------------------------------------------------------------------------------------------------ defects
def test_every_defect_kind_is_planted(defect_heavy):
    _, truth = defect_heavy
    for table in spec.TABLES:
        for reason in rejectable_reasons(table, "csv"):
            if truth["clean_rows"][table.name] < 300:
                continue  # deaths and ABI procedures are too few in 1,000 persons for every kind to be drawn
            assert truth["rejects_planted"][table.name][reason] > 0, (table.name, reason)
    for table, kinds in IMPLAUSIBLE_BY_TABLE.items():
        for kind in kinds:
            if table == "procedure_occurrence":
                continue
            assert truth["implausible_planted"][table][kind] > 0, (table, kind)


def test_each_rejected_row_fails_for_its_planted_reason(defect_heavy):
    folder, truth = defect_heavy
    con = _con()
    load_tables(con, folder)
    for table in spec.TABLES:
        planted = truth["rejects_planted"][table.name]
        raw = con.execute(f"SELECT count(*) FROM raw_{table.name}").fetchone()[0]
        assert truth["rows_written"][table.name] - raw == planted["malformed_line"], table.name
        parsed = con.execute(f"SELECT count(*) FROM parsed_{table.name}").fetchone()[0]
        assert raw - parsed == (planted["missing_required_field"] + planted["unparseable_date"]
                                + planted["unparseable_number"] + planted["duplicate_primary_key"]), table.name
        final = con.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
        assert parsed - final == planted["unknown_person"], table.name
        assert final == truth["clean_rows"][table.name]


def test_impossible_lab_values_are_planted_outside_plausible_ranges(defect_heavy):
    folder, truth = defect_heavy
    con = _con()
    load_tables(con, folder)
    _lab_values(con)
    impossible = con.execute("""SELECT count(*) FROM lab WHERE
        (measurement_code = '2951-2' AND v NOT BETWEEN 100 AND 200) OR
        (measurement_code = '2823-3' AND v NOT BETWEEN 1 AND 10) OR
        (measurement_code IN ('2601-3', '19123-9') AND v NOT BETWEEN 0.1 AND 5) OR
        (measurement_code = '446841001' AND v NOT BETWEEN 0.2 AND 2.5)""").fetchone()[0]
    assert impossible == truth["implausible_planted"]["measurement"]["impossible_lab_value"]
    # The truth still holds with the implausible rows loaded.
    con.execute(f"CREATE TABLE truth AS SELECT * FROM read_parquet('{folder / '_truth' / 'persons.parquet'}')")
    for pid, condition in LAB_SQL.items():
        _compare(con, pid, f"SELECT person_id, min(d) FROM lab WHERE {condition} GROUP BY person_id")


def test_calendar_constants():
    assert DATA_START_DAY < DATA_END_DAY


DUPLICATE_KEYS = {
    "condition_occurrence": "person_id, condition_vocabulary, condition_code, condition_start_date",
    "drug_exposure": "person_id, drug_vocabulary, drug_code, drug_exposure_start_date",
    "measurement": "person_id, measurement_vocabulary, measurement_code, measurement_date, laterality, "
                   "value_as_number, unit",
    "procedure_occurrence": "person_id, procedure_vocabulary, procedure_code, procedure_date",
}
END_COLUMNS = {"visit_occurrence": ("visit_start_date", "visit_end_date"),
               "condition_occurrence": ("condition_start_date", "condition_end_date"),
               "drug_exposure": ("drug_exposure_start_date", "drug_exposure_end_date")}


def test_each_implausible_row_is_one_kind_only(defect_heavy):
    """Only duplicate_event rows repeat an event, and only end_before_start rows end before they start."""
    folder, truth = defect_heavy
    con = _con()
    load_tables(con, folder)
    for table, keys in DUPLICATE_KEYS.items():
        extra = con.execute(f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {table} "
                            f"GROUP BY {keys})").fetchone()[0]
        assert extra == truth["implausible_planted"][table]["duplicate_event"], table
    for table, (start, end) in END_COLUMNS.items():
        n = con.execute(f"SELECT count(*) FROM {table} WHERE {end} < {start}").fetchone()[0]
        assert n == truth["implausible_planted"][table]["end_before_start"], table


@pytest.mark.parametrize("seed", [3, 4])
def test_tiny_extracts_generate(tmp_path, seed):
    # 40 patients leave some code families empty in a chunk (seed 3 once crashed on an empty array).
    from pipelines.synthetic import generate_extract

    truth = generate_extract(tmp_path, patients=40, seed=seed, progress=False)
    assert truth["rows_written"]["person"] >= 40


# ------------------------------------------------------------------------------------------------ effects profiles
GARRISON_SEQUENCE_RATIOS = {"thiazide_diuretics": 1.47, "long_acting_beta2_agonists": 2.42, "statins": 1.16}


@pytest.fixture(scope="module")
def sequence_symmetry_extract(tmp_path_factory) -> tuple[Path, dict]:
    """The `extract` fixture's settings with the sequence_symmetry effects profile."""
    out = tmp_path_factory.mktemp("ssa42")
    truth = generate_extract(out, PATIENTS, seed=42, fmt="csv", chunk_size=700, progress=False, workers=1,
                             effects_profile="sequence_symmetry")
    return out, truth


def test_sequence_symmetry_profile_plants_only_garrisons_three_drugs(sequence_symmetry_extract):
    folder, truth = sequence_symmetry_extract
    assert truth["generator"]["effects_profile"] == "sequence_symmetry"
    assert json.loads((folder / "_manifest.json").read_text())["effects_profile"] == "sequence_symmetry"
    effects = {e["exposure"]: e["hazard_ratio"] for e in truth["effects"]}
    assert {e: hr for e, hr in effects.items() if hr != 1.0} == GARRISON_SEQUENCE_RATIOS
    assert effects["hypomagnesemia_lab"] == 1.0  # no effect through magnesium
    targets = {t["index_drug"]: t["sequence_ratio"] for t in truth["sequence_ratios"]["targets"]}
    assert targets == GARRISON_SEQUENCE_RATIOS


def test_default_profile_is_recorded_and_states_no_sequence_ratio_targets(extract):
    folder, truth = extract
    assert truth["generator"]["effects_profile"] == "default"
    assert json.loads((folder / "_manifest.json").read_text())["effects_profile"] == "default"
    assert truth["sequence_ratios"]["targets"] == []
    effects = {e["exposure"]: e["hazard_ratio"] for e in truth["effects"]}
    assert effects["potassium_sparing_diuretics"] == 2.12 and effects["hypomagnesemia_lab"] == 1.8


def test_profiles_differ_only_from_the_cramp_step_on(extract, sequence_symmetry_extract):
    """Same seed: same persons, exposures and their start dates; only cramp onsets (and what follows) change."""
    default = pq.read_table(extract[0] / "_truth" / "persons.parquet").to_pandas()
    profile = pq.read_table(sequence_symmetry_extract[0] / "_truth" / "persons.parquet").to_pandas()
    exposure_columns = [c for c in default.columns if c.startswith("exposure_")]
    assert len(exposure_columns) == 12
    assert default[exposure_columns + ["year_of_birth", "observation_first_start"]].equals(
        profile[exposure_columns + ["year_of_birth", "observation_first_start"]])
    assert not default["cramp_onset_date"].equals(profile["cramp_onset_date"])


def test_cli_effects_option_selects_the_profile():
    from pipelines.synthetic.cli import parse_args

    assert parse_args(["--patients", "5", "--out", "x"]).effects_profile == "default"
    assert parse_args(["--patients", "5", "--out", "x", "--effects", "sequence_symmetry"]).effects_profile \
        == "sequence_symmetry"


def test_unknown_effects_profile_is_refused(tmp_path):
    with pytest.raises(ValueError, match="effects_profile"):
        generate_extract(tmp_path, 10, effects_profile="garrison", progress=False)


def _calendar_month(day: np.ndarray) -> np.ndarray:
    return day.astype("datetime64[D]").astype("datetime64[M]")


def test_an_exposure_acts_from_its_start_day_not_from_its_start_month():
    """Within the month of a drug's first fill, the planted hazard ratio applies only from the fill day on. With a
    huge ratio (50) almost every onset of that month comes after the fill: about 2% before it. A monthly grid that
    exposed the whole month whenever the fill came in its first half put a fifth of them (21%) before the fill,
    which biased every sequence ratio down (a cramp 'before' the drug that the drug caused)."""
    effects = {exposure: (1.0, "none") for exposure in CRAMP_EFFECTS_PROFILES["sequence_symmetry"]}
    effects["long_acting_beta2_agonists"] = (50.0, "test")
    sim = ChunkSimulation(chunk_rng(11, 0), 150_000, 0, effects)
    sim.simulate(through="cramps")
    fill = sim.drug_first_fill["long_acting_beta2_agonists"]
    onset = sim.cramp_onset
    same_month = np.flatnonzero((fill >= 0) & (onset >= 0))
    same_month = same_month[_calendar_month(fill[same_month]) == _calendar_month(onset[same_month])]
    before = int((onset[same_month] < fill[same_month]).sum())
    assert same_month.size > 150, same_month.size
    assert before / same_month.size < 0.08, (before, same_month.size)
