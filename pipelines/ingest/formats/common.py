"""What the formats share: running their SQL files, naming files in messages, and the phenotypes an extract's
codes cannot reach (from what the caller passes of the phenotype library)."""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from pipelines.sql import read_sql
from pipelines.vocabularies import TABLE_BY_DOMAIN

# What the ingest knows of the phenotype library: domain -> phenotype id -> the vocabularies of its codes
# (PhenotypeLibrary.code_vocabularies). Its caller passes it: the phenotype library sits above the ingest, which
# never reads it (docs/architecture.md), and a run reads the library once.
PhenotypeVocabularies = Mapping[str, Mapping[str, frozenset[str]]]


def run_sql_file(con: duckdb.DuckDBPyConnection, relative_path: str) -> None:
    """Run every statement of a sql/ file (statements separated by semicolons at line ends)."""
    con.execute(read_sql(relative_path))


def listing(columns: dict[str, tuple[str, ...]]) -> str:
    """Files and their columns, for messages: ``person.csv (person_id, ...); ...``."""
    return "; ".join(f"{name}.csv ({', '.join(cols)})" for name, cols in columns.items())


def unresolvable_phenotypes(reachable: dict[str, set[str]],
                            phenotype_vocabularies: PhenotypeVocabularies | None) -> dict[str, list[str]]:
    """Phenotypes none of whose code vocabularies the extract's codes can reach, by staging table (in the order of
    TABLE_BY_DOMAIN); none without `phenotype_vocabularies` (the caller did not ask).

    ``reachable[domain]`` is the set of vocabularies a phenotype code of that domain can match in this extract
    (the staged vocabularies and those of vocabulary.concept_code_map). Composites are resolvable when their parts
    are, so they are not listed.
    """
    result: dict[str, list[str]] = {}
    for domain, table in TABLE_BY_DOMAIN.items():
        phenotypes = (phenotype_vocabularies or {}).get(domain, {})
        ids = sorted(phenotype_id for phenotype_id, vocabularies in phenotypes.items()
                     if not vocabularies & reachable.get(domain, set()))
        if ids:
            result[table] = ids
    return result


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
