"""Sites and the pooled estimate: two sites' drops run as two partitions, and the network job publishes fixed- and
random-effects estimates that match an independent inverse-variance / DerSimonian-Laird computation, with small
cells suppressed."""

from __future__ import annotations

import math
import os
import re

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.network.pooling import pool_site_associations
from pipelines.statistics.results import COUNT_COLUMNS, RESULT_COLUMNS
from tests.support.paths import REPO_ROOT

Z = stats.norm.ppf(0.975)
GROUP = ["study_id", "exposure", "outcome", "analysis_id", "estimand"]


def hand_meta(estimates, lowers, uppers) -> dict:
    """Inverse-variance fixed effect and DerSimonian-Laird random effects, written out from the textbook formulas."""
    y = np.log(estimates)
    se = (np.log(uppers) - np.log(lowers)) / (2 * Z)
    w = 1 / se**2
    fixed = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - fixed) ** 2)
    k = len(y)
    tau2 = max(0.0, (q - (k - 1)) / (np.sum(w) - np.sum(w**2) / np.sum(w)))
    w_star = 1 / (se**2 + tau2)
    random = np.sum(w_star * y) / np.sum(w_star)
    # Hartung-Knapp-Sidik-Jonkman: the weighted residual variance of the sites about the random-effects estimate,
    # over k - 1, scales 1 / sum w*; t with k - 1 df (IntHout et al. 2014).
    se_hksj = math.sqrt(np.sum(w_star * (y - random) ** 2) / ((k - 1) * np.sum(w_star)))
    t = stats.t.ppf(0.975, k - 1)
    return {
        "hksj_ci_lower": math.exp(random - t * se_hksj),
        "hksj_ci_upper": math.exp(random + t * se_hksj),
        "hksj_p_value": 2 * stats.t.sf(abs(random) / se_hksj, k - 1),
        "fixed_estimate": math.exp(fixed),
        "fixed_ci_lower": math.exp(fixed - Z / math.sqrt(np.sum(w))),
        "fixed_ci_upper": math.exp(fixed + Z / math.sqrt(np.sum(w))),
        "random_estimate": math.exp(random),
        "random_ci_lower": math.exp(random - Z / math.sqrt(np.sum(w_star))),
        "random_ci_upper": math.exp(random + Z / math.sqrt(np.sum(w_star))),
        "tau_squared": tau2,
        "q_statistic": q,
        "i_squared": max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0,
    }


def site_row(site, estimate, lower, upper, analysis_id="Cox", exposure="thiazide", suppressed=(), method=None,
             **counts) -> dict:
    row = {"site": site, "study_id": "leg_cramps", "exposure": exposure, "outcome": "leg_cramps",
           **{c: None for c in RESULT_COLUMNS}, "analysis_id": analysis_id, "method": method or analysis_id,
           "estimand": "hazard ratio",
           "estimate": estimate, "ci_lower": lower, "ci_upper": upper, "p_value": 0.5, **counts}
    row["suppressed_columns"] = ",".join(suppressed) or None
    row["suppressed"] = bool(suppressed)
    return row


def expected_count(site_values, site_suppressed, threshold):
    """What the pooled table must show for one count column: NULL when any site hid it or the sum is a small cell."""
    if any(site_suppressed):
        return None, True
    if any(v is None for v in site_values):
        return None, False
    total = int(sum(site_values))
    return (None, True) if 0 < total < threshold else (total, False)


