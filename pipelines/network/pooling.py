"""Pooled cross-site estimates from the sites' published results.associations rows.

For every (study, exposure, outcome, analysis_id, estimand) that at least two sites estimated with a usable 95%
interval, once per site (rows a site published as not estimable are skipped, and the run notes say which and why),
the sites' estimates are pooled by `pipelines.statistics.meta_analysis_of_results`: inverse-variance fixed effect
and DerSimonian-Laird random effects (tau^2 truncated at 0) with its normal interval and, beside it, the
Hartung-Knapp-Sidik-Jonkman interval (t with k - 1 df), which is the one to read when fewer than five sites are
pooled (IntHout et al. 2014); the standard error of each site is recovered from its interval (see that module).
Sites are matched on the analysis id, not on the method text, which names how many covariates a site's model had:
two sites whose adjusted Cox models dropped different covariates (no outcome among a covariate's holders) still
estimate the same analysis. A site row without an analysis id (a database published before analysis ids) is not
pooled.

Small cells (pipelines/disclosure.py). The sites publish counts of 1 to threshold-1 persons as NULL, with the
estimates that would recompute them, so a site row with a hidden count is not pooled. A pooled count is the sum over
the sites: suppressed when the sum is 1 to threshold-1, or when it contains a count a site suppressed (beside the
other sites' shown counts it would give that one away by subtraction); its complement and the pooled estimates of
the same study, exposure and outcome are then hidden too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from pipelines import tables
from pipelines.disclosure import SUPPRESSION_COLUMNS, suppress_estimates
from pipelines.statistics import EstimateResult, meta_analysis_of_results
from pipelines.sql_quoting import quote_identifier, quote_literal
from pipelines.statistics.results import ANALYSES, COUNT_COLUMNS, RESULT_COLUMNS

SITE_ASSOCIATIONS_TABLE = tables.SITE_ASSOCIATIONS
POOLED_ASSOCIATIONS_TABLE = tables.POOLED_ASSOCIATIONS
NETWORK_SITES_TABLE = tables.NETWORK_SITES
GROUP_COLUMNS = ("study_id", "exposure", "outcome", "analysis_id", "estimand")
PERSON_YEARS_COLUMNS = ("person_years_exposed", "person_years_unexposed")

# (column, DuckDB type, comment) of results.pooled_associations, in order.
POOLED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("study_id", "VARCHAR", "Study (studies/<id>.yaml), or sequence_symmetry."),
    ("exposure", "VARCHAR", "Exposure, as in results.associations."),
    ("outcome", "VARCHAR", "Outcome, as in results.associations."),
    ("analysis_id", "VARCHAR", "The per-site analysis that was pooled, as in results.associations.analysis_id."),
    ("method_name", "VARCHAR", "Short name of that analysis, as in results.associations.method_name."),
    ("estimand", "VARCHAR", "What the per-site estimates estimate (e.g. hazard ratio)."),
    ("n_sites", "INTEGER", "Number of sites pooled (sites with a finite positive estimate and 95% CI)."),
    ("sites", "VARCHAR", "The pooled sites, comma-separated (site = Dagster partition key)."),
    ("fixed_estimate", "DOUBLE", "Fixed-effect (inverse-variance) pooled estimate, ratio scale."),
    ("fixed_ci_lower", "DOUBLE", "Lower bound of the fixed-effect 95% CI."),
    ("fixed_ci_upper", "DOUBLE", "Upper bound of the fixed-effect 95% CI."),
    ("fixed_p_value", "DOUBLE", "Two-sided p-value of the fixed-effect estimate (z test of log ratio = 0)."),
    ("random_estimate", "DOUBLE", "Random-effects (DerSimonian-Laird) pooled estimate, ratio scale; equals the "
                                  "fixed-effect estimate when tau_squared is 0."),
    ("random_ci_lower", "DOUBLE", "Lower bound of the random-effects 95% CI."),
    ("random_ci_upper", "DOUBLE", "Upper bound of the random-effects 95% CI."),
    ("random_p_value", "DOUBLE", "Two-sided p-value of the random-effects estimate."),
    ("hksj_ci_lower", "DOUBLE", "Lower bound of the Hartung-Knapp-Sidik-Jonkman 95% CI of the random-effects "
                                "estimate (t distribution, n_sites - 1 df; IntHout et al. 2014): the interval to "
                                "read when fewer than five sites are pooled."),
    ("hksj_ci_upper", "DOUBLE", "Upper bound of the Hartung-Knapp-Sidik-Jonkman 95% CI."),
    ("hksj_p_value", "DOUBLE", "Two-sided p-value of the random-effects estimate, Hartung-Knapp-Sidik-Jonkman t test."),
    ("tau_squared", "DOUBLE", "Between-site variance of the log estimate (DerSimonian-Laird, truncated at 0)."),
    ("i_squared", "DOUBLE", "Share of the variation between sites due to heterogeneity rather than chance (0-1)."),
    ("q_statistic", "DOUBLE", "Cochran's Q."),
    ("q_p_value", "DOUBLE", "p-value of Cochran's test of homogeneity."),
    ("n_exposed", "BIGINT", "Persons exposed, summed over the sites; NULL when suppressed (see suppressed)."),
    ("n_unexposed", "BIGINT", "Persons unexposed, summed over the sites; NULL when suppressed."),
    ("events_exposed", "BIGINT", "Events among the exposed, summed over the sites; NULL when suppressed."),
    ("events_unexposed", "BIGINT", "Events among the unexposed, summed over the sites; NULL when suppressed."),
    ("person_years_exposed", "DOUBLE", "Person-years exposed, summed over the sites."),
    ("person_years_unexposed", "DOUBLE", "Person-years unexposed, summed over the sites."),
    ("suppressed", "BOOLEAN", "True when a cell is NULL because it is a summed count below the small-cell "
                              "threshold, contains a count a site suppressed, or would recompute such a count."),
    ("suppressed_columns", "VARCHAR", "The count columns suppressed as small (or containing a site's suppressed "
                                      "count), comma-separated."),
    ("complementary_columns", "VARCHAR", "The columns suppressed because they would recompute a suppressed count "
                                         "(its complement, pooled estimates, intervals, statistics, person-years), "
                                         "comma-separated."),
)
# Pooled cells that, with the shown counts, would recompute a suppressed count (docs/disclosure.md).
POOLED_DERIVED_COLUMNS = ("fixed_estimate", "fixed_ci_lower", "fixed_ci_upper", "fixed_p_value", "random_estimate",
                          "random_ci_lower", "random_ci_upper", "random_p_value", "hksj_ci_lower", "hksj_ci_upper",
                          "hksj_p_value", "tau_squared", "i_squared", "q_statistic", "q_p_value",
                          "person_years_exposed", "person_years_unexposed")
POOLED_TABLE_COMMENT = (
    "Cross-site meta-analysis of results.site_associations: one row per study, exposure, outcome, analysis_id and "
    "estimand that at least two sites estimated once each. Fixed-effect (inverse variance) and random-effects "
    "(DerSimonian-Laird) estimates with 95% CIs, the Hartung-Knapp-Sidik-Jonkman interval beside DL's, tau^2, I^2 "
    "and Cochran's Q. Summed counts below the small-cell threshold, or containing a count a site "
    "suppressed, are NULL with suppressed = true.")
SITE_TABLE_COMMENT = (
    "Every site's published results.associations rows, with the site they come from (small cells already "
    "suppressed by the site). The inputs of results.pooled_associations.")
NETWORK_SITES_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("site", "VARCHAR", "Site (Dagster partition key of the study assets)."),
    ("database_path", "VARCHAR", "The site's published database that was read."),
    ("run_id", "VARCHAR", "The Dagster run that published it."),
    ("published_at", "TIMESTAMP", "When that run published it (UTC)."),
    ("association_rows", "BIGINT", "Rows of results.associations read from it."),
)
NETWORK_SITES_COMMENT = "The site databases this version of the network database pooled, one row per site."


@dataclass
class Pooling:
    """The pooled rows, and what could not be pooled (for the run log and the asset metadata)."""

    pooled: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _value(value):
    """A cell as a Python value, with NULL/NaN as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value


