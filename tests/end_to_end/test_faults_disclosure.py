"""Disclosure control (docs/disclosure.md) on a real run's published database: no hidden count can be recomputed,
logs and summaries print small counts as "<N", the data-quality results and Data Docs hold no row of the data and
no small count, and no run configuration can lower the site's threshold floor."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from scipy.stats import chi2

from pipelines.cohorts.settings import override_problems
from pipelines.definitions import defs
from pipelines.disclosure import (
    SITE_FLOOR_VARIABLE,
    DisclosureError,
    checked_threshold,
    site_floor,
    suppress_estimates,
)
from pipelines.jobs import STUDY_JOB_NAME
from pipelines.network.sites import register_site
from pipelines.operations.run_config import config_problems, study_run_config
from pipelines.quality.runner import DIAGNOSTICS_FILE
from pipelines.warehouse import Warehouse
from pipelines.run import failure_messages, summary
from pipelines.statistics.results import DERIVED_COLUMNS
from tests.support.disclosure_attacks import small_differences
from tests.support.paths import REPO_ROOT

SITE = "site_disclosure"
OVERRIDES_PATH = "resources.studies.config.overrides"
# leg_cramps runs with a stricter threshold than the site floor: every "<N" must name the threshold in force.
# (Sequence symmetry, over the whole extract, uses the strictest threshold of the study files.)
THRESHOLDS = {"leg_cramps": 20, "thiazide_vs_ccb": 11, "low_magnesium_tested": 11, "low_potassium_tested": 11,
              "low_sodium_tested": 11, "sequence_symmetry": 11}


def _config(extract: Path, database: Path, overrides: dict) -> dict:
    config = study_run_config(extract, database)
    config["resources"]["studies"] = {"config": {"overrides": overrides}}
    return config


def _launch(instance, run_config) -> dg.ExecuteInProcessResult:
    register_site(instance, SITE)
    return defs.resolve_job_def(STUDY_JOB_NAME).execute_in_process(
        run_config=run_config, instance=instance, partition_key=SITE, raise_on_error=False)


@pytest.fixture(scope="module")
def published_run(tmp_path_factory, generated_extract):
    """One study-job run on a 300-patient generated extract (many small cells), leg_cramps at threshold 20."""
    folder = tmp_path_factory.mktemp("disclosure")
    extract = generated_extract(300, 1).path
    database = folder / "published" / f"{SITE}.duckdb"
    home = folder / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = _launch(instance, _config(extract, database, {"leg_cramps": {"small_cell_threshold": 20}}))
        assert result.success, failure_messages(result)
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
        yield result, database, logs


# ---------------------------------------------------------------------------------------------------------------
# The four routes by which a hidden count was recomputed from results.associations
# ---------------------------------------------------------------------------------------------------------------

def _is_count(value: float, threshold: int) -> int | None:
    """The small count `value` lands on (within floating-point error), else None."""
    if value is None or not math.isfinite(value):
        return None
    nearest = round(value)
    return nearest if 1 <= nearest < threshold and abs(value - nearest) < 1e-6 else None


def _crude(method: str, a: float, n1: float, c: float, n0: float, py1: float, py0: float) -> float | None:
    """The crude ratio a method publishes, from its counts (None when the method is not a crude ratio)."""
    if method.startswith("Crude odds ratio"):
        return (a / (n1 - a)) / (c / (n0 - c))
    if method.startswith("Crude risk ratio"):
        return (a / n1) / (c / n0)
    if method.startswith("Incidence rate ratio"):
        return (a / py1) / (c / py0)
    if method.startswith("Crude sequence ratio"):
        return a / c
    return None


def _poisson_bound_ratio(count: int) -> float:
    """Upper / lower bound of the exact (Garwood) 95% Poisson interval of a count: depends on the count only."""
    return (chi2.ppf(0.975, 2 * count + 2) / 2) / (chi2.ppf(0.025, 2 * count) / 2)


def recovered_cells(con: duckdb.DuckDBPyConnection, thresholds: dict[str, int]) -> list[str]:
    """Every hidden small count of results.associations that one of the four routes recomputes."""
    rows = con.execute("SELECT * FROM results.associations").df().replace({float("nan"): None})
    rows = rows.astype(object).where(rows.notna(), None)
    cohort_size = dict(con.execute(
        "SELECT study_id, persons_after FROM results.attrition QUALIFY step_order = max(step_order) "
        "OVER (PARTITION BY study_id)").fetchall())
    # The outcome total of a cohort: events of any exposure whose two groups make up the whole cohort.
    outcome_total = {}
    for row in rows.to_dict("records"):
        n1, n0, a, c = (row[k] for k in ("n_exposed", "n_unexposed", "events_exposed", "events_unexposed"))
        if None not in (n1, n0, a, c) and n1 + n0 == cohort_size.get(row["study_id"]):
            outcome_total[row["study_id"]] = a + c
    found = []
    for row in rows.to_dict("records"):
        threshold = thresholds[row["study_id"]]
        for hidden in (row["suppressed_columns"] or "").split(","):
            if not hidden:
                continue
            where = f"{row['study_id']} / {row['exposure']} / {row['method']}: {hidden}"
            exposed = hidden.endswith("_exposed")
            # 1. the crude ratio with the shown counts (when exactly one count fits)
            fits = []
            for guess in range(1, threshold if row["estimate"] is not None else 1):
                values = {k: row[k] for k in ("n_exposed", "n_unexposed", "events_exposed", "events_unexposed",
                                              "person_years_exposed", "person_years_unexposed")}
                values[hidden] = guess
                try:
                    ratio = _crude(row["method"], values["events_exposed"], values["n_exposed"],
                                   values["events_unexposed"], values["n_unexposed"],
                                   values["person_years_exposed"], values["person_years_unexposed"])
                except (TypeError, ZeroDivisionError):  # a count or person-years the route needs is hidden
                    break
                if ratio is not None and math.isclose(ratio, row["estimate"], rel_tol=1e-9):
                    fits.append(guess)
            if len(fits) == 1:
                found.append(f"{where} = {fits[0]} from the crude ratio")
            # 2. rate x person-years
            person_years = row["person_years_exposed" if exposed else "person_years_unexposed"]
            if row["estimand"].startswith("incidence rate per") and row["estimate"] is not None and person_years:
                count = _is_count(row["estimate"] * person_years / 1000, threshold)
                if count:
                    found.append(f"{where} = {count} from rate x person-years")
            # 3. the ratio of the exact Poisson interval's bounds
            if row["estimand"].startswith("incidence rate per") and row["ci_lower"] and row["ci_upper"]:
                for guess in range(1, threshold):
                    if math.isclose(row["ci_upper"] / row["ci_lower"], _poisson_bound_ratio(guess), rel_tol=1e-9):
                        found.append(f"{where} = {guess} from the ratio of the CI bounds")
            # 4. the complement from a published total
            partner = {"n_exposed": "n_unexposed", "n_unexposed": "n_exposed", "events_exposed": "events_unexposed",
                       "events_unexposed": "events_exposed"}[hidden]
            total = (cohort_size if hidden.startswith("n_") else outcome_total).get(row["study_id"])
            if total is not None and row[partner] is not None:
                count = _is_count(total - row[partner], threshold)
                if count:
                    found.append(f"{where} = {count} from the total minus {partner}")
    return found


@pytest.mark.slow
def test_no_hidden_count_is_recomputed_by_any_route(published_run):
    _, database, _ = published_run
    with duckdb.connect(str(database), read_only=True) as con:
        hidden = con.execute("SELECT count(*) FROM results.associations WHERE suppressed_columns IS NOT NULL "
                             "AND study_id <> 'sequence_symmetry'").fetchone()[0]
        assert hidden > 10, "the extract is meant to have many small cells"
        assert recovered_cells(con, THRESHOLDS) == []
        # Nothing shown in a row with a hidden count: no estimate, interval, p-value, person-years or reason. (The
        # other rows of the exposure show theirs: each count they print is shown, and the cross-table attack
        # below finds nothing a reader could subtract.)
        shown = con.execute(
            "SELECT count(*) FROM results.associations WHERE (suppressed_columns IS NOT NULL OR "
            "regexp_matches(coalesce(complementary_columns, ''), '(^|,)(n|events)_')) AND NOT (estimate IS NULL "
            "AND ci_lower IS NULL AND ci_upper IS NULL AND p_value IS NULL AND person_years_exposed IS NULL AND "
            "person_years_unexposed IS NULL AND not_estimable_reason IS NULL)").fetchone()[0]
        assert shown == 0


@pytest.mark.slow
def test_no_small_count_is_recomputed_across_the_published_tables(published_run):
    """The cross-table differencing attack (tests/support/disclosure_attacks.py) on the run's published database:
    cohort size minus an analysis's persons, crude minus matched persons and events, intention to treat minus on
    treatment, each at the threshold the run used (20 for leg_cramps); the threshold is published with the run."""
    _, database, _ = published_run
    with duckdb.connect(str(database), read_only=True) as con:
        used = dict(con.execute("SELECT DISTINCT study_id, small_cell_threshold FROM results.attrition").fetchall())
        assert used == {study: t for study, t in THRESHOLDS.items() if study != "sequence_symmetry"}
        for study_id, threshold in used.items():
            exposures = [e for (e,) in con.execute("SELECT DISTINCT exposure FROM results.analysis_attrition "
                                                   "WHERE study_id = ? ORDER BY 1", [study_id]).fetchall()]
            outer = [e for e in exposures if e.endswith(", intention to treat")]
            nested = [(o, e) for o in outer for e in exposures
                      if e != o and e.startswith(o.removesuffix("intention to treat"))]
            assert small_differences(con, study_id, threshold, nested) == [], study_id


def test_the_routes_recover_the_counts_the_earlier_rule_published():
    """The check above finds leaks: on counts suppressed as before (a small count NULL, all else shown), each of the
    four routes recovers it."""
    # dehydration: 9 of 20 exposed with the outcome, 137 of 1,887 unexposed (the probe's figures).
    a, n1, c, n0, py1, py0 = 9, 20, 137, 1887, 76.3, 8365.3
    lower, upper = (chi2.ppf(0.025, 2 * a) / 2, chi2.ppf(0.975, 2 * a + 2) / 2)
    base = {"study_id": "leg_cramps", "exposure": "dehydration", "outcome": "leg_cramps", "p_value": None}
    rows = [
        {**base, "method": "Crude odds ratio (2x2 table)", "estimand": "odds ratio", "estimate":
         (a / (n1 - a)) / (c / (n0 - c)), "ci_lower": None, "ci_upper": None, "n_exposed": n1, "n_unexposed": n0,
         "events_exposed": a, "events_unexposed": c, "person_years_exposed": None, "person_years_unexposed": None},
        {**base, "method": "Incidence rate, exact Poisson CI", "estimand": "incidence rate per 1,000 person-years, "
         "exposed", "estimate": 1000 * a / py1, "ci_lower": 1000 * lower / py1, "ci_upper": 1000 * upper / py1,
         "n_exposed": n1, "n_unexposed": None, "events_exposed": a, "events_unexposed": None,
         "person_years_exposed": py1, "person_years_unexposed": None},
        {**base, "method": "Incidence rate, exact Poisson CI", "estimand": "incidence rate per 1,000 person-years, "
         "unexposed", "estimate": 1000 * c / py0, "ci_lower": None, "ci_upper": None, "n_exposed": None,
         "n_unexposed": n0, "events_exposed": None, "events_unexposed": c, "person_years_exposed": None,
         "person_years_unexposed": py0},
        {**base, "exposure": "statins", "method": "Crude risk ratio", "estimand": "risk ratio", "estimate": 1.0,
         "ci_lower": None, "ci_upper": None, "n_exposed": 400, "n_unexposed": 1507, "events_exposed": 30,
         "events_unexposed": 116, "person_years_exposed": None, "person_years_unexposed": None},
    ]
    earlier = pd.DataFrame(rows)
    small = earlier.events_exposed.between(1, 10)
    earlier["suppressed_columns"] = ["events_exposed" if s else None for s in small]
    earlier.loc[small, "events_exposed"] = None
    attrition = pd.DataFrame({"study_id": ["leg_cramps"], "step_order": [1], "persons_after": [1907]})
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA results")
        con.execute("CREATE TABLE results.associations AS SELECT * FROM earlier")
        con.execute("CREATE TABLE results.attrition AS SELECT * FROM attrition")
        found = recovered_cells(con, {"leg_cramps": 11})
        assert sorted(found) == sorted([
            "leg_cramps / dehydration / Crude odds ratio (2x2 table): events_exposed = 9 from the crude ratio",
            "leg_cramps / dehydration / Crude odds ratio (2x2 table): events_exposed = 9 from the total minus "
            "events_unexposed",
            "leg_cramps / dehydration / Incidence rate, exact Poisson CI: events_exposed = 9 from rate x "
            "person-years",
            "leg_cramps / dehydration / Incidence rate, exact Poisson CI: events_exposed = 9 from the ratio of the "
            "CI bounds",
        ])
        # The same rows through the rule: nothing is recovered.
        hidden = suppress_estimates(pd.DataFrame(rows), 11, DERIVED_COLUMNS)
        con.execute("CREATE OR REPLACE TABLE results.associations AS SELECT * FROM hidden")
        assert recovered_cells(con, {"leg_cramps": 11}) == []


@pytest.mark.slow
def test_attrition_and_table1_never_give_a_small_cell_away(published_run):
    _, database, _ = published_run
    with duckdb.connect(str(database), read_only=True) as con:
        # before - removed = after: never two of the three shown beside a hidden small third.
        leaks = con.execute(
            "SELECT study_id, step_order FROM results.attrition WHERE "
            "(persons_after IS NULL AND persons_after_text LIKE '<%' AND persons_before IS NOT NULL "
            " AND persons_removed IS NOT NULL) OR "
            "(persons_removed IS NULL AND persons_removed_text LIKE '<%' AND persons_before IS NOT NULL "
            " AND persons_after IS NOT NULL)").fetchall()
        assert leaks == []
        printed = con.execute(
            "SELECT study_id, persons_after_text FROM results.attrition WHERE persons_after_text LIKE '<%' "
            "UNION SELECT study_id, value FROM results.table1 WHERE value LIKE '<%'").fetchall()
    assert printed, "the extract is meant to have small cells in attrition or Table 1"
    assert {(study, f"<{THRESHOLDS[study]}") for study, _ in printed} == set(printed)


# ---------------------------------------------------------------------------------------------------------------
# Logs, metadata and the command-line summary
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_logs_summary_and_metadata_print_small_counts_as_the_threshold_in_force(published_run):
    result, database, logs = published_run
    with duckdb.connect(str(database), read_only=True) as con:
        sizes = dict(con.execute("SELECT study_id, count(outcome_date) FROM cohort.study_population GROUP BY 1")
                     .fetchall())
    assert 1 <= sizes["thiazide_vs_ccb"] < 11, "the extract is meant to have a small outcome count"
    [line] = [m for m in logs if m.startswith("thiazide_vs_ccb: ") and "with the outcome" in m]
    assert line.endswith(", <11 with the outcome")
    for study, line in ((m.split(":")[0], m) for m in logs if m.endswith(" with the outcome")):
        for number in re.fullmatch(r"\S+: (\S+) persons, (\S+) with the outcome", line).groups():
            assert number.startswith("<") or number == "suppressed" \
                or not 1 <= int(number.replace(",", "")) < THRESHOLDS[study], line
    text = summary(database, study_overrides={"leg_cramps": {"small_cell_threshold": 20}})
    assert ", <11 with incident leg cramps" in text.split("cohort thiazide_vs_ccb: ")[1]
    # Each study's estimates: published, not estimable and withheld add up to the rows of results.associations.
    counts = {study: tuple(map(int, numbers)) for study, *numbers in re.findall(
        r"cohort (\S+): .*; (\d+) of (\d+) estimates published \((\d+) not estimable, (\d+) withheld", text)}
    with duckdb.connect(str(database), read_only=True) as con:
        rows = dict(con.execute("SELECT study_id, count(*) FROM results.associations GROUP BY 1").fetchall())
    assert set(counts) == set(THRESHOLDS) - {"sequence_symmetry"} and counts["leg_cramps"][1] == rows["leg_cramps"] > 0
    assert all(shown + not_estimable + withheld == total for shown, total, not_estimable, withheld in counts.values())
    assert ("WARNING" in text) == (not any(shown for shown, *_ in counts.values()))
    for line in text.splitlines():
        for number in re.findall(r"(\d[\d,]*) (?:persons|with incident)", line):
            threshold = 20 if line.startswith("cohort leg_cramps") else 11
            assert not 1 <= int(number.replace(",", "")) < threshold, line

    [estimates] = [e.materialization.metadata["estimates"].value for e in result.get_asset_materialization_events()
                   if e.asset_key.path == ["results", "associations", "leg_cramps"]]
    assert "<20" in estimates and "<11" not in estimates


# ---------------------------------------------------------------------------------------------------------------
# Data quality: no row of the data and no small count in what is published
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_dq_results_and_data_docs_hold_no_person_id_date_or_small_count(published_run):
    result, database, _ = published_run
    warehouse = Warehouse(database_path=str(database))
    diagnostics = warehouse.diagnostics_dir(result.run_id) / DIAGNOSTICS_FILE
    examples = [json.loads(line) for line in diagnostics.read_text().splitlines()]
    person_ids = {str(row["person_id"]) for e in examples for row in e["example_rows"] if row.get("person_id")}
    dates = {value for e in examples for row in e["example_rows"] for value in row.values()
             if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)}
    assert person_ids and dates, "the generated extract plants defects whose examples name persons and dates"
    # Outside every folder that is published (the version the run became) or moved there (the build folder).
    for published_folder in (warehouse.version_dir(result.run_id), warehouse.build_dir(result.run_id),
                             warehouse.published_outputs_dir.resolve()):
        assert not diagnostics.resolve().is_relative_to(published_folder.resolve())

    with duckdb.connect(str(database), read_only=True) as con:
        columns = con.execute("SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'dq'") \
            .fetchall()
        assert not [c for c in columns if c[1] == "person_id"]
        text = " ".join(str(v) for row in con.execute(
            "SELECT * EXCLUDE (checked_at) FROM dq.check_results").fetchall() for v in row)
        # (The column-set check counts column names, not rows of the data.)
        small = con.execute("SELECT count(*) FROM dq.check_results WHERE (unexpected_count BETWEEN 1 AND 10 "
                            "OR element_count BETWEEN 1 AND 10) "
                            "AND expectation_type <> 'expect_table_columns_to_match_set'").fetchone()[0]
        hidden = con.execute("SELECT count(*) FROM dq.check_results WHERE suppressed").fetchone()[0]
    assert small == 0 and hidden > 0
    assert not [d for d in dates if d in text]

    published = [path for path in (warehouse.published_outputs_dir / "data_docs").rglob("*") if path.is_file()]
    assert published
    for path in published:
        content = path.read_text(errors="ignore")
        assert not [d for d in dates if d in content], path
        if path.suffix == ".json":
            assert "partial_unexpected_list" not in content, path
            assert not re.search(r'"(?:unexpected|element|missing)_count": ([1-9]|10)\b', content), path
            assert not re.search(r'"person_id": "?(' + "|".join(map(re.escape, person_ids)) + r')\b', content), path


# ---------------------------------------------------------------------------------------------------------------
# The site floor
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_run_config_cannot_lower_the_threshold_below_the_site_floor(tmp_path, dagster_instance):
    extract = tmp_path / "extract"
    extract.mkdir()
    expected = (f"{OVERRIDES_PATH}.leg_cramps.small_cell_threshold: small_cell_threshold 1 is below this site's "
                f"floor of 11 ({SITE_FLOOR_VARIABLE}); counts of 1 to 10 persons are never published")
    overrides = {"leg_cramps": {"small_cell_threshold": 1}}
    assert override_problems(overrides) == [expected]
    assert config_problems(_config(extract, tmp_path / "a.duckdb", overrides)) == [expected]

    result = _launch(dagster_instance, _config(extract, tmp_path / "published" / "a.duckdb", overrides))
    assert not result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START], "a step started"
    [message] = failure_messages(result)
    assert message.endswith(f"invalid run configuration of run {result.run_id}:\n  - {expected}")
    assert not (tmp_path / "published").exists()
    # At the floor itself, or above, the override is accepted.
    assert override_problems({"leg_cramps": {"small_cell_threshold": 11}}) == []


def test_the_site_sets_the_floor(monkeypatch):
    assert site_floor() == 11
    monkeypatch.setenv(SITE_FLOOR_VARIABLE, "25")
    assert site_floor() == 25
    with pytest.raises(DisclosureError, match="small_cell_threshold 20 is below this site's floor of 25"):
        checked_threshold(20)
    # The study files themselves (threshold 11) are refused by a site whose floor is 25.
    assert override_problems({"leg_cramps": {"small_cell_threshold": 20}}) == [
        f"{OVERRIDES_PATH}.leg_cramps.small_cell_threshold: small_cell_threshold 20 is below this site's floor of "
        f"25 ({SITE_FLOOR_VARIABLE}); counts of 1 to 24 persons are never published"]
    from pipelines.cohorts.settings import file_threshold_problems

    assert [p.split(":")[0] for p in file_threshold_problems()] == [
        "studies/leg_cramps.yaml", "studies/low_magnesium_tested.yaml", "studies/low_potassium_tested.yaml",
        "studies/low_sodium_tested.yaml", "studies/thiazide_vs_ccb.yaml"]
    monkeypatch.setenv(SITE_FLOOR_VARIABLE, "eleven")
    with pytest.raises(DisclosureError, match="must be a whole number"):
        site_floor()