def test_pooling_matches_hand_computation_and_keeps_small_cells_hidden():
    rows = pd.DataFrame([
        # Heterogeneous sites (tau^2 > 0). Counts as a site with a lower threshold (5) would publish them: 4 + 5
        # events is a small cell of the network (threshold 11); site_a hid its unexposed events.
        site_row("site_a", 1.0, 0.5, 2.0, n_exposed=100, events_exposed=4, n_unexposed=0,
                 suppressed=("events_unexposed",)),
        site_row("site_b", 4.0, 2.0, 8.0, n_exposed=120, events_exposed=5, n_unexposed=0, events_unexposed=30),
        # Agreeing sites (Q < k - 1): tau^2 truncated at 0, random effects = fixed effect. Another exposure: the
        # hidden events of thiazide hide every pooled estimate of thiazide.
        site_row("site_a", 1.50, 1.0, 2.25, analysis_id="logistic", exposure="loop"),
        site_row("site_b", 1.52, 1.1, 2.10, analysis_id="logistic", exposure="loop"),
        # Two rows of one site that nothing tells apart (as the exposed and unexposed incidence rates): not pooled.
        site_row("site_a", 10.0, 5.0, 20.0, analysis_id="rate"),
        site_row("site_a", 12.0, 6.0, 24.0, analysis_id="rate"),
        site_row("site_b", 11.0, 5.0, 22.0, analysis_id="rate"),
        # Only one site has a usable interval: not pooled.
        site_row("site_a", 2.0, 1.0, 4.0, analysis_id="IPTW"),
        site_row("site_b", 2.0, None, None, analysis_id="IPTW"),
        site_row("site_a", math.inf, 0.1, 50.0, analysis_id="SSA"),  # an infinite estimate (no events before)
        site_row("site_b", 2.0, 1.0, 4.0, analysis_id="SSA"),
    ])
    pooling = pool_site_associations(rows, {"leg_cramps": 11}, 11)
    pooled = pooling.pooled.set_index("analysis_id")
    assert sorted(pooled.index) == ["Cox", "logistic"]
    assert any("SSA / hazard ratio: not pooled, 1 of 2 sites" in note for note in pooling.notes)
    assert any("IPTW / hazard ratio: not pooled, 1 of 2 sites have a finite" in note for note in pooling.notes)
    assert any("rate / hazard ratio: not pooled, several rows per site" in note for note in pooling.notes)

    # The pooled events are hidden (a small sum; a site's hidden part), and so is every pooled figure that would
    # recompute them (docs/disclosure.md).
    cox = pooled.loc["Cox"]
    expected = hand_meta([1.0, 4.0], [0.5, 2.0], [2.0, 8.0])
    assert expected["tau_squared"] > 0
    for column in expected:
        assert pd.isna(cox[column]), column
    assert cox["n_sites"] == 2 and cox["sites"] == "site_a,site_b"
    assert cox["n_exposed"] == 220 and cox["n_unexposed"] == 0
    assert pd.isna(cox["events_exposed"]) and pd.isna(cox["events_unexposed"])
    assert cox["suppressed"] and cox["suppressed_columns"] == "events_exposed,events_unexposed"
    assert cox["complementary_columns"].split(",") == [
        "fixed_estimate", "fixed_ci_lower", "fixed_ci_upper", "fixed_p_value", "random_estimate", "random_ci_lower",
        "random_ci_upper", "random_p_value", "hksj_ci_lower", "hksj_ci_upper", "hksj_p_value", "tau_squared",
        "i_squared", "q_statistic", "q_p_value"]

    logistic = pooled.loc["logistic"]
    expected = hand_meta([1.50, 1.52], [1.0, 1.1], [2.25, 2.10])
    assert expected["tau_squared"] == 0 and logistic["tau_squared"] == 0
    for column, value in expected.items():
        assert logistic[column] == pytest.approx(value, rel=1e-9), column
    assert logistic["random_estimate"] == logistic["fixed_estimate"]
    assert not logistic["suppressed"]


def test_three_sites_pool_with_the_hartung_knapp_interval_by_hand():
    """Three sites (HR 1.2, 2.0, 1.5 with SEs 0.20, 0.25, 0.30 of the log HR). By hand: fixed weights 25, 16, 11.11
    (sum 52.11), fixed log HR 0.38674; Q = 2.5508 > k - 1 = 2, so tau^2 = 0.5508 / (52.11 - 1004.46 / 52.11) =
    0.01677 (DerSimonian-Laird); weights w* = 17.61, 12.62, 9.37 (sum 39.60), random-effects log HR 0.39785, DL SE
    1 / sqrt(39.60) = 0.15892. HKSJ: sum w* (y - mu)^2 = 0.8182 + 1.1001 + 0.0005 = 1.9188, over (k - 1) sum w*
    = 0.024231, SE 0.15566; t(2) = 4.3027, so the interval is exp(0.39785 -+ 0.66977) = 0.762 to 2.908, against
    DL's normal exp(0.39785 -+ 1.96 x 0.15892) = 1.090 to 2.033. The same numbers as statsmodels'
    combine_effects(use_t=True) "random effect wls" row."""
    y = np.log([1.2, 2.0, 1.5])
    se = np.array([0.20, 0.25, 0.30])
    rows = pd.DataFrame([site_row(site, math.exp(e), math.exp(e - Z * s), math.exp(e + Z * s), analysis_id="cox_adjusted")
                         for site, e, s in zip(("site_a", "site_b", "site_c"), y, se)])
    pooled = pool_site_associations(rows, {"leg_cramps": 11}, 11).pooled.iloc[0]
    assert pooled["analysis_id"] == "cox_adjusted" and pooled["method_name"] == "Cox PH, adjusted"
    assert pooled["n_sites"] == 3
    assert pooled["tau_squared"] == pytest.approx(0.016772, abs=1e-6)
    assert math.log(pooled["random_estimate"]) == pytest.approx(0.397851, abs=1e-6)
    assert pooled["random_ci_lower"] == pytest.approx(math.exp(0.086372), rel=1e-5)
    assert pooled["random_ci_upper"] == pytest.approx(math.exp(0.709331), rel=1e-5)
    assert pooled["hksj_ci_lower"] == pytest.approx(math.exp(-0.271903), rel=1e-5)
    assert pooled["hksj_ci_upper"] == pytest.approx(math.exp(1.067605), rel=1e-5)
    expected = hand_meta(np.exp(y), np.exp(y - Z * se), np.exp(y + Z * se))
    for column, value in expected.items():
        assert pooled[column] == pytest.approx(value, rel=1e-9), column
    assert pooled["hksj_p_value"] == pytest.approx(2 * stats.t.sf(0.397851 / 0.155661, 2), rel=1e-4)


