"""Site-specific layouts: ``extract_mapping.yaml`` in the extract folder maps a site's CSV export onto the canonical
tables. Example (docs/extract_formats.md has the full description)::

    date_format: "%d/%m/%Y"            # how the site writes dates (strptime); default %Y-%m-%d
    tables:
      person:
        file: patients_export.csv
        columns: {person_id: PatID, year_of_birth: BirthYear, sex: Gender}
      condition_occurrence:
        file: diagnoses.csv
        columns: {condition_occurrence_id: DiagID, person_id: PatID, condition_code: Dx, condition_start_date: Date}
        code_systems: {condition_code: ICD10CM}   # the vocabulary of every code in that column
        date_format: "%Y%m%d"                      # per-table override

Each mapped file is read and accounted by the canonical loader, row for row.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines import extract_spec as spec
from pipelines.ingest.containment import OutsideFolderError, inside_folder
from pipelines.ingest.formats.base import DetectedFormat, ExtractFormat, Signature
from pipelines.ingest.formats.files import header_of
from pipelines.ingest.loader import ExtractError, TableSource
from pipelines.sql_quoting import quote_identifier, quote_literal

SITE_MAPPING = "site_mapping"
SITE_MAPPING_FILE = "extract_mapping.yaml"

ALLOWED_TABLE_KEYS = {"file", "columns", "code_systems", "date_format"}


def read_mapping(folder: Path) -> dict:
    path = inside_folder(folder, SITE_MAPPING_FILE)
    try:
        mapping = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ExtractError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(mapping, dict) or not isinstance(mapping.get("tables"), dict):
        raise ExtractError(f"{path}: expected a mapping with a 'tables' section (see docs/extract_formats.md).")
    return mapping


def mapped_file(folder: Path, table_name: str, entry: dict) -> Path:
    """The file a table's entry names, inside the extract folder (OutsideFolderError naming the entry if not)."""
    return inside_folder(folder, entry["file"], f"{folder / SITE_MAPPING_FILE}: tables.{table_name}.file")


def files_leading_out(folder: Path) -> list[str]:
    """What in the folder's mapping names a file outside the folder (the mapping itself included), one line each;
    other mistakes of the mapping are left to the load, which reports them."""
    try:
        mapping = read_mapping(folder)
    except OutsideFolderError as error:
        return [str(error)]
    except (ExtractError, OSError, UnicodeDecodeError):
        return []
    problems = []
    for table_name, entry in mapping["tables"].items():
        if isinstance(entry, dict) and "file" in entry:
            try:
                mapped_file(folder, str(table_name), entry)
            except OutsideFolderError as error:
                problems.append(str(error))
    return problems


def table_shape_sql(folder: Path, mapping: dict, table: spec.Table) -> tuple[Path, str]:
    """(source file, shaping SELECT over _raw_source) for one canonical table; errors name the file and field."""
    where = f"{folder / SITE_MAPPING_FILE}: tables.{table.name}"
    entry = mapping["tables"][table.name]
    if not isinstance(entry, dict) or "file" not in entry or not isinstance(entry.get("columns"), dict):
        raise ExtractError(f"{where}: needs 'file' and 'columns' (canonical column: source column).")
    unknown_keys = set(entry) - ALLOWED_TABLE_KEYS
    if unknown_keys:
        raise ExtractError(f"{where}: unknown key(s) {', '.join(sorted(unknown_keys))}; "
                           f"allowed: {', '.join(sorted(ALLOWED_TABLE_KEYS))}.")
    path = mapped_file(folder, table.name, entry)
    if not path.exists():
        raise ExtractError(f"{where}: file {entry['file']} not found in {folder}.")
    columns: dict[str, str] = entry["columns"]
    code_systems: dict[str, str] = entry.get("code_systems") or {}
    unknown = [c for c in list(columns) + list(code_systems) if c not in table.column_names]
    if unknown:
        raise ExtractError(f"{where}: {', '.join(unknown)} not canonical column(s) of {table.name} "
                           f"({', '.join(table.column_names)}).")
    header = header_of(path)
    by_lower = {name.lower(): name for name in header}
    absent = [source for source in columns.values() if str(source).lower() not in by_lower]
    if absent:
        raise ExtractError(f"{where}: column(s) {', '.join(absent)} not in {path.name} "
                           f"(found: {', '.join(header)}).")
    date_format = entry.get("date_format") or mapping.get("date_format") or spec.DATE_FORMAT
    vocabulary_for = {vocabulary_column: code_systems[code_column]
                      for vocabulary_column, code_column in table.coded if code_column in code_systems}

    selected = ["raw._record"]
    for column in table.columns:
        if column.name in columns:
            source = f"raw.{quote_identifier(by_lower[str(columns[column.name]).lower()])}"
            if column.type == "DATE":
                # Dates in the site's format become YYYY-MM-DD; ones that do not parse pass unchanged, so the
                # loader rejects them as unparseable_date with the value in the reject record.
                expr = (f"coalesce(strftime(try_strptime(field_text({source}), {quote_literal(date_format)}), "
                        f"'%Y-%m-%d'), field_text({source}))")
            else:
                expr = f"field_text({source})"
        elif column.name in vocabulary_for:
            expr = quote_literal(vocabulary_for[column.name])
        else:
            expr = "CAST(NULL AS VARCHAR)"
        selected.append(f"{expr} AS {quote_identifier(column.name)}")
    return path, f"SELECT {', '.join(selected)} FROM _raw_source AS raw"


class SiteMappingFormat(ExtractFormat):
    """A site's own layout, described by the extract_mapping.yaml beside its files (renames, code systems, date
    formats): the shaping SELECTs are generated from it rather than written as SQL files."""

    name = SITE_MAPPING
    signature = Signature(SITE_MAPPING_FILE, descriptor=True)

    def expected_layout(self) -> str:
        return f"a site layout: {SITE_MAPPING_FILE} describing the files (docs/extract_formats.md)"

    def detect(self, folder: Path, files: dict[str, Path]) -> DetectedFormat:
        # The mapping is read (and its mistakes reported) when the sources are built.
        return DetectedFormat(self.name, None, files)

    def sources(self, detected: DetectedFormat) -> dict[str, TableSource | None]:
        extract_dir = detected.folder
        mapping = read_mapping(extract_dir)
        unknown_tables = set(mapping["tables"]) - set(spec.TABLES_BY_NAME)
        if unknown_tables:
            raise ExtractError(f"{extract_dir / SITE_MAPPING_FILE}: unknown table(s) "
                               f"{', '.join(sorted(unknown_tables))}; canonical tables: "
                               f"{', '.join(spec.TABLES_BY_NAME)}.")
        missing = [t.name for t in spec.TABLES if t.required and t.name not in mapping["tables"]]
        if missing:
            raise ExtractError(f"{extract_dir / SITE_MAPPING_FILE}: required table(s) not mapped: "
                               f"{', '.join(missing)}.")
        return {table.name: (TableSource(*table_shape_sql(extract_dir, mapping, table))
                             if table.name in mapping["tables"] else None)
                for table in spec.TABLES}


FORMAT = SiteMappingFormat()
