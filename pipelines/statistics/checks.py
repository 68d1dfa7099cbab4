"""Asset checks of the published statistics, run in the run's database right after a study's rows are written.

All are blocking (severity ERROR): a failure stops the run before `published_database`, so a database whose
estimates break one of these is never published (the same gate as the ingest's and the quality suites' fatal
checks).

    unique_keys                    study, exposure, outcome, analysis_id and estimand identify a row
    estimate_inside_interval       every published estimate is finite and inside its 95% CI
    counts_reconcile_with_cohort   each analysis's attrition starts at the cohort, per arm, and ends at the persons
                                   its estimator counted (n_exposed / n_unexposed), where both are shown
    no_small_unsuppressed_count    no published count of 1 .. threshold-1 persons, in estimates (negative controls
                                   included), attrition or the cohort's outcome count
    no_small_count_derivable       nor one that the published counts and the study ledger's sums narrow below the
                                   threshold (the interval audit of statistics/disclosure_audit.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
import duckdb

from pipelines import tables
from pipelines.disclosure import small_count_sql
from pipelines.statistics.analysis_attrition import ANALYSIS_ATTRITION_TABLE
from pipelines.statistics.analysis_attrition import COUNT_COLUMNS as ATTRITION_COUNT_COLUMNS
from pipelines.statistics.disclosure_audit import StudyLedger, audit_published_study
from pipelines.statistics.results import COUNT_COLUMNS

ASSOCIATIONS_TABLE = tables.ASSOCIATIONS
NEGATIVE_CONTROLS_TABLE = tables.NEGATIVE_CONTROL_ESTIMATES
OUTCOME_COUNTS_TABLE = tables.OUTCOME_COUNTS
UNIQUE_KEYS = "unique_keys"
INSIDE_INTERVAL = "estimate_inside_interval"
COUNTS_RECONCILE = "counts_reconcile_with_cohort"
NO_SMALL_COUNT = "no_small_unsuppressed_count"
NO_DERIVABLE_COUNT = "no_small_count_derivable"
DESCRIPTIONS = {
    UNIQUE_KEYS: "Study, exposure, outcome, analysis_id and estimand identify one row of results.associations.",
    INSIDE_INTERVAL: "Every published estimate is finite and lies inside its 95% confidence interval.",
    COUNTS_RECONCILE: "Each analysis's attrition starts at the cohort's persons per arm and ends at the persons its "
                      "estimator counted.",
    NO_SMALL_COUNT: "No published count of 1 to threshold-1 persons in results.associations, "
                    "results.negative_control_estimates, results.analysis_attrition or results.outcome_counts.",
    NO_DERIVABLE_COUNT: "No hidden count of 1 to threshold-1 persons that the published counts and the sums across "
                        "the study's tables bound below the threshold (a linear-programming audit of each hidden "
                        "cell's feasible interval).",
}
# These checks hold the statistics code to its own rules, so a failure is a defect of the pipeline, not of the data.
WHAT_TO_DO = ("Nothing was published (the check blocks publishing). This is a defect of the pipeline, not of the "
              "extract: report the run id, the study and this check to the maintainers; rerunning will not help.")
STUDY_CHECKS = (UNIQUE_KEYS, INSIDE_INTERVAL, COUNTS_RECONCILE, NO_SMALL_COUNT, NO_DERIVABLE_COUNT)
SEQUENCE_SYMMETRY_CHECKS = (UNIQUE_KEYS, INSIDE_INTERVAL, NO_SMALL_COUNT)


def check_specs(asset_key: dg.AssetKey, names: tuple[str, ...]) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=asset_key, description=DESCRIPTIONS[name], blocking=True)
            for name in names]


@dataclass(frozen=True)
class Verdict:
    name: str
    failures: list[str]  # one line per offending row (no person-level data: keys and published values only)
    metadata: dict = field(default_factory=dict)  # what the check measured (counts of cells, never hidden values)

    @property
    def passed(self) -> bool:
        return not self.failures

    def check_result(self, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
        metadata = {"failures": len(self.failures),
                    "examples": dg.MetadataValue.md("\n".join(f"- {f}" for f in self.failures[:20]) or "none"),
                    **self.metadata}
        if not self.passed:
            metadata["what to do"] = WHAT_TO_DO
        return dg.AssetCheckResult(
            check_name=self.name, asset_key=asset_key, passed=self.passed, severity=dg.AssetCheckSeverity.ERROR,
            description=DESCRIPTIONS[self.name], metadata=metadata)


def _lines(con: duckdb.DuckDBPyConnection, sql: str, parameters: list) -> list[str]:
    return [" / ".join("NULL" if v is None else str(v) for v in row) for row in con.execute(sql, parameters).fetchall()]


def unique_keys(con: duckdb.DuckDBPyConnection, study_id: str) -> Verdict:
    return Verdict(UNIQUE_KEYS, _lines(con, f"""
        SELECT exposure, outcome, analysis_id, estimand, count(*) AS rows FROM {ASSOCIATIONS_TABLE}
        WHERE study_id = ? GROUP BY ALL HAVING count(*) > 1 OR analysis_id IS NULL ORDER BY ALL""", [study_id]))


def estimate_inside_interval(con: duckdb.DuckDBPyConnection, study_id: str) -> Verdict:
    return Verdict(INSIDE_INTERVAL, _lines(con, f"""
        SELECT exposure, analysis_id, estimand, estimate, ci_lower, ci_upper FROM {ASSOCIATIONS_TABLE}
        WHERE study_id = ? AND estimate IS NOT NULL
          AND (NOT isfinite(estimate) OR ci_lower IS NULL OR ci_upper IS NULL OR NOT isfinite(ci_lower)
               OR NOT isfinite(ci_upper) OR NOT (ci_lower <= estimate AND estimate <= ci_upper))
        ORDER BY ALL""", [study_id]))


def counts_reconcile_with_cohort(con: duckdb.DuckDBPyConnection, study_id: str) -> Verdict:
    """First step per arm = the cohort's persons per arm (their sum = cohort.study_population's persons, the arms
    themselves are the analysis's split); last step = the estimator's counts; each step chains from the one
    before. Hidden cells (NULL) are not compared."""
    failures = _lines(con, f"""
        WITH cohort AS (SELECT count(*) AS persons FROM cohort.study_population WHERE study_id = $study)
        SELECT a.exposure, a.analysis_id, 'first step ' || a.persons_exposed || ' + ' || a.persons_unexposed
               || ' persons, cohort ' || c.persons
        FROM {ANALYSIS_ATTRITION_TABLE} a, cohort c
        WHERE a.study_id = $study AND a.step_order = 1
          AND a.persons_exposed + a.persons_unexposed IS DISTINCT FROM c.persons
          AND a.persons_exposed IS NOT NULL AND a.persons_unexposed IS NOT NULL
        UNION ALL
        SELECT a.exposure, a.analysis_id, 'step ' || a.step_order || ' does not chain from the step before'
        FROM {ANALYSIS_ATTRITION_TABLE} a
        JOIN {ANALYSIS_ATTRITION_TABLE} b ON b.study_id = a.study_id AND b.analysis_id = a.analysis_id
             AND b.exposure = a.exposure AND b.step_order = a.step_order - 1
        WHERE a.study_id = $study
          AND (b.persons_exposed - a.persons_exposed IS DISTINCT FROM a.excluded_exposed
               AND b.persons_exposed IS NOT NULL AND a.persons_exposed IS NOT NULL AND a.excluded_exposed IS NOT NULL
            OR b.persons_unexposed - a.persons_unexposed IS DISTINCT FROM a.excluded_unexposed
               AND b.persons_unexposed IS NOT NULL AND a.persons_unexposed IS NOT NULL
               AND a.excluded_unexposed IS NOT NULL)
        UNION ALL
        SELECT r.exposure, r.analysis_id, r.estimand || ': estimator counts ' || coalesce(r.n_exposed::VARCHAR, '-')
               || ' / ' || coalesce(r.n_unexposed::VARCHAR, '-') || ', last attrition step '
               || coalesce(l.persons_exposed::VARCHAR, 'hidden') || ' / '
               || coalesce(l.persons_unexposed::VARCHAR, 'hidden')
        FROM {ASSOCIATIONS_TABLE} r
        LEFT JOIN (SELECT * FROM {ANALYSIS_ATTRITION_TABLE} WHERE study_id = $study
                   QUALIFY step_order = max(step_order) OVER (PARTITION BY analysis_id, exposure)) l
          ON l.analysis_id = r.analysis_id AND l.exposure = r.exposure
        WHERE r.study_id = $study AND r.sensitivity_analysis IS NULL
          AND (l.step_order IS NULL
               OR r.n_exposed IS DISTINCT FROM l.persons_exposed AND r.n_exposed IS NOT NULL
                  AND l.persons_exposed IS NOT NULL
               OR r.n_unexposed IS DISTINCT FROM l.persons_unexposed AND r.n_unexposed IS NOT NULL
                  AND l.persons_unexposed IS NOT NULL)
        ORDER BY ALL""", {"study": study_id})  # type: ignore[arg-type]
    return Verdict(COUNTS_RECONCILE, failures)


def no_small_unsuppressed_count(con: duckdb.DuckDBPyConnection, study_id: str, threshold: int) -> Verdict:
    """Every published table of a study's counts: estimates, negative-control estimates, analysis attrition and the
    cohort's outcome count (a table the run has not written, e.g. a study without negative controls, has nothing
    to check)."""
    def any_small(columns) -> str:
        return " OR ".join(small_count_sql(column, threshold) for column in columns)

    present = {row[0] for row in con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()}
    parts = [(ASSOCIATIONS_TABLE, "exposure, analysis_id, estimand", COUNT_COLUMNS),
             (NEGATIVE_CONTROLS_TABLE, "exposure || ' / ' || outcome, analysis_id, estimand", COUNT_COLUMNS),
             (ANALYSIS_ATTRITION_TABLE, "exposure, analysis_id, step", ATTRITION_COUNT_COLUMNS),
             (OUTCOME_COUNTS_TABLE, "outcome, NULL, NULL", ("persons_with_outcome",))]
    selects = [f"SELECT '{table}', {keys} FROM {table} WHERE study_id = $study AND ({any_small(columns)})"
               for table, keys, columns in parts if table in present]
    failures = _lines(con, " UNION ALL ".join(selects) + " ORDER BY ALL",
                      {"study": study_id}) if selects else []  # type: ignore[arg-type]
    return Verdict(NO_SMALL_COUNT, failures)


def no_small_count_derivable(con: duckdb.DuckDBPyConnection, study_id: str, threshold: int,
                             ledger: StudyLedger | None) -> Verdict:
    """The published tables audited against every sum of the study's ledger (disclosure_audit.py): no hidden small
    count recomputable or bounded below the threshold, no printed count contradicting the sums. Without the
    ledger (the inputs publish_study_results keeps on the analysis) there is nothing to audit against: failed."""
    if ledger is None:
        return Verdict(NO_DERIVABLE_COUNT, ["no ledger of the study's counts was given: nothing was audited"])
    audit = audit_published_study(con, study_id, threshold, ledger)
    return Verdict(NO_DERIVABLE_COUNT, audit.failures(), metadata=audit.summary())


def run_checks(con: duckdb.DuckDBPyConnection, study_id: str, threshold: int, names: tuple[str, ...],
               ledger: StudyLedger | None = None) -> list[Verdict]:
    """`ledger`: the study's (StudyAnalysis.disclosure_ledger), for NO_DERIVABLE_COUNT."""
    verdicts = {UNIQUE_KEYS: lambda: unique_keys(con, study_id),
                INSIDE_INTERVAL: lambda: estimate_inside_interval(con, study_id),
                COUNTS_RECONCILE: lambda: counts_reconcile_with_cohort(con, study_id),
                NO_SMALL_COUNT: lambda: no_small_unsuppressed_count(con, study_id, threshold),
                NO_DERIVABLE_COUNT: lambda: no_small_count_derivable(con, study_id, threshold, ledger)}
    return [verdicts[name]() for name in names]
