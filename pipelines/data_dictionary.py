"""The data dictionary of the published database: comments on every table and column, and docs/data_dictionary.md.

The texts live in pipelines/data_dictionary.yaml (every schema but `staging`, whose texts live in
pipelines/extract_spec.py and are put on by the ingest). Before a run publishes, `comment_database` writes them
into the run's database as DuckDB comments, so an analyst sees them in any SQL client:

    SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = 'results';

It first checks the dictionary against the database and refuses (DataDictionaryError, naming every table and column
at fault) when a column the dictionary describes does not exist, or a table or column of the database has no
description; a table the dictionary describes may be absent (a run of part of the asset graph builds only some
schemas), unless `require_every_table` is set. `python -m pipelines.generated_docs` writes docs/data_dictionary.md from the
same texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import yaml

from pipelines import extract_spec as spec
from pipelines.paths import DOCS_DIR, REPO_ROOT
from pipelines.sql_quoting import qualified_name, quote_identifier, quote_literal
from pipelines.warehouse import BUILD_FILE_WRITER_SETTINGS

DATA_DICTIONARY_PATH = Path(__file__).with_name("data_dictionary.yaml")
DATA_DICTIONARY_PAGE = DOCS_DIR / "data_dictionary.md"

# Described by pipelines/extract_spec.py and commented by the ingest; here only checked to carry comments.
STAGING_SCHEMA = "staging"
# DuckDB's own schemas, which hold no published data.
SYSTEM_SCHEMAS = ("information_schema", "pg_catalog")


class DataDictionaryError(Exception):
    """The dictionary and the database disagree, or the dictionary file is malformed."""


@dataclass(frozen=True)
class ColumnFamilySource:
    """A list the pipeline owns whose items each give a table one or more columns (cohort.study_population's
    columns per phenotype, ingest.load_counts' columns per reject reason)."""

    items: Callable[[], list[dict[str, str]]]
    # How the page shows a column name or text template: one example field value per placeholder.
    placeholders: dict[str, str]
    # True when the table has a column for every item; False when only for some (the phenotypes a study records).
    every_item_has_columns: bool
    # Where the list is documented, for the generated page.
    documented_in: str


def _phenotype_items() -> list[dict[str, str]]:
    # Imported here: the phenotype loader is only needed when a table with phenotype columns is described. The
    # library as read and checked once per process (the publish step describes every table of the run's database).
    from pipelines.phenotypes.loader import phenotype_library

    return [{"id": p.id, "name": p.definition.name} for p in phenotype_library()]


COLUMN_FAMILY_SOURCES: dict[str, ColumnFamilySource] = {
    "phenotype": ColumnFamilySource(
        items=_phenotype_items,
        placeholders={"id": "<phenotype_id>", "name": "<phenotype name>"},
        every_item_has_columns=False,
        documented_in="the phenotype definitions ([phenotypes.md](phenotypes.md))",
    ),
    "reject_reason": ColumnFamilySource(
        items=lambda: [{"code": r.code, "description": r.description} for r in spec.REJECT_REASONS],
        placeholders={"code": "<reason>", "description": "<meaning of the reason>"},
        every_item_has_columns=True,
        documented_in="the reject reasons ([extract_formats.md](extract_formats.md#rejected-rows))",
    ),
}


@dataclass(frozen=True)
class ColumnFamily:
    """Columns made per item of a COLUMN_FAMILY_SOURCES list: {name template: text template}."""

    per: str
    templates: dict[str, str]

    @property
    def source(self) -> ColumnFamilySource:
        return COLUMN_FAMILY_SOURCES[self.per]

    def columns(self) -> dict[str, str]:
        """Every column the family can make, with its text."""
        return {name.format(**item): text.format(**item)
                for item in self.source.items() for name, text in self.templates.items()}

    def template_rows(self) -> dict[str, str]:
        """The templates with placeholders shown, for the generated page."""
        shown = self.source.placeholders
        return {name.format(**shown): text.format(**shown) for name, text in self.templates.items()}


@dataclass(frozen=True)
class TableEntry:
    name: str  # schema.table
    description: str
    columns: dict[str, str]  # every listed column with its text (common texts filled in), in table order
    families: tuple[ColumnFamily, ...] = ()

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]

    def column_texts(self) -> dict[str, str]:
        """Every column this entry can describe: the listed ones, then those of its families."""
        texts: dict[str, str] = {}
        for family in self.families:
            texts.update(family.columns())
        texts.update(self.columns)  # a listed column wins over a family's
        return texts


@dataclass(frozen=True)
class DataDictionary:
    common_columns: dict[str, str]
    tables: dict[str, TableEntry]


