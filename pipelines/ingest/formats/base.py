"""What an extract format is: one object that declares how it is recognised, which files and columns it needs, what
its codes can reach, and how each of its files is shaped into a canonical table.

Every format loads through the one path of `pipelines.ingest.formats.load_extract_any_format`: detection iterates
the registry (`registry.FORMATS`), then `prepare` (work views the shaping reads), `sources` (per canonical table: a
file and its shaping SELECT, sql/staging/<prefix>_<table>.sql), the canonical loader (`loader.load_tables`: typing,
reject reasons, physical lines, accounting), the vocabulary map, then `report` (warnings). The canonical layout is
the format whose sources are the files themselves, unshaped. Shaping as one SELECT per target table over a source
table follows the OHDSI ETL convention (a mapping per CDM table, as in ETL-Synthea) and Tuva's staging models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb

from pipelines import extract_spec as spec
from pipelines.engine.session import DUCKDB
from pipelines.ingest.formats.files import lower_header
from pipelines.ingest.loader import ExtractError, Log, TableLoad, TableSource
from pipelines.paths import SQL_DIR
from pipelines.ingest.formats.common import (PhenotypeVocabularies, listing, unresolvable_phenotypes,
                                             unresolvable_warnings)

@dataclass(frozen=True)
class Signature:
    """What identifies a format: a data file (by lower-case table name) with these columns, or, for a
    ``descriptor``, a file whose mere presence states the layout (it wins over data-file signatures)."""

    file: str
    columns: tuple[str, ...] = ()
    descriptor: bool = False


@dataclass(frozen=True)
class DetectedFormat:
    name: str  # the format's name (ExtractFormat.name)
    version: str | None  # "5.3" / "5.4" for OMOP
    files: dict[str, Path]  # lower-case table name -> file
    # Data files whose name is no table of the format (OMOP: 2b_concept.csv), by file name.
    unrecognised: tuple[str, ...] = ()
    folder: Path = Path(".")  # the extract folder (set by detection)

    @property
    def label(self) -> str:
        return f"{self.name}_v{self.version}" if self.version else self.name


@dataclass
class FormatLoad:
    """The result of loading an extract of any format."""

    extract_format: str  # the detected format's label: canonical, omop_cdm_v5.3, omop_cdm_v5.4, synthea_csv, ...
    loads: dict[str, TableLoad]
    # Phenotypes the extract's codes cannot reach, by staging table (condition_occurrence, drug_exposure,
    # measurement), with the reason; empty when every phenotype can be resolved.
    unresolvable_phenotypes: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Warnings about one staging table (an OMOP clinical table the extract does not ship), also in `warnings`;
    # the ingest asset shows each in its table's Dagster metadata.
    table_warnings: dict[str, str] = field(default_factory=dict)
    # The engine that read the files ("duckdb" or "spark") and, when Spark was asked for but could not read them,
    # why the files were read on DuckDB instead (pipelines/ingest/formats/__init__.py).
    engine: str = DUCKDB
    engine_fallback: str | None = None

    @property
    def ingest_engine(self) -> str:
        """The engine that read the files, with the reason when it is not the one the run asked for."""
        return f"{self.engine} ({self.engine_fallback})" if self.engine_fallback else self.engine


class ExtractFormat:
    """One extract layout. A subclass sets the class attributes and, where the defaults do not fit, overrides the
    hooks; adding a format is a subclass in its own module, its SQL files and one line in `registry.FORMATS`."""

    name: str = ""
    signature: Signature
    # The files the format needs, with the columns the ingest reads from them (lower-case); detection refuses an
    # extract without them, naming what is missing.
    required_columns: dict[str, tuple[str, ...]] = {}
    # Files read when present, with the columns read from them (a present file lacking one is refused).
    optional_columns: dict[str, tuple[str, ...]] = {}
    # Canonical table -> the source table (file) it is shaped from by sql/staging/<sql_prefix>_<table>.sql; a table
    # whose source file is absent is created empty (the loader refuses an absent required table).
    source_tables: dict[str, str] = {}
    sql_prefix: str = ""
    # Where the shaping SQL lives: sql/staging by default (a format kept outside the project names its folder).
    sql_folder: Path = SQL_DIR / "staging"
    # The vocabularies a phenotype code of each domain can match in this format (None: every vocabulary, as in the
    # canonical layout), and why the others cannot; phenotypes none of whose vocabularies are reachable are
    # reported as unresolvable.
    reachable_vocabularies: dict[str, set[str]] | None = None
    unreachable_reason: dict[str, str] = {}
    unreachable_remedy: dict[str, str] = {}  # what the site can do about it, per domain
    # Builds vocabulary.concept_code_map (the other codes each staged code stands for); empty unless the format
    # ships a vocabulary.
    concept_code_map_sql: str = "staging/empty_concept_code_map.sql"
    # Temporary work tables of `prepare` and the concept map, dropped after the load.
    work_tables: tuple[str, ...] = ()

    # -- detection -------------------------------------------------------------------------------------------------
    def expected_layout(self) -> str:
        """One line for error messages: what the format needs."""
        return f"{self.name}: {listing(self.required_columns)}"

    def signature_problem(self, folder: Path, files: dict[str, Path]) -> str | None:
        """None when the folder has the signature; else why not ('' when the signature file is absent)."""
        if self.signature.descriptor:
            return None if (folder / self.signature.file).exists() else ""
        if self.signature.file not in files:
            return ""
        header = lower_header(files[self.signature.file])
        missing = [c for c in self.signature.columns if c not in header]
        if missing:
            return f"{files[self.signature.file].name} lacks {', '.join(missing)} for the {self.name} layout"
        return None

    def explain_mismatch(self, folder: Path, files: dict[str, Path]) -> str:
        """More about why no format matched, from this format's point of view ('' when it has nothing to add)."""
        return ""

    def detect(self, folder: Path, files: dict[str, Path]) -> DetectedFormat:
        """The folder as this format (its signature matched): required files and columns checked, version found."""
        check_required(folder, self.name, files, self.required_columns)
        check_columns(folder, files, self.optional_columns)
        return DetectedFormat(self.name, None, files)

    def check(self, detected: DetectedFormat,
              phenotype_vocabularies: Callable[[], PhenotypeVocabularies] | None) -> list[str]:
        """What a load would warn about, found without loading the clinical tables (`legcramp-run --check`);
        `phenotype_vocabularies` reads what the report needs of the phenotype library, when it needs it."""
        return []

    # -- loading -----------------------------------------------------------------------------------------------------
    def prepare(self, con: duckdb.DuckDBPyConnection, detected: DetectedFormat, log: Log) -> None:
        """Work tables the shaping SELECTs read (a vocabulary, encounter spans)."""

    def shaping_sql(self, table: str) -> str:
        """The shaping SELECT of one canonical table (over `_raw_source`), as text to embed in a view."""
        return (self.sql_folder / f"{self.sql_prefix}_{table}.sql").read_text().strip().rstrip(";")

    def source_columns(self, table: str) -> tuple[str, ...] | None:
        """The source columns the shaping of `table` reads (the file's others are its ignored_columns): by default
        those the format declares for the table's source file. None: no column is reported as ignored."""
        source = self.source_tables.get(table)
        declared = {**self.optional_columns, **self.required_columns}
        return declared.get(source) if source is not None else None

    def sources(self, detected: DetectedFormat) -> dict[str, TableSource | None]:
        """Per canonical table: its source file and shaping SELECT, None when the extract has no such file."""
        return {
            table.name: (TableSource(detected.files[source], self.shaping_sql(table.name),
                                     self.source_columns(table.name))
                         if (source := self.source_tables.get(table.name)) in detected.files else None)
            for table in spec.TABLES
        }

    def report(self, con: duckdb.DuckDBPyConnection, detected: DetectedFormat, result: FormatLoad,
               phenotype_vocabularies: PhenotypeVocabularies | None) -> None:
        """Warnings and notes about the loaded extract; by default the phenotypes its vocabularies cannot reach."""
        if self.reachable_vocabularies is None:
            return
        result.unresolvable_phenotypes = unresolvable_phenotypes(self.reachable_vocabularies, phenotype_vocabularies)
        result.warnings += unresolvable_warnings(result.unresolvable_phenotypes, self.unreachable_reason,
                                                 self.unreachable_remedy)


class LayoutError(ExtractError):
    """The folder has a format's signature but not the files or columns it needs (detection adds what every format
    expects to the message)."""


def check_required(folder: Path, name: str, files: dict[str, Path], required: dict[str, tuple[str, ...]]) -> None:
    """A LayoutError naming the required files absent and the required columns missing."""
    missing_files = [table for table in required if table not in files]
    if missing_files:
        raise LayoutError(
            f"{folder}: looks like {name} but required file(s) are missing: "
            f"{', '.join(t + '.csv' for t in missing_files)}."
        )
    check_columns(folder, files, required)


def check_columns(folder: Path, files: dict[str, Path], required: dict[str, tuple[str, ...]]) -> None:
    """A LayoutError naming every present file that lacks some of its columns."""
    problems = []
    for table, columns in required.items():
        if table not in files:
            continue
        header = lower_header(files[table])
        missing = [c for c in columns if c not in header]
        if missing:
            problems.append(f"{files[table].name} lacks {', '.join(missing)}")
    if problems:
        raise LayoutError(f"{folder}: {'; '.join(problems)}.")