def test_sites_are_matched_on_the_analysis_id_not_on_the_method_text():
    """Two sites' adjusted Cox models with different covariate counts in their method texts (one site left a
    covariate without outcomes out) are one analysis; rows without an analysis id are not pooled."""
    rows = pd.DataFrame([
        site_row("site_a", 1.5, 1.0, 2.25, analysis_id="cox_adjusted",
                 method="Cox proportional hazards (adjusted for 24 covariates; model-based variance)"),
        site_row("site_b", 1.8, 1.2, 2.7, analysis_id="cox_adjusted",
                 method="Cox proportional hazards (adjusted for 23 covariates; model-based variance)"),
        site_row("site_a", 1.5, 1.0, 2.25, analysis_id=None, method="Cox proportional hazards (old)"),
        site_row("site_b", 1.5, 1.0, 2.25, analysis_id=None, method="Cox proportional hazards (old)"),
    ])
    pooling = pool_site_associations(rows, {"leg_cramps": 11}, 11)
    assert list(pooling.pooled["analysis_id"]) == ["cox_adjusted"]
    assert pooling.pooled["sites"].iloc[0] == "site_a,site_b"
    assert "method" not in pooling.pooled.columns
    assert any("without an analysis_id" in note and "site_a, site_b" in note for note in pooling.notes)


