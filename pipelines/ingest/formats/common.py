"""What the formats share: running their SQL files, naming files in messages, and the phenotypes an extract's
codes cannot reach."""

from __future__ import annotations

import duckdb

from pipelines.sql import read_sql
from pipelines.vocabularies import TABLE_BY_DOMAIN




def run_sql_file(con: duckdb.DuckDBPyConnection, relative_path: str) -> None:
    """Run every statement of a sql/ file (statements separated by semicolons at line ends)."""
    con.execute(read_sql(relative_path))


def listing(columns: dict[str, tuple[str, ...]]) -> str:
    """Files and their columns, for messages: ``person.csv (person_id, ...); ...``."""
    return "; ".join(f"{name}.csv ({', '.join(cols)})" for name, cols in columns.items())


def unresolvable_phenotypes(reachable: dict[str, set[str]]) -> dict[str, list[str]]:
    """Phenotypes none of whose code vocabularies the extract's codes can reach, by staging table.

    ``reachable[domain]`` is the set of vocabularies a phenotype code of that domain can match in this extract
    (the staged vocabularies and those of vocabulary.concept_code_map). Composites are resolvable when their parts
    are, so they are not listed.
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


def unresolvable_warnings(unresolvable: dict[str, list[str]], reason: dict[str, str],
                          remedy: dict[str, str] | None = None) -> list[str]:
    """One warning per domain: how many phenotypes find nobody, why, and what would let them resolve."""
    warnings = []
    domain_by_table = {table: domain for domain, table in TABLE_BY_DOMAIN.items()}
    for table, ids in unresolvable.items():
        domain = domain_by_table[table]
        action = (remedy or {}).get(domain)
        warnings.append(
            f"{len(ids)} {domain} phenotype(s) cannot be resolved in this extract ({reason.get(domain, '')}); "
            f"they will find nobody: {', '.join(ids)}" + (f". To resolve them: {action}." if action else "")
        )
    return warnings