def _usable(row: Mapping) -> bool:
    estimate, lower, upper = (_value(row[c]) for c in ("estimate", "ci_lower", "ci_upper"))
    return (estimate is not None and lower is not None and upper is not None and lower > 0
            and 0 < estimate < math.inf and lower < upper < math.inf)


def _site_suppressed(row: Mapping, column: str) -> bool:
    return column in (_value(row.get("suppressed_columns")) or "").split(",")


def pool_site_associations(site_rows: pd.DataFrame, thresholds: Mapping[str, int], strictest_threshold: int) -> Pooling:
    """Pooled rows (columns of POOLED_COLUMNS) from site rows (a `site` column plus the results.associations columns).

    `thresholds` is the small-cell threshold of each study id; ids not in it get `strictest_threshold`.
    """
    columns = [name for name, _, _ in POOLED_COLUMNS]
    rows, notes = [], []
    unidentified = site_rows["analysis_id"].isna() if "analysis_id" in site_rows else pd.Series(True, site_rows.index)
    if unidentified.any():
        notes.append("not pooled: rows without an analysis_id (a site database published before analysis ids) at "
                     + ", ".join(sorted(site_rows.loc[unidentified, "site"].astype(str).unique())))
    for group, frame in site_rows[~unidentified].groupby(list(GROUP_COLUMNS), sort=True, dropna=False):
        label = " / ".join(str(v) for v in group)
        if frame.site.duplicated().any():
            # Rows a site's table does not tell apart (a site database published before the group rates were
            # distinct estimands has two rows per incidence rate): which of them to pool together is unknown.
            notes.append(f"{label}: not pooled, several rows per site with nothing to tell them apart")
            continue
        records = frame.sort_values("site").to_dict("records")
        # A site's row that is not estimable (NULL estimate with a reason) is never pooled.
        not_estimable = [r for r in records if _value(r.get("not_estimable_reason")) is not None]
        if not_estimable:
            notes.append(f"{label}: not pooled at " + "; ".join(
                f"{r['site']} (not estimable: {r['not_estimable_reason']})" for r in not_estimable))
        usable = [r for r in records if _value(r.get("not_estimable_reason")) is None and _usable(r)]
        if len(usable) < 2:
            if len(records) >= 2:
                notes.append(f"{label}: not pooled, {len(usable)} of {len(records)} sites have a finite positive "
                             "estimate and 95% CI")
            continue
        results = [EstimateResult(**{name: _value(r.get(name)) for name in RESULT_COLUMNS}) for r in usable]
        try:
            meta = meta_analysis_of_results(results, [r["site"] for r in usable])
        except ValueError as error:
            notes.append(f"{label}: not pooled: {error}")
            continue
        pooled_counts = {column: getattr(meta.fixed_effect, column) for column in COUNT_COLUMNS}
        site_hidden = {column: any(_site_suppressed(r, column) for r in usable) for column in COUNT_COLUMNS}
        fixed, random, hksj = meta.fixed_effect, meta.random_effects, meta.hartung_knapp
        rows.append({
            **dict(zip(GROUP_COLUMNS, group)),
            "method_name": ANALYSES.get(group[GROUP_COLUMNS.index("analysis_id")]),
            "n_sites": len(usable),
            "sites": ",".join(r["site"] for r in usable),
            "fixed_estimate": fixed.estimate, "fixed_ci_lower": fixed.ci_lower, "fixed_ci_upper": fixed.ci_upper,
            "fixed_p_value": fixed.p_value,
            "random_estimate": random.estimate, "random_ci_lower": random.ci_lower,
            "random_ci_upper": random.ci_upper, "random_p_value": random.p_value,
            "hksj_ci_lower": hksj.ci_lower, "hksj_ci_upper": hksj.ci_upper, "hksj_p_value": hksj.p_value,
            "tau_squared": meta.tau_squared, "i_squared": meta.i_squared,
            "q_statistic": meta.q_statistic, "q_p_value": meta.q_p_value,
            **{column: None if total is None else int(total) for column, total in pooled_counts.items()},
            **{column: getattr(fixed, column) for column in PERSON_YEARS_COLUMNS},
            **{f"site_hidden_{column}": hidden for column, hidden in site_hidden.items()},
        })
    frame = pd.DataFrame(rows, columns=[*columns[:-len(SUPPRESSION_COLUMNS)],
                                        *(f"site_hidden_{column}" for column in COUNT_COLUMNS)])
    return Pooling(suppress_pooled(frame, thresholds, strictest_threshold)[columns], notes)


