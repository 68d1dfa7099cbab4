"""What every non-canonical format shares: loading its tables through the canonical loader, the manifest and load
counts, and the phenotypes an extract's codes cannot reach."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines import extract_spec as spec
from pipelines.ingest import loader
from pipelines.ingest.loader import Log, TableLoad
from pipelines.sql import read_sql
from pipelines.vocabularies import TABLE_BY_DOMAIN


@dataclass
class FormatLoad:
    """The result of loading an extract of any format."""

    extract_format: str  # canonical, omop_cdm_v5.3, omop_cdm_v5.4, synthea_csv, site_mapping
    loads: dict[str, TableLoad]
    # Phenotypes the extract's codes cannot reach, by staging table (condition_occurrence, drug_exposure,
    # measurement), with the reason; empty when every phenotype can be resolved.
    unresolvable_phenotypes: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Warnings about one staging table (an OMOP clinical table the extract does not ship), also in `warnings`;
    # the ingest asset shows each in its table's Dagster metadata.
    table_warnings: dict[str, str] = field(default_factory=dict)


def run_sql_file(con: duckdb.DuckDBPyConnection, relative_path: str) -> None:
    """Run every statement of a sql/ file (statements separated by semicolons at line ends)."""
    con.execute(read_sql(relative_path))


def shape_sql(relative_path: str) -> str:
    """A shaping model (a single SELECT over _raw_source) as text to embed in a view."""
    return read_sql(relative_path).strip().rstrip(";")


def load_shaped_tables(
    con: duckdb.DuckDBPyConnection,
    extract_dir: Path,
    sources: dict[str, tuple[Path, str] | None],
    log: Log,
    source_columns: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, TableLoad]:
    """Load every canonical table from (source file, shaping SELECT), person first, with the canonical accounting.

    ``sources[table]`` is None for an optional table the extract does not have (created empty, as the canonical
    path does). ``source_columns[table]``: the source columns its shaping reads (lower-case); the file's others are
    its ignored_columns. Writes ingest.load_counts and ingest.manifest like loader.load_extract.
    """
    loader.create_ingest_schema(con)
    con.execute("DELETE FROM ingest.rejects")
    run_sql_file(con, "staging/format_macros.sql")
    fingerprints = loader.FileFingerprints([source[0] for source in sources.values() if source is not None])
    loads: dict[str, TableLoad] = {}
    for table in spec.TABLES:
        source = sources.get(table.name)
        if source is None:
            loader.create_empty_staging_table(con, table)
            loads[table.name] = TableLoad(table.name, "", 0, 0, {r: 0 for r in spec.REJECT_REASON_CODES})
            log(f"{table.name}: no file in the extract (optional table), created empty")
            continue
        path, select_sql = source
        loads[table.name] = loader.load_file(con, table, path, fingerprints, log, shape_sql=select_sql,
                                             source_columns=(source_columns or {}).get(table.name))
    files = {name: (source[0] if source else None) for name, source in sources.items()}
    loader.write_load_counts(con, loads)
    loader.write_manifest(con, extract_dir, files, loads, fingerprints)
    loader.comment_tables(con)
    return loads


def reachable_vocabularies_note(domain: str, vocabularies: set[str]) -> str:
    listed = ", ".join(sorted(vocabularies)) or "none"
    return f"{domain} codes can be matched in: {listed}"


def unresolvable_phenotypes(reachable: dict[str, set[str]], reason: dict[str, str]) -> dict[str, list[str]]:
    """Phenotypes none of whose code vocabularies the extract's codes can reach, by staging table.

    ``reachable[domain]`` is the set of vocabularies a phenotype code of that domain can match in this extract
    (the staged vocabularies and those of vocabulary.concept_code_map); ``reason[domain]`` says why others cannot.
    Composites are resolvable when their parts are, so they are not listed.
    """
    from pipelines.phenotypes.loader import load_phenotype_library  # the ingest needs it only for this report

    result: dict[str, list[str]] = {}
    for phenotype in load_phenotype_library():
        definition = phenotype.definition
        if definition.domain not in TABLE_BY_DOMAIN:
            continue
        vocabularies = {group.vocabulary for group in definition.codes}
        if not vocabularies & reachable.get(definition.domain, set()):
            table = TABLE_BY_DOMAIN[definition.domain]
            result.setdefault(table, []).append(definition.id)
    return {table: sorted(ids) for table, ids in result.items()}


def unresolvable_warnings(unresolvable: dict[str, list[str]], reason: dict[str, str]) -> list[str]:
    warnings = []
    domain_by_table = {table: domain for domain, table in TABLE_BY_DOMAIN.items()}
    for table, ids in unresolvable.items():
        domain = domain_by_table[table]
        warnings.append(
            f"{len(ids)} {domain} phenotype(s) cannot be resolved in this extract ({reason.get(domain, '')}); "
            f"they will find nobody: {', '.join(ids)}"
        )
    return warnings
