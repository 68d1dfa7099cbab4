"""The study report (HTML and Markdown), the study forest plot, the results browser and the offline Data Docs, on one
generated study database built once for the module (2,000 patients: some counts are small, so suppression shows).

Headless Chromium (/usr/bin/chromium) opens the report, the Data Docs and the browser with every outside request
sent to a dead proxy, so a page that needs the network renders without it here as it would offline.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from html import escape
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest
from matplotlib.text import Text

from pipelines.cohorts import load_studies
from pipelines.phenotypes.loader import phenotype_library
from pipelines.quality.offline_docs import network_references
from pipelines.quality.runner import run_suites
from pipelines.statistics.assets import publish_study_results
from pipelines.statistics.plots import study_forest_plot
from pipelines.statistics.presentation import analysis_identity, p_value_text
from pipelines.statistics.report import summary_markdown, write_study_plots, write_study_reports
from pipelines.statistics.study_analysis import analyse_study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
# Every request that is not to 127.0.0.1 goes to a proxy that does not exist: the page sees no network.
# The screening study's exposures analysed here: a few of each seed category keep the module fast (the models
# of all 38 take most of a minute) while the report still groups, labels and suppresses real rows. The Table 1
# split (thiazide diuretics) stays, for the Kaplan-Meier curves. One sensitivity analysis (each outcome variant
# reruns every model; tests/statistics/test_statistics_sensitivity*.py test them).
ANALYSED_EXPOSURES = ("peripheral_arterial_disease", "hyponatremia_lab", "heat_exposure", "peripheral_neuropathy",
                      "statins", "thiazide_diuretics")
OFFLINE_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--proxy-server=127.0.0.1:9",
                 "--window-size=1400,1000", "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def published(tmp_path_factory, study_database):
    """A built study database with published estimates, plots, reports and a Data Docs site beside it, laid out as
    a published version is: <stem>.duckdb and <stem>_outputs/<study>/."""
    root = tmp_path_factory.mktemp("reporting")
    database = root / "leg_cramps.duckdb"
    shutil.copy(study_database(2_000, 1), database)  # ingested, phenotyped, cohorts built
    outputs = root / "leg_cramps_outputs"
    studies = {study_id: study.model_copy(update={"exposures": [
        r for r in study.exposures if r.phenotype in ANALYSED_EXPOSURES or study.index.rule == "new_user"],
        "sensitivity_analyses": study.sensitivity_analyses[:1]})
        for study_id, study in load_studies().items()}
    published = {}
    with duckdb.connect(str(database)) as con:
        for study in studies.values():
            analysis = analyse_study(con, study)
            frame = publish_study_results(con, study, analysis)
            plots = write_study_plots(study, analysis, frame, outputs / study.id)
            write_study_reports(con, study, analysis, frame, plots, outputs / study.id)
            published[study.id] = frame
    run_suites(database, ["staging.person"], docs_dir=outputs / "data_docs")
    return SimpleNamespace(root=root, database=database, outputs=outputs, studies=studies, frames=published)


def _associations(database: Path, study_id: str) -> pd.DataFrame:
    with duckdb.connect(str(database), read_only=True) as con:
        frame = con.execute("SELECT * FROM results.associations WHERE study_id = ?", [study_id]).df()
    frame = frame.astype(object).where(frame.notna(), None)
    frame["analysis_id"] = [analysis_identity(row)[0] for row in frame.to_dict("records")]
    return frame


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *OFFLINE_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Names and numbers
# ---------------------------------------------------------------------------------------------------------------

def test_analysis_ids_come_from_the_row_not_the_method_text_and_p_values_print_as_journals_do():
    cox = "Cox proportional hazards (adjusted for age, female; model-based variance; Efron ties, Newton-Raphson)"
    # The row's own columns, or the name of its id; the method text decides nothing.
    assert analysis_identity({"analysis_id": "cox_adjusted", "method_name": "Cox PH, adjusted", "method": cox}) == \
        ("cox_adjusted", "Cox PH, adjusted")
    assert analysis_identity({"analysis_id": "ps_iptw_cox", "method_name": None, "method": cox}) == \
        ("ps_iptw_cox", "Cox PH, stabilised IPTW")
    assert analysis_identity({"analysis_id": "aj_risk", "method_name": float("nan"), "method": "x"})[0] == "aj_risk"
    # A row without an id (a database published before analysis ids) gets none, named by its method text.
    assert analysis_identity({"method": cox, "estimand": "hazard ratio"}) == ("", cox)
    assert [p_value_text(p) for p in (0.0, 0.00099, 0.001, 0.0123, 0.5)] == ["<0.001", "<0.001", "0.001", "0.012",
                                                                             "0.500"]


def _texts(figure) -> list[str]:
    return [text.get_text() for text in figure.findobj(Text) if text.get_text()]


def test_study_forest_plot_groups_exposures_by_category_with_counts_and_suppression(tmp_path):
    rows = pd.DataFrame([
        dict(label="Statins", category="Drugs", estimate=1.5, ci_lower=1.1, ci_upper=2.05, n_exposed=400,
             events_exposed=30, n_unexposed=1500, events_unexposed=100, not_estimable_reason=None,
             suppressed_columns=None, complementary_columns=None),
        dict(label="Peripheral arterial disease", category="Vascular", estimate=None, ci_lower=None, ci_upper=None,
             n_exposed=46, events_exposed=None, n_unexposed=1861, events_unexposed=None, not_estimable_reason=None,
             suppressed_columns="events_exposed",
             complementary_columns="events_unexposed,estimate,ci_lower,ci_upper"),
        dict(label="Heat exposure", category="Electrolytes and fluid", estimate=None, ci_lower=None, ci_upper=None,
             n_exposed=30, events_exposed=0, n_unexposed=1800, events_unexposed=140,
             not_estimable_reason="no events among the exposed", suppressed_columns=None,
             complementary_columns=None),
    ])
    path = tmp_path / "forest.png"
    figure = study_forest_plot(rows, path, threshold=11, estimate_label="Adjusted Cox HR",
                               category_order=["Vascular", "Electrolytes and fluid", "Drugs"])
    texts = _texts(figure)
    # Categories in the library's order, each above its exposures.
    order = [texts.index(t) for t in ("Vascular", "Peripheral arterial disease", "Electrolytes and fluid",
                                      "Heat exposure", "Drugs", "Statins")]
    assert order == sorted(order)
    assert "400 / 30" in texts and "1,500 / 100" in texts and "1.50 (1.10–2.05)" in texts
    # A small count prints "<11", what would give it away "hidden", and a hidden estimate draws no point.
    assert "46 / <11" in texts and "1,861 / hidden" in texts and "hidden" in texts
    assert "not estimable" in texts
    [axes] = figure.axes
    assert axes.get_xscale() == "log"
    points = [line for line in axes.get_lines() if line.get_marker() == "s"]
    assert len(points) == 1 and points[0].get_xdata()[0] == pytest.approx(1.5)
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in axes.get_lines())  # the reference line
    assert figure.get_figwidth() == pytest.approx(8.27)  # A4 width
    svg = path.with_suffix(".svg").read_text()
    assert "<svg" in svg and "Peripheral arterial disease" in svg  # SVG text stays text


# ---------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------

def test_html_report_names_phenotypes_summarises_the_primary_analysis_and_embeds_everything(published):
    study = published.studies["leg_cramps"]
    html = (published.outputs / study.id / "report.html").read_text()
    frame = _associations(published.database, study.id)
    primary = frame[frame["analysis_id"] == "cox_adjusted"]
    threshold = study.threshold

    # Self-contained: no stylesheet, script or image loaded from anywhere; figures are inline SVG.
    assert not re.findall(r"<(?:link|script|img)\b[^>]*(?:src|href)=\"https?://", html)
    assert "<script" not in html and html.count("<svg") >= 2
    # The summary: one row per exposure of the primary analysis, named by its phenotype, with its published counts.
    summary = html[html.index('id="summary-table"'):html.index("</table>", html.index('id="summary-table"'))]
    assert set(re.findall(r'data-exposure="([^"]+)"', summary)) == set(primary["exposure"])
    names = {p.id: p.definition.name for p in phenotype_library()}
    shown = primary[primary["n_exposed"].notna() & primary["events_exposed"].notna()].iloc[0]
    row = re.search(rf'<tr data-exposure="{shown["exposure"]}">(.*?)</tr>', summary).group(1)
    assert escape(names[shown["exposure"]]) in row
    assert f"{int(shown['n_exposed']):,} / {int(shown['events_exposed']):,}" in row
    small = primary[primary["suppressed_columns"].fillna("").str.contains("events_exposed")].iloc[0]
    row = re.search(rf'<tr data-exposure="{small["exposure"]}">(.*?)</tr>', summary).group(1)
    assert f"/ &lt;{threshold}" in row and "suppressed" in row
    # Each exposure links to its definition in the report.
    assert f'href="#def-{shown["exposure"]}"' in summary and f'id="def-{shown["exposure"]}"' in html
    # The adjustment set is named in notes, never in a table row.
    assert "Cox PH, adjusted: adjusted for Age, Female sex" in html
    assert not any("adjusted for" in body for body in re.findall(r"<tbody>(.*?)</tbody>", html, re.DOTALL))
    # Table 1 in tableone's layout with the suppression footnote.
    assert '<td class="indent">F</td>' in html and "Sex, n (%)" in html
    assert '<a href="#def-peripheral_arterial_disease">Peripheral arterial disease, n (%)</a>' in html
    assert "the smallest other non-zero count was hidden" in html


def test_markdown_report_is_short_and_readable(published):
    study = published.studies["leg_cramps"]
    text = (published.outputs / study.id / "report.md").read_text()
    frame = _associations(published.database, study.id)
    # Names, not ids; no covariate list in a row; p-values as journals print them.
    assert "| peripheral_arterial_disease |" not in text and "| Peripheral arterial disease |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert not any("adjusted for" in line for line in rows)
    assert not any(re.search(r"\| 0\.000 \|", line) for line in rows)
    if (frame["p_value"].dropna() < 0.001).any():
        assert "| <0.001 |" in text
    # The summary comes first and counts every row of the study's main analysis once (the sensitivity analyses'
    # rows have their own section).
    assert text.index("## Summary") < text.index("## Table 1")
    total = int(frame["sensitivity_analysis"].isna().sum())
    assert total < len(frame) and "## Sensitivity analyses" in text
    assert f"of {total} estimates published" in text
    # The asset metadata's summary is the same table.
    assert summary_markdown(published.frames[study.id], study).splitlines()[0].startswith(
        "| exposure | Cox PH, adjusted (95% CI) |")


@needs_chromium
def test_report_and_data_docs_render_without_network(published, tmp_path):
    report = published.outputs / "leg_cramps" / "report.html"
    screenshot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", report.as_uri())
    assert screenshot.stat().st_size > 30_000, "the report looks blank"
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    assert "Summary: Cox PH, adjusted per exposure" in dom and 'id="summary-table"' in dom

    docs = published.outputs / "data_docs"
    assert network_references(docs) == []
    dom = _chromium(tmp_path, "--dump-dom", (docs / "index.html").as_uri()).stdout
    # The index's tables are drawn (by JavaScript from a CDN before): a row per suite, linked to its page.
    assert '<td><a href="expectations/staging/person.html">staging.person</a></td>' in dom


# ---------------------------------------------------------------------------------------------------------------
# The results browser
# ---------------------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def browser(published):
    """The results browser served by uvicorn on a free port, as `python -m pipelines.results_browser` serves it (in
    a thread of this process: the modules are imported already, so it starts at once)."""
    import threading

    import uvicorn

    from pipelines.results_browser import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(published.database), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "the results browser did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@needs_chromium
def test_results_browser_filters_estimates_in_chromium(published, browser, tmp_path):
    frame = _associations(published.database, "leg_cramps")
    crude_irr = frame[frame["analysis_id"] == "crude_irr"]
    url = f"{browser}/?study=leg_cramps&method=crude_irr"
    screenshot = tmp_path / "browser.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", url)
    assert screenshot.stat().st_size > 30_000, "the browser page looks blank"
    dom = _chromium(tmp_path, "--dump-dom", url).stdout
    assert set(re.findall(r'data-method="([^"]+)"', dom)) == {"crude_irr"}
    assert len(re.findall(r"<tr data-exposure=", dom)) == len(crude_irr)
    assert 'id="row-count">' + str(len(crude_irr)) in dom

    statins = frame[frame["exposure"] == "statins"]
    dom = _chromium(tmp_path, "--dump-dom", f"{browser}/?study=leg_cramps&exposure=statins").stdout
    assert set(re.findall(r'data-exposure="([^"]+)"', dom)) == {"statins"}
    assert len(re.findall(r"<tr data-exposure=", dom)) == len(statins)


def test_results_browser_opens_an_exposure_and_downloads_tables(published, browser):
    status, page = _get(f"{browser}/exposure?study=leg_cramps&exposure=statins")
    assert status == 200
    statins = phenotype_library()["statins"].definition
    assert statins.description.strip()[:60] in page and "Statins, n (%)" in page
    assert 'id="km" src="/outputs/leg_cramps/kaplan_meier.svg"' in page
    assert _get(f"{browser}/outputs/leg_cramps/kaplan_meier.svg")[0] == 200
    assert _get(f"{browser}/outputs/leg_cramps/..%2F..%2Fleg_cramps.duckdb")[0] == 404
    # A report-like file beside the outputs folder is not reached through ".." as the study either.
    (published.outputs.parent / "beside.md").write_text("not an output")
    assert _get(f"{browser}/outputs/%2E%2E/beside.md")[0] == 404

    status, text = _get(f"{browser}/download/associations.csv?study=leg_cramps&method=crude_irr")
    rows = list(csv.DictReader(io.StringIO(text)))
    frame = _associations(published.database, "leg_cramps")
    assert status == 200 and len(rows) == (frame["analysis_id"] == "crude_irr").sum()
    assert {row["analysis_id"] for row in rows} == {"crude_irr"} and {row["study_id"] for row in rows} == {"leg_cramps"}
    status, text = _get(f"{browser}/download/table1.csv?study=leg_cramps")
    assert status == 200 and "Age" not in text.splitlines()[0] and "suppression" in text.splitlines()[0]

    # The browser holds no connection between requests: a run can open the database for writing.
    with duckdb.connect(str(published.database)) as writer:
        assert writer.execute("SELECT count(*) FROM results.associations").fetchone()[0] > 0