@pytest.mark.slow
def test_two_site_partitions_from_the_sensor_and_the_network_job(tmp_path, dagster_instance):
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.jobs import STUDY_JOB_NAME
    from pipelines.network.assets import NETWORK_JOB_NAME, POOLED_KEY
    from pipelines.operations.sensors import build_extract_drop_sensor
    from pipelines.publish.assets import PUBLISHED_KEY
    from pipelines.synthetic import generate_extract

    landing, sites_dir, network_db = tmp_path / "landing", tmp_path / "sites", tmp_path / "network.duckdb"
    # Sites large enough for adjusted Cox models to have 10 events per coefficient (the estimability rule) and
    # without small cells (the disclosure rule), so the
    # Cox rows the example queries select are estimated, and pooled, at both sites.
    for site, seed in (("site_a", 7), ("site_b", 10)):
        generate_extract(landing / site / "2026_11", patients=4_000, seed=seed, progress=False)

    sensor = build_extract_drop_sensor(landing, sites_dir)
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=dagster_instance, definitions=defs,
                                                        instance_ref=dagster_instance.get_ref()))
    [add_sites] = tick.dynamic_partitions_requests
    assert add_sites.partition_keys == ["site_a", "site_b"]
    assert [r.partition_key for r in tick.run_requests] == ["site_a", "site_b"]

    # What the daemon does with the tick: add the partitions, then launch each requested run.
    dagster_instance.add_dynamic_partitions(add_sites.partitions_def_name, list(add_sites.partition_keys))
    study_job = defs.resolve_job_def(STUDY_JOB_NAME)
    for request in tick.run_requests:
        result = study_job.execute_in_process(
            run_config=request.run_config, instance=dagster_instance, partition_key=request.partition_key,
            tags={k: v for k, v in request.tags.items() if not k.startswith("dagster/")}, raise_on_error=False)
        assert result.success, request.partition_key
    assert dagster_instance.get_materialized_partitions(PUBLISHED_KEY) == {"site_a", "site_b"}

    network = defs.resolve_job_def(NETWORK_JOB_NAME).execute_in_process(
        run_config={"resources": {"network_warehouse": {"config": {"database_path": str(network_db)}}}},
        instance=dagster_instance)
    assert network.success
    [materialization] = [e for e in network.get_asset_materialization_events() if e.asset_key == POOLED_KEY]
    assert not any((tmp_path / ".runs").glob("*.duckdb")), "the network build file must have been published"

    # The per-site rows, read straight from each site's published database (not from the network database).
    site_rows = []
    column_comments = ("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'results' "
                       "AND table_name = ? AND column_name <> 'site' ORDER BY column_index")
    for site in ("site_a", "site_b"):
        with duckdb.connect(str(sites_dir / f"{site}.duckdb"), read_only=True) as con:
            frame = con.execute("SELECT * FROM results.associations").df()
            site_column_comments = con.execute(column_comments, ["associations"]).fetchall()
        site_rows.append(frame.assign(site=site))
    sites = pd.concat(site_rows, ignore_index=True)
    with duckdb.connect(str(network_db), read_only=True) as con:
        pooled = con.execute("SELECT * FROM results.pooled_associations").df()
        copied = con.execute("SELECT count(*) FROM results.site_associations").fetchone()[0]
        network_sites = con.execute("SELECT site, database_path FROM results.network_sites ORDER BY 1").fetchall()
        table_comments = dict(con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'results'").fetchall())
        copied_column_comments = con.execute(column_comments, ["site_associations"]).fetchall()
        uncommented = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'results' "
            "AND (table_name IN ('pooled_associations', 'network_sites') OR column_name = 'site') "
            "AND comment IS NULL").fetchall()
    assert copied == len(sites)
    # The published path analysts open (a link to the site's current version), as the site's run recorded it.
    assert network_sites == [(s, os.path.abspath(sites_dir / f"{s}.duckdb")) for s in ("site_a", "site_b")]
    assert all(table_comments[t] for t in ("pooled_associations", "site_associations", "network_sites"))
    assert uncommented == []
    assert copied_column_comments == site_column_comments  # the site table's own column descriptions
    assert materialization.materialization.metadata["dagster/row_count"].value == len(pooled)

    # Every group both sites estimated once with a usable interval is pooled, and only those. Each site's rows are
    # unique (the incidence rates of the exposed and of the unexposed are two estimands).
    assert not sites.duplicated(["site", *GROUP]).any()
    usable = sites[(sites.estimate > 0) & np.isfinite(sites.estimate) & (sites.ci_lower > 0)
                   & np.isfinite(sites.ci_upper) & (sites.ci_upper > sites.ci_lower)]
    poolable = usable.groupby(GROUP).filter(lambda g: len(g) == 2)
    assert len(pooled) == len(poolable) // 2 > 0

    tau_zero = 0
    for row in pooled.to_dict("records"):
        group = poolable
        for column in GROUP:
            group = group[group[column] == row[column]]
        group = group.sort_values("site")
        assert row["n_sites"] == 2 and row["sites"] == "site_a,site_b"
        complementary = set((row["complementary_columns"] or "").split(",")) - {""}
        expected = hand_meta(group.estimate.to_numpy(), group.ci_lower.to_numpy(), group.ci_upper.to_numpy())
        if "fixed_estimate" in complementary:
            assert all(pd.isna(row[column]) for column in expected), (row["exposure"], row["analysis_id"])
            expected = {}
        for column, value in expected.items():
            # abs 1e-9: a Q of about 1e-5 (sites in near-perfect agreement) differs from the textbook sum in the 8th digit
            assert row[column] == pytest.approx(value, rel=1e-9, abs=1e-9), (row["exposure"], row["analysis_id"], column)
        if expected and expected["tau_squared"] == 0:
            tau_zero += 1
            assert row["random_estimate"] == pytest.approx(row["fixed_estimate"], rel=1e-12)
        threshold = 11  # both studies' small-cell threshold (studies/_defaults.yaml, studies/leg_cramps.yaml)
        suppressed = set((row["suppressed_columns"] or "").split(",")) - {""}
        for column in COUNT_COLUMNS:
            values = [None if pd.isna(v) else v for v in group[column]]
            hidden = [column in (s or "").split(",") for s in group.suppressed_columns]
            count, is_suppressed = expected_count(values, hidden, threshold)
            shown = None if pd.isna(row[column]) else int(row[column])
            if column in complementary:
                count = None
            assert shown == count and (column in suppressed) == is_suppressed, (row["exposure"], column)
    assert tau_zero > 0, "expected some estimates on which the two sites agree (Q < 1, tau^2 = 0)"

    # The analysts' example queries of the network database run on this one.
    queries = [q for q in re.findall(r"```sql\n(.*?)```", (REPO_ROOT / "docs" / "example_queries.md").read_text(), re.S)
               if "build/network.duckdb" in q]
    assert len(queries) == 3
    with duckdb.connect() as con:
        for query in queries:
            for statement in filter(str.strip, query.replace("build/network.duckdb", str(network_db)).split(";")):
                rows = con.execute(statement).fetchall()
            assert rows, query
            con.execute("DETACH network")
    # A site row with a hidden count publishes no estimate, so it is never pooled.
    hidden_at_a_site = sites[sites.suppressed_columns.notna()]
    assert len(hidden_at_a_site) > 0 and hidden_at_a_site.estimate.isna().all()
