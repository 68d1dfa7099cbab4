"""The documentation pages generated from definitions: docs/extract_formats.md below its marker (from
pipelines/extract_spec.py) and docs/data_dictionary.md (from pipelines/data_dictionary.yaml). `python -m pipelines.generated_docs` (or `make docs`)
rewrites them; the phenotype reference docs/phenotypes.md is pipelines/phenotypes/reference_page.py's.

Pages generated here are never edited by hand; tests fail when a committed page differs from what its source says.
"""

from __future__ import annotations

from pathlib import Path

from pipelines import extract_spec as spec
from pipelines.data_dictionary import DATA_DICTIONARY_PAGE, data_dictionary_markdown
from pipelines.ingest.reject_share import DEFAULT_MAX_REJECT_SHARE, MAX_REJECT_SHARE_SETTING
from pipelines.paths import DOCS_DIR

EXTRACT_FORMATS_PAGE = DOCS_DIR / "extract_formats.md"
# Where the generated data dictionary of the canonical layout starts on the extract formats page: what precedes it
# is written by hand (the formats, how to add one, real-world extracts), what follows is generated.
CANONICAL_LAYOUT_MARKER = ("<!-- Generated from pipelines/extract_spec.py by `make docs` from here to the end of the "
                           "page; do not edit by hand. -->")


def _values(values: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"`{canonical}` ({', '.join(spellings)})" for canonical, spellings in values.items())


def extract_formats_markdown() -> str:
    """The extract formats page: its hand-written part as committed, then the canonical layout's data dictionary."""
    written = EXTRACT_FORMATS_PAGE.read_text() if EXTRACT_FORMATS_PAGE.exists() else "# Extract formats\n"
    return written.split(CANONICAL_LAYOUT_MARKER)[0].rstrip("\n") + "\n\n" + canonical_layout_markdown()


def canonical_layout_markdown() -> str:
    lines = [
        CANONICAL_LAYOUT_MARKER,
        "",
        "## The canonical layout: data dictionary",
        "",
        (spec.__doc__ or "").strip(),
        "",
        "### Tables",
        "",
    ]
    for table in spec.TABLES:
        lines += [
            f"#### `{table.name}`{'' if table.required else ' (optional)'}",
            "",
            table.description,
            "",
            f"Primary key: `{table.primary_key}`." if table.primary_key else "",
            "Every row's `person_id` must be in `person`." if table.references_person else "",
            "",
            "| column | type | required | description |",
            "|---|---|---|---|",
        ]
        for column in table.columns:
            lines.append(f"| `{column.name}` | {column.type} | {'yes' if column.required else ''} | "
                         f"{column.description} |")
        lines.append("")
    lines += [
        "### Vocabularies",
        "",
        "| vocabulary | meaning |",
        "|---|---|",
        *[f"| `{name}` | {meaning} |" for name, meaning in spec.VOCABULARIES.items()],
        "",
        "Accepted spellings (compared upper-case without spaces, dashes or underscores): "
        + ", ".join(f"`{alias}` → `{name}`" for alias, name in spec.VOCABULARY_ALIASES.items()) + ".",
        "",
        "ICD-10-CM codes may come with or without the dot (`R252` or `R25.2`); staging stores them with the dot "
        "after the third character. Other codes are trimmed and upper-cased.",
        "",
        "### Coded values",
        "",
        f"- `sex`: {_values(spec.SEX_VALUES)}",
        f"- `visit_type`: {_values(spec.VISIT_TYPES)}",
        f"- `laterality`: {_values(spec.LATERALITY_VALUES)}",
        "",
        "Other spellings load unchanged and are reported by the data-quality checks.",
        "",
        "### Rejected rows",
        "",
        "A row that cannot be loaded goes to `ingest.rejects` (table, file, line, column, reason, detail and the raw "
        "record) with the first of these reasons that applies:",
        "",
        "| reason | meaning |",
        "|---|---|",
        *[f"| `{r.code}` | {r.description} |" for r in spec.REJECT_REASONS],
        "",
        "`line` is the physical line of the record in the file, the header being line 1 (for Parquet, the row "
        "number): blank lines and line breaks inside quoted fields count. `ingest.load_counts` has, per table, "
        "`input_records = loaded + rejected` and the count per reason.",
        "",
        "Every physical data line of a CSV file must be a record, a blank line or a line break inside a quoted field; "
        "the ingest counts the lines while it hashes the file for the manifest and reconciles them with what DuckDB "
        "read. Otherwise, typically when a quote is never closed and the reader takes the lines after it into one "
        "record, the load stops with an error naming the file and the line. A carriage return outside quotes that "
        "does not end its line (a CR with no LF after it) stops the load the same way, naming the line: DuckDB's "
        "reader cannot read such a file and does not say where, and the Spark ingest refuses it at the same line; a "
        "CR inside a quoted field is text. The staging asset's metadata shows `physical_lines`, `blank_lines` and "
        "`quoted_line_breaks`.",
        "",
        "The run stops before publishing when the ingest rejects more than one threshold, `max_reject_share` "
        f"(default {DEFAULT_MAX_REJECT_SHARE:.0%}; `legcramp-run --max-reject-share`, or `{MAX_REJECT_SHARE_SETTING}` "
        "in the run configuration), of a "
        "table's records, or of all event records as `unknown_person` (persons lost from the person file), the "
        "share being rounded up to a whole record (a table of fewer than 100 records may lose one): the "
        "blocking asset checks `reject_share_within_threshold` and `unknown_person_share_within_threshold` of "
        "the ingest (pipelines/ingest/reject_share.py). The threshold is a share from 0 to 1, both included: 1 "
        "never stops a run for its rejects (they are still kept in `ingest.rejects` and counted), for an extract "
        "known to be poor that is loaded to be looked at; a value outside the range is refused before any step, "
        "naming the setting and the value.",
        "",
        "Rows that load but are implausible (events after death or outside observation, end before start, "
        "impossible laboratory values, duplicate events, codes that do not exist) are not rejected: the "
        "data-quality checks report them.",
        "",
    ]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


GENERATED_PAGES = {EXTRACT_FORMATS_PAGE: extract_formats_markdown, DATA_DICTIONARY_PAGE: data_dictionary_markdown}


def write_pages() -> list[Path]:
    written = []
    for path, render in GENERATED_PAGES.items():
        path.write_text(render())
        written.append(path)
    return written


if __name__ == "__main__":
    for page in write_pages():
        print(f"wrote {page}")
