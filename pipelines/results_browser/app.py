"""The results browser: a Starlette application over the published DuckDB database, served by uvicorn.

Why Starlette + uvicorn: both are maintained, run offline, and are already installed as dependencies of the Dagster
webserver, so the browser adds no package; a page is a few lines of SQL and a Jinja2 template. Pages are plain
server-rendered HTML with an embedded stylesheet and no script, so they render with no network.

It never blocks a run: each request opens the published path read-only (`duckdb.connect(..., read_only=True)`)
and closes it before answering. The published path is a link through `<stem>.current` (pipelines/warehouse.py),
so each request reads whichever version is current when it opens, and a publish swaps the link without waiting for
the browser. Figures and reports are served from `<stem>_outputs/` of the same version.

Routes:
    /                      estimates of the published database, filtered by study, exposure and method (analysis id)
    /exposure              one exposure: its definition, Table 1 rows, Kaplan-Meier curve, diagnostics, estimates
    /download/<table>.csv  results.associations (filtered as on /), results.table1 or results.attrition of a study
    /outputs/<study>/<file>  the study's figures and reports
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import jinja2
import pandas as pd
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from pipelines import tables
from pipelines.cohorts.study import load_studies
from pipelines.cohorts.table1 import table1_footnote, table1_lines
from pipelines.disclosure import site_floor
from pipelines.statistics.presentation import (
    analysis_identity,
    cell_text,
    count_text,
    estimate_text,
    label_of,
    p_value_text,
    present,
    variable_labels,
)
from pipelines.statistics.report import REPORT_STYLESHEET

TEMPLATES = Path(__file__).parent / "templates"
# The tables a user may download, with the column that selects a study.
DOWNLOADS = {"associations": tables.ASSOCIATIONS, "table1": tables.TABLE1, "attrition": tables.ATTRITION}
# The files of a study's outputs folder the browser serves (figures and reports, nothing else).
SERVED_SUFFIXES = {".png": "image/png", ".svg": "image/svg+xml", ".html": "text/html", ".md": "text/markdown"}


def outputs_dir_of(database: Path) -> Path:
    """`<stem>_outputs/` beside the published database (pipelines/warehouse.py, Warehouse.published_outputs_dir)."""
    return database.parent / f"{database.stem}_outputs"


def _has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_columns() WHERE schema_name || '.' || table_name = ? "
                       "AND column_name = ?", [table, column]).fetchall()[0][0] > 0


def create_app(database: str | Path, outputs: str | Path | None = None) -> Starlette:
    database = Path(database)
    outputs = Path(outputs) if outputs is not None else outputs_dir_of(database)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    labels = variable_labels()

    @contextmanager
    def connection() -> Iterator[duckdb.DuckDBPyConnection]:
        if not database.exists():
            raise HTTPException(503, f"no published database at {database} yet: run `make run` first")
        con = duckdb.connect(str(database), read_only=True)
        try:
            yield con
        finally:
            con.close()

    def page(template: str, **context) -> HTMLResponse:
        stylesheet = REPORT_STYLESHEET.read_text() + (TEMPLATES / "browser.css").read_text()
        return HTMLResponse(environment.get_template(template).render(
            stylesheet=stylesheet, database=str(database), **context))

    def estimates(con, study: str | None, exposure: str | None, analysis: str | None) -> pd.DataFrame:
        frame = con.execute(
            "SELECT * FROM results.associations WHERE (? IS NULL OR study_id = ?) AND (? IS NULL OR exposure = ?) "
            "ORDER BY study_id, exposure, method", [study, study, exposure, exposure]).df()
        frame = frame.astype(object).where(frame.notna(), None)
        identities = [analysis_identity(row) for row in frame.to_dict("records")]
        frame["analysis_id"] = [i[0] for i in identities]
        frame["method_name"] = [i[1] for i in identities]
        if analysis:
            frame = frame[frame["analysis_id"] == analysis]
        return frame

    studies_by_id = load_studies()

    def threshold_of(con, study: str | None) -> int:
        """The small-cell threshold the run that published the study used (results.attrition records it, the run's
        override included); for rows of several studies or of none (sequence symmetry) the strictest recorded, so a
        hidden count prints as "<t" with t never below the rule that hid it. A database published before the
        threshold was recorded falls back to the study files and the site floor."""
        def recorded_for(one: str | None):
            return con.execute(
                f"SELECT max(small_cell_threshold) FROM {tables.ATTRITION} WHERE ? IS NULL OR study_id = ?",
                [one, one]).fetchall()[0][0]

        recorded = None
        if _has_column(con, tables.ATTRITION, "small_cell_threshold"):
            recorded = recorded_for(study)
            if recorded is None and study not in studies_by_id:
                recorded = recorded_for(None)
        if recorded is not None:
            return int(recorded)
        if study in studies_by_id:
            return studies_by_id[study].threshold
        return max([site_floor(), *(s.threshold for s in studies_by_id.values())])

    def rows_for_display(frame: pd.DataFrame, threshold: int) -> list[dict]:
        return [{"study_id": r["study_id"], "exposure": r["exposure"], "label": label_of(labels, r["exposure"]),
                 "analysis_id": r["analysis_id"], "method_name": r["method_name"],
                 "estimate": estimate_text(r, threshold),
                 "p": cell_text(r, "p_value", threshold, p_value_text),
                 "exposed": f"{cell_text(r, 'n_exposed', threshold, count_text)} / "
                            f"{cell_text(r, 'events_exposed', threshold, count_text)}",
                 "unexposed": f"{cell_text(r, 'n_unexposed', threshold, count_text)} / "
                              f"{cell_text(r, 'events_unexposed', threshold, count_text)}",
                 "reason": r["not_estimable_reason"] or "",
                 "ps": (f"AUC {r['ps_auc']:.3f}" if present(r.get("ps_auc")) else "")}
                for r in frame.to_dict("records")]

    async def index(request: Request) -> HTMLResponse:
        study = request.query_params.get("study") or None
        exposure = request.query_params.get("exposure") or None
        analysis = request.query_params.get("method") or None
        with connection() as con:
            studies = [s for (s,) in con.execute(
                "SELECT DISTINCT study_id FROM results.associations ORDER BY 1").fetchall()]
            everything = estimates(con, study, None, None)
            frame = estimates(con, study, exposure, analysis)
            threshold = threshold_of(con, study)
        exposures = sorted(set(everything["exposure"]), key=lambda e: label_of(labels, e))
        methods = sorted({(r["analysis_id"], r["method_name"]) for r in everything.to_dict("records")},
                         key=lambda m: m[1])
        query = request.url.query
        return page("index.html.j2", studies=studies, study=study or "", exposure=exposure or "",
                    method=analysis or "", exposures=[(e, label_of(labels, e)) for e in exposures],
                    methods=methods, rows=rows_for_display(frame, threshold), query=query,
                    reports=[s for s in studies if (outputs / s / "report.html").exists()])

    async def exposure_page(request: Request) -> HTMLResponse:
        study = request.query_params.get("study") or ""
        exposure = request.query_params.get("exposure") or ""
        with connection() as con:
            frame = estimates(con, study, exposure, None)
            if frame.empty:
                raise HTTPException(404, f"no estimates of {exposure!r} in study {study!r}")
            threshold = threshold_of(con, study)
            definition = con.execute(
                "SELECT phenotype_id, name, domain, version, source_file, sha256 FROM phenotype.definitions "
                "WHERE phenotype_id = ?", [exposure]).fetchall()
            definition = definition[0] if definition else None
            table1 = con.execute("SELECT * FROM results.table1 WHERE study_id = ? AND variable IN ('n', ?)",
                                 [study, exposure]).df()
        table1_records = table1.astype(object).where(table1.notna(), None).to_dict("records")
        groups, lines = table1_lines(table1_records, {k: v.name for k, v in labels.items()}) if table1_records \
            else ([], [])
        km = next((p for p in (outputs / study / "kaplan_meier.svg",) if p.exists()), None)
        label = labels.get(exposure)
        return page("exposure.html.j2", study=study, exposure=exposure, label=label_of(labels, exposure),
                    definition=definition, description=label.description if label else "",
                    category=label.category if label else "", table1_groups=groups, table1=lines,
                    table1_footnote=table1_footnote(threshold)
                    if any(r["suppression"] for r in table1_records) else "",
                    km=km.name if km else None, rows=rows_for_display(frame, threshold),
                    report=(outputs / study / "report.html").exists())

    async def download(request: Request) -> Response:
        name = request.path_params["table"]
        if name not in DOWNLOADS:
            raise HTTPException(404, f"no table {name!r}; tables: {', '.join(DOWNLOADS)}")
        study = request.query_params.get("study") or None
        with connection() as con:
            if name == "associations":
                frame = estimates(con, study, request.query_params.get("exposure") or None,
                                  request.query_params.get("method") or None)
            else:
                frame = con.execute(f"SELECT * FROM {DOWNLOADS[name]} WHERE (? IS NULL OR study_id = ?) "
                                    "ORDER BY ALL", [study, study]).df()
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL)
        # The study id comes from the query string: only its identifier characters reach the header.
        filename = f"{name}{'_' + re.sub(r'[^A-Za-z0-9_-]', '_', study) if study else ''}.csv"
        return Response(buffer.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    async def output_file(request: Request) -> FileResponse:
        study, name = request.path_params["study"], request.path_params["name"]
        path = outputs / study / name
        # Only a figure or report directly in a study's folder: no other file, no path outside it.
        if (Path(study).name != study or Path(name).name != name or study in (".", "..")
                or path.suffix not in SERVED_SUFFIXES or not path.is_file()):
            raise HTTPException(404, f"no output {study}/{name}")
        return FileResponse(path, media_type=SERVED_SUFFIXES[path.suffix])

    return Starlette(routes=[
        Route("/", index),
        Route("/exposure", exposure_page),
        Route("/download/{table}.csv", download),
        Route("/outputs/{study}/{name}", output_file),
    ])