def suppress_pooled(frame: pd.DataFrame, thresholds: Mapping[str, int], strictest_threshold: int) -> pd.DataFrame:
    """The disclosure rule (pipelines/disclosure.py) on pooled rows, study by study with the study's threshold.

    A summed count that contains a count a site suppressed is hidden as if it were small: with the other sites'
    shown counts it would give that one away by subtraction."""
    parts = []
    for study_id, rows in frame.groupby("study_id", sort=False):
        hidden = {column: rows[f"site_hidden_{column}"] for column in COUNT_COLUMNS}
        parts.append(suppress_estimates(rows, thresholds.get(study_id, strictest_threshold),
                                        POOLED_DERIVED_COLUMNS, hidden=hidden))
    if not parts:
        return suppress_estimates(frame, strictest_threshold, POOLED_DERIVED_COLUMNS)
    return pd.concat(parts).sort_index()


def comment_on_columns(con: duckdb.DuckDBPyConnection, table: str, comments) -> None:
    """COMMENT ON COLUMN for each (column, comment)."""
    for name, comment in comments:
        con.execute(f"COMMENT ON COLUMN {table}.{quote_identifier(name)} IS {quote_literal(comment)}")


def comment_on(con: duckdb.DuckDBPyConnection, table: str, comment: str,
               columns: tuple[tuple[str, str, str], ...] = ()) -> None:
    con.execute(f"COMMENT ON TABLE {table} IS {quote_literal(comment)}")
    comment_on_columns(con, table, [(name, column_comment) for name, _, column_comment in columns])


def create_table(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[tuple[str, str, str], ...],
                 comment: str) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
    con.execute(f"CREATE OR REPLACE TABLE {table} ({', '.join(f'{n} {t}' for n, t, _ in columns)})")
    comment_on(con, table, comment, columns)


def write_pooled(con: duckdb.DuckDBPyConnection, pooled: pd.DataFrame) -> None:
    create_table(con, POOLED_ASSOCIATIONS_TABLE, POOLED_COLUMNS, POOLED_TABLE_COMMENT)
    if not pooled.empty:
        names = ", ".join(name for name, _, _ in POOLED_COLUMNS)
        con.register("pooled_rows", pooled)
        con.execute(f"INSERT INTO {POOLED_ASSOCIATIONS_TABLE} ({names}) SELECT {names} FROM pooled_rows")
        con.unregister("pooled_rows")
