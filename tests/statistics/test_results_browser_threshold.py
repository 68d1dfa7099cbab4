"""The results browser prints the small-cell threshold the run used ("<20" for a run that raised it), read from
the published database (results.attrition.small_cell_threshold), not the study file's."""

from __future__ import annotations

import asyncio

import duckdb

from pipelines.cohorts.attrition import inclusion_steps, published_attrition
from pipelines.cohorts.study import load_studies
from pipelines.results_browser import create_app
from pipelines.sql import read_sql
from pipelines.statistics.assets import publish_study_results
from pipelines.statistics.results import EstimateResult
from pipelines.statistics.study_analysis import AT_RISK_STEP, COHORT_STEP, AttritionStep, StudyAnalysis


def _get(app, path: str, query: str = "") -> tuple[int, str]:
    """One GET through the ASGI interface (no HTTP client needed)."""
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "headers": [], "http_version": "1.1", "scheme": "http", "server": ("test", 80),
             "client": ("test", 1), "root_path": ""}
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()


def test_the_browser_prints_the_threshold_the_run_used(tmp_path):
    file_study = load_studies()["leg_cramps"]
    assert file_study.threshold == 11
    study = file_study.model_copy(update={"small_cell_threshold": 20})  # the run's override
    database = tmp_path / "published.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute(read_sql("cohorts/create_tables.sql"))
        counts = [(code.code, 1000, 1000, 0) for code in inclusion_steps(study)]
        rows, _ = published_attrition(study, counts, study.threshold)
        con.executemany("INSERT INTO results.attrition (study_id, step_order, step_code, step, persons_before, "
                        "persons_after, persons_removed, persons_before_text, persons_after_text, "
                        "persons_removed_text, suppressed, small_cell_threshold) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [tuple(vars(r).values()) for r in rows])
        analysis = StudyAnalysis(study.id)
        result = EstimateResult(method="rate", estimand="incidence rate, exposed", estimate=15.0, ci_lower=10.0,
                                ci_upper=20.0, p_value=None, n_exposed=400, events_exposed=15,
                                person_years_exposed=1000.0, analysis_id="incidence_rate")
        analysis.add("statins", "leg_cramps", [result], {"": [AttritionStep(COHORT_STEP, None, 400, 600),
                                                              AttritionStep(AT_RISK_STEP, "zero", 400, 600)]})
        publish_study_results(con, study, analysis)
        assert con.execute("SELECT DISTINCT small_cell_threshold FROM results.attrition").fetchall() == [(20,)]
    app = create_app(database)
    for query in ("study=leg_cramps", ""):
        status, page = _get(app, "/", query)
        assert status == 200
        assert "&lt;20" in page and "&lt;11" not in page, query  # 15 events: hidden at 20, printed as "<20"

