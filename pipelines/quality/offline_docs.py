"""Great Expectations Data Docs that render with no network.

GX 1.x writes Data Docs pages that load Bootstrap, jQuery, bootstrap-table, Font Awesome, Vega and a logo from CDNs,
and its index page fills its two tables (validation results, expectation suites) from JavaScript data by
bootstrap-table: offline, the index shows no rows at all. No installed package carries those libraries (altair 6.3
ships no Vega JavaScript; checked), and nothing may be downloaded at run time, so after GX builds the site each page
is rewritten in place:

- every `<link>` and `<script src>` that points to the network is removed, and a small embedded stylesheet takes
  Bootstrap's place (tables, tabs shown one after the other, the GX styles in `static/` still apply);
- the logo loaded from GX's web-assets bucket points to the copy GX writes into `static/images/`;
- each bootstrap-table initialisation is replaced by the rows it would have drawn, as static HTML (each row a link
  to its page, as the clickable rows were), in an order that depends on the results alone (`_in_reading_order`);
- inline scripts that only drive those libraries are removed (they would fail without jQuery);
- the random ids GX gives collapsible blocks are numbered in page order (`_numbered_element_ids`).

With the stores' random ids switched off (runner._gx_context), two runs on the same data publish the same site
except for what names the run: its run id and its times (tests/quality/test_quality_runner.py).

What is lost offline: sorting, filtering and paging of the index tables, and Vega charts (the project's suites draw
none). The post-processing is idempotent: a page with no network reference is left as it is.
"""

from __future__ import annotations

import ast
import html
import os
import re
from pathlib import Path

NETWORK_LINK = re.compile(r"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>\s*", re.IGNORECASE)
NETWORK_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>\s*", re.IGNORECASE)
GX_LOGO = re.compile(r"src=\"https://great-expectations-web-assets[^\"]*/(?P<name>[\w.-]+\.png)[^\"]*\"")
TABLE_INIT = re.compile(
    r"<script>\s*\$\('#(?P<id>[\w-]+)'\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*"
    r"columns: (?P<columns>[^\n]*),\n\s*data: (?P<data>[^\n]*),\n.*?</script>", re.DOTALL)
JQUERY_SCRIPT = re.compile(r"<script>(?:(?!</script>).)*(?:\$\(|\$\.|bootstrapTable|vegaEmbed)(?:(?!</script>).)*"
                           r"</script>\s*", re.DOTALL)