# ---------------------------------------------------------------------------------------------------------------
# Reading the dictionary
# ---------------------------------------------------------------------------------------------------------------
def load_data_dictionary(path: Path | str = DATA_DICTIONARY_PATH) -> DataDictionary:
    """Read and check the dictionary file; a DataDictionaryError names every entry at fault."""
    path = Path(path)
    where = _display(path)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DataDictionaryError(f"{where}: not valid YAML: {' '.join(str(error).split())}") from error
    problems: list[str] = []
    common = document.get("common_columns") or {}
    for name, text in common.items():
        if not _is_text(text):
            problems.append(f"common_columns.{name}: needs a description")
    common_used: set[str] = set()
    tables: dict[str, TableEntry] = {}
    for table_name, entry in (document.get("tables") or {}).items():
        if table_name.count(".") != 1:
            problems.append(f"{table_name}: name tables as schema.table")
            continue
        if table_name.split(".")[0] == STAGING_SCHEMA:
            problems.append(f"{table_name}: staging is described in pipelines/extract_spec.py, not here")
            continue
        entry = entry or {}
        unknown_keys = set(entry) - {"description", "columns", "column_families"}
        if unknown_keys:
            problems.append(f"{table_name}: unknown keys {', '.join(sorted(unknown_keys))}")
        if not _is_text(entry.get("description")):
            problems.append(f"{table_name}: needs a description")
        columns: dict[str, str] = {}
        for column, text in (entry.get("columns") or {}).items():
            if text is None and column in common:
                common_used.add(column)
                text = common[column]
            if not _is_text(text):
                problems.append(f"{table_name}.{column}: needs a description (or a common_columns entry)")
                continue
            columns[column] = " ".join(text.split())
        families = []
        for family in entry.get("column_families") or []:
            per, templates = family.get("per"), family.get("columns") or {}
            if per not in COLUMN_FAMILY_SOURCES:
                problems.append(f"{table_name}: column family per {per!r}; known: {', '.join(COLUMN_FAMILY_SOURCES)}")
                continue
            placeholders = COLUMN_FAMILY_SOURCES[per].placeholders
            try:
                for name, text in templates.items():
                    name.format(**placeholders), text.format(**placeholders)
            except (KeyError, IndexError) as error:
                problems.append(f"{table_name}: column family per {per}: unknown field {error} "
                                f"(fields: {', '.join(placeholders)})")
                continue
            families.append(ColumnFamily(per, {name: " ".join(text.split()) for name, text in templates.items()}))
        tables[table_name] = TableEntry(table_name, " ".join(str(entry.get("description", "")).split()), columns,
                                        tuple(families))
    for name in sorted(set(common) - common_used):
        problems.append(f"common_columns.{name}: no table uses it")
    if problems:
        raise DataDictionaryError(f"{where}:\n  - " + "\n  - ".join(problems))
    return DataDictionary({name: " ".join(text.split()) for name, text in common.items()}, tables)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------------------------
# Checking and commenting a database
# ---------------------------------------------------------------------------------------------------------------
def database_columns(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str | None]]:
    """{schema.table: {column: comment}} of every table of the connected database (not temporary, not DuckDB's)."""
    rows = con.execute(
        """
        SELECT c.schema_name || '.' || c.table_name, c.column_name, c.comment
        FROM duckdb_columns() AS c
        JOIN duckdb_tables() AS t
          ON t.database_name = c.database_name AND t.schema_name = c.schema_name AND t.table_name = c.table_name
        WHERE c.database_name = current_database() AND NOT t.temporary AND NOT t.internal
          AND list_position(?, c.schema_name) IS NULL
        ORDER BY c.schema_name, c.table_name, c.column_index
        """,
        [list(SYSTEM_SCHEMAS)],
    ).fetchall()
    tables: dict[str, dict[str, str | None]] = {}
    for table, column, comment in rows:
        tables.setdefault(table, {})[column] = comment
    return tables


def dictionary_problems(dictionary: DataDictionary, tables: dict[str, dict[str, str | None]],
                        staging_table_comments: dict[str, str | None], require_every_table: bool) -> list[str]:
    """Every disagreement between the dictionary and a database's tables ({schema.table: {column: comment}})."""
    where = _display(DATA_DICTIONARY_PATH)
    problems = []
    for name, entry in dictionary.tables.items():
        if name not in tables:
            if require_every_table:
                problems.append(f"{name}: described in {where} but not in the database")
            continue
        present = tables[name]
        for column in entry.columns:
            if column not in present:
                problems.append(f"{name}.{column}: described in {where} but the table has no such column")
        for family in entry.families:
            if family.source.every_item_has_columns:
                for column in family.columns():
                    if column not in present:
                        problems.append(f"{name}.{column}: described in {where} (one column per {family.per}) "
                                        "but the table has no such column")
        texts = entry.column_texts()
        for column in present:
            if column not in texts:
                problems.append(f"{name}.{column}: published but has no description in {where}")
    for name, columns in tables.items():
        schema = name.split(".")[0]
        if schema == STAGING_SCHEMA:
            if not staging_table_comments.get(name):
                problems.append(f"{name}: no comment (staging comments come from pipelines/extract_spec.py, put "
                                "on by the ingest)")
            for column, comment in columns.items():
                if not comment:
                    problems.append(f"{name}.{column}: no comment (staging comments come from "
                                    "pipelines/extract_spec.py, put on by the ingest)")
        elif name not in dictionary.tables:
            problems.append(f"{name}: published but has no description in {where}")
    return problems