# The random part of a collapsible block's id (GX's collapse.j2: "<block id>-collapse-body-<uuid4>").
RANDOM_ELEMENT_ID = re.compile(r"(?<=-collapse-body-)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OFFLINE_MARK = "<!-- offline: network assets removed by pipelines/quality/offline_docs.py -->"
OFFLINE_STYLE = """<style>
/* Replaces Bootstrap, loaded from a CDN by GX (pipelines/quality/offline_docs.py). */
body { font-family: Arial, Helvetica, sans-serif; font-size: 14px; margin: 0 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { border-bottom: 2px solid #666; }
.tab-pane { display: block; margin-bottom: 2em; }
.nav-tabs, .nav { list-style: none; padding-left: 0; }
.nav-item { display: inline-block; margin-right: 1em; }
.ge-index-page-table-validation-links-item .fa-check-circle::before { content: "\\2714"; color: #198754; }
.ge-index-page-table-validation-links-item .fa-times::before,
.ge-index-page-table-validation-links-item .fa-times-circle::before { content: "\\2716"; color: #dc3545; }
.fas.fa-check-circle::before { content: "\\2714"; color: #198754; }
.fas.fa-times::before, .fas.fa-times-circle::before { content: "\\2716"; color: #dc3545; }
.alert, .card { border: 1px solid #ddd; padding: 0.5em; margin: 0.5em 0; }
.btn { display: none; }
</style>
"""


def _in_reading_order(rows: list[dict]) -> list[dict]:
    """The index's rows in an order that depends on the results alone. GX lists them in the order the files are
    found on disk and leaves the sorting to bootstrap-table in the browser (by run time, which has whole seconds:
    two check steps in one second tie, so two runs on the same data listed them differently). Suites: by name.
    Validations: the latest run first (its latest run time, then its name), and a run's suites by name."""
    if not rows or "run_name" not in rows[0]:
        return sorted(rows, key=lambda row: (str(row.get("expectation_suite_name")),
                                             str(row.get("_table_row_link_path"))))
    latest: dict[str, float] = {}
    for row in rows:
        latest[row["run_name"]] = max(latest.get(row["run_name"], float("-inf")), float(row["_run_time_sort"]))
    return sorted(rows, key=lambda row: (-latest[row["run_name"]], str(row["run_name"]),
                                         str(row.get("_expectation_suite_name_sort")),
                                         str(row.get("_batch_identifier_sort")), str(row.get("_table_row_link_path"))))


def _numbered_element_ids(text: str) -> str:
    """GX gives every collapsible block a random id (uuid4) at each rendering; numbered in page order instead, so
    that the same results render to the same page (the block's link names the same number)."""
    numbers: dict[str, int] = {}
    return RANDOM_ELEMENT_ID.sub(lambda match: str(numbers.setdefault(match.group(0), len(numbers) + 1)), text)


def _static_table(table_id: str, columns: list[dict], rows: list[dict]) -> str:
    """The rows bootstrap-table would draw: one column per visible field, the row linked to its page."""
    header = "".join(f"<th>{html.escape(str(column.get('title', column['field'])))}</th>" for column in columns)
    body = []
    for row in _in_reading_order(rows):
        link = row.get("_table_row_link_path")
        values = [str(row.get(column["field"], "")) for column in columns]  # HTML fragments GX rendered itself
        # The row's link goes on its last cell that is not a link already (anchors do not nest).
        plain = [i for i, value in enumerate(values) if "<a " not in value]
        if link and plain:
            values[plain[-1]] = f'<a href="{html.escape(link)}">{values[plain[-1]]}</a>'
        body.append("<tr>" + "".join(f"<td>{value}</td>" for value in values) + "</tr>")
    return (f'<table id="{table_id}" class="offline-table"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def make_page_offline(text: str, static_dir_relative: str) -> str:
    """One Data Docs page with its network assets removed or replaced (see the module docstring)."""
    if OFFLINE_MARK in text:
        return text
    tables: dict[str, str] = {}
    for match in TABLE_INIT.finditer(text):
        columns = ast.literal_eval(match.group("columns").strip())
        rows = ast.literal_eval(match.group("data").strip())
        tables[match.group("id")] = _static_table(match.group("id"), columns, rows)
    text = TABLE_INIT.sub("", text)
    for table_id, static in tables.items():
        text = re.sub(rf"<table\s+id=\"{re.escape(table_id)}\"[^>]*>\s*</table>", lambda _: static, text)
    text = NETWORK_LINK.sub("", text)
    text = NETWORK_SCRIPT.sub("", text)
    text = JQUERY_SCRIPT.sub("", text)
    text = GX_LOGO.sub(lambda m: f'src="{static_dir_relative}/images/{m.group("name")}"', text)
    text = _numbered_element_ids(text)
    return text.replace("</head>", f"{OFFLINE_MARK}\n{OFFLINE_STYLE}</head>", 1)


def make_data_docs_offline(docs_dir: str | Path) -> int:
    """Rewrite every page of the Data Docs site in `docs_dir` to render with no network; returns pages rewritten."""
    docs_dir = Path(docs_dir)
    static = docs_dir / "static"
    rewritten = 0
    for page in sorted(docs_dir.rglob("*.html")):
        if static in page.parents:
            continue
        text = page.read_text()
        relative = Path(os.path.relpath(static, page.parent)).as_posix()
        offline = make_page_offline(text, relative)
        if offline != text:
            page.write_text(offline)
            rewritten += 1
    return rewritten


def network_references(docs_dir: str | Path) -> list[str]:
    """Every src/href of the site's pages that would load something from the network (outbound links to web pages
    a reader may click are not loads and are not listed)."""
    found = []
    for page in sorted(Path(docs_dir).rglob("*.html")):
        text = page.read_text()
        for match in re.finditer(r"<(link|script|img)\b[^>]*\b(?:src|href)=\"(https?://[^\"]*)\"", text):
            found.append(f"{page.name}: {match.group(2)}")
    return found