def comment_database(con: duckdb.DuckDBPyConnection, dictionary: DataDictionary | None = None, *,
                     require_every_table: bool = False) -> list[str]:
    """Put the dictionary's texts on every table and column of the connected database; the described tables that
    are absent. Nothing is written when the dictionary and the database disagree (DataDictionaryError)."""
    dictionary = dictionary or load_data_dictionary()
    tables = database_columns(con)
    staging_comments = dict(con.execute(
        "SELECT schema_name || '.' || table_name, comment FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = ?", [STAGING_SCHEMA]).fetchall())
    problems = dictionary_problems(dictionary, tables, staging_comments, require_every_table)
    if problems:
        raise DataDictionaryError(
            f"the database and the data dictionary disagree ({len(problems)}):\n  - " + "\n  - ".join(problems))
    con.begin()
    try:
        for name, entry in dictionary.tables.items():
            if name not in tables:
                continue
            table = qualified_name(*name.split(".", 1))
            con.execute(f"COMMENT ON TABLE {table} IS {quote_literal(entry.description)}")
            texts = entry.column_texts()
            for column in tables[name]:
                con.execute(f"COMMENT ON COLUMN {table}.{quote_identifier(column)} "
                            f"IS {quote_literal(texts[column])}")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return [name for name in dictionary.tables if name not in tables]


def comment_database_file(path: Path | str, *, require_every_table: bool = False) -> list[str]:
    """comment_database on a DuckDB file (a run's build file, before it is published)."""
    con = duckdb.connect(str(path), config=BUILD_FILE_WRITER_SETTINGS)
    try:
        return comment_database(con, require_every_table=require_every_table)
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------------------------
# docs/data_dictionary.md
# ---------------------------------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    """Text for a Markdown table cell or paragraph: `<table_name>` would otherwise be read as an HTML tag."""
    return text.replace("|", "\\|").replace("<", "\\<")


def data_dictionary_markdown(dictionary: DataDictionary | None = None) -> str:
    dictionary = dictionary or load_data_dictionary()
    lines = [
        "# Data dictionary of the published database",
        "",
        "<!-- Generated from pipelines/data_dictionary.yaml by `make docs`; do not edit by hand. -->",
        "",
        "Every table and column of the published database (`build/leg_cramps.duckdb` by default) carries the text "
        "below as a DuckDB comment, so it shows in any SQL client:",
        "",
        "```sql",
        "SELECT schema_name, table_name, comment FROM duckdb_tables() ORDER BY ALL;",
        "SELECT column_name, data_type, comment FROM duckdb_columns()",
        " WHERE schema_name = 'results' AND table_name = 'associations' ORDER BY column_index;",
        "```",
        "",
        "The `staging` tables (the extract as loaded) are described in [extract_formats.md](extract_formats.md#the-canonical-layout-data-dictionary). "
        "Queries for the common questions: [example_queries.md](example_queries.md). Counts of persons in "
        "`results` are small-cell suppressed; `cohort` holds person-level rows, not for export.",
        "",
        "## Columns common to many tables",
        "",
        "| column | description |",
        "|---|---|",
        *[f"| `{name}` | {_cell(text)} |" for name, text in dictionary.common_columns.items()],
        "",
    ]
    schemas = list(dict.fromkeys(entry.schema for entry in dictionary.tables.values()))
    for schema in schemas:
        lines += [f"## `{schema}`", ""]
        for entry in (e for e in dictionary.tables.values() if e.schema == schema):
            lines += [f"### `{entry.name}`", "", _cell(entry.description), "", "| column | description |",
                      "|---|---|"]
            lines += [f"| `{name}` | {_cell(text)} |" for name, text in entry.columns.items()]
            notes = []
            for family in entry.families:
                source = family.source
                if source.every_item_has_columns:
                    rows = family.columns()
                else:
                    rows = family.template_rows()
                    notes.append(f"`{'`, `'.join(rows)}`: one set per {family.per} that has columns in this table, "
                                 f"named and described from {source.documented_in}.")
                lines += [f"| `{name}` | {_cell(text)} |" for name, text in rows.items()]
            lines += ["", *notes, ""] if notes else [""]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"
