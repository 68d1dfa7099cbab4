"""The data dictionary (pipelines/data_dictionary.yaml): after a real run every published table and column carries
its comment, the comments are the dictionary's texts, and a dictionary that disagrees with the database stops the
publish with an error naming the table or column."""

from __future__ import annotations

import shutil

import duckdb
import pytest
import yaml

from pipelines import extract_spec
from pipelines.data_dictionary import (
    DATA_DICTIONARY_PAGE,
    DATA_DICTIONARY_PATH,
    DataDictionaryError,
    comment_database,
    data_dictionary_markdown,
    load_data_dictionary,
)
from pipelines.paths import DOCS_DIR, REPO_ROOT, SQL_DIR
from pipelines.phenotypes.loader import phenotype_library

# Small: the run's cost is mostly fixed, and every published table exists at any size.
PATIENTS = 200
PUBLISHED_SCHEMAS = {"ingest", "staging", "vocabulary", "phenotype", "cohort", "results", "dq"}


@pytest.fixture(scope="module")
def published_database(tmp_path_factory, generated_extract):
    """The database the study job publishes for a generated extract: a real Dagster run, publish step included."""
    import dagster as dg

    from pipelines.run import failure_messages, run_study

    root = tmp_path_factory.mktemp("data_dictionary")
    # Seed 7, as tests/operations/test_operations_publishing.py: some seeds of small extracts fail the
    # sequence-symmetry step.
    extract = generated_extract(PATIENTS, 7).path
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    database = root / "published" / "study.duckdb"
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = run_study(extract, database, instance=instance)
    assert result.success, failure_messages(result)
    return database


@pytest.fixture
def published_copy(published_database, tmp_path):
    """A writable copy of the published database, for tests that change it."""
    copy = tmp_path / "copy.duckdb"
    shutil.copy(published_database, copy)
    return copy


def _raw_yaml_text(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
def test_every_published_table_and_column_has_a_comment(published_database):
    with duckdb.connect(str(published_database), read_only=True) as con:
        schemas = {row[0] for row in con.execute("SELECT DISTINCT schema_name FROM duckdb_tables()").fetchall()}
        uncommented_tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE comment IS NULL OR comment = ''").fetchall()
        uncommented_columns = con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE (comment IS NULL OR comment = '') "
            "AND schema_name NOT IN ('main', 'information_schema', 'pg_catalog')").fetchall()
    assert PUBLISHED_SCHEMAS <= schemas
    assert uncommented_tables == []
    assert uncommented_columns == []


@pytest.mark.slow
def test_comments_are_the_dictionary_texts(published_database):
    raw = yaml.safe_load(DATA_DICTIONARY_PATH.read_text())
    with duckdb.connect(str(published_database), read_only=True) as con:
        def column_comment(schema: str, table: str, column: str) -> str:
            return con.execute("SELECT comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                               "AND column_name = ?", [schema, table, column]).fetchone()[0]

        table_comment = con.execute("SELECT comment FROM duckdb_tables() WHERE schema_name = 'results' "
                                    "AND table_name = 'associations'").fetchone()[0]
        # A column of its own, one whose name needs quoting, and a common column.
        suppressed_columns = column_comment("results", "associations", "suppressed_columns")
        group = column_comment("results", "table1", "group")
        person_id = column_comment("cohort", "study_population", "person_id")
        # One column per reject reason, named and described from pipelines/extract_spec.py.
        reject_columns = {reason.code: column_comment("ingest", "load_counts", reason.code)
                          for reason in extract_spec.REJECT_REASONS}
        # The staging comments stay extract_spec's.
        staging_person_id = column_comment("staging", "person", "person_id")

    associations = raw["tables"]["results.associations"]
    assert table_comment == _raw_yaml_text(associations["description"])
    assert suppressed_columns == _raw_yaml_text(associations["columns"]["suppressed_columns"])
    assert group == _raw_yaml_text(raw["tables"]["results.table1"]["columns"]["group"])
    assert raw["tables"]["cohort.study_population"]["columns"]["person_id"] is None  # uses the common text
    assert person_id == _raw_yaml_text(raw["common_columns"]["person_id"])
    for reason in extract_spec.REJECT_REASONS:
        assert reason.code in reject_columns[reason.code] and reason.description in reject_columns[reason.code]
    assert staging_person_id == extract_spec.PERSON.column("person_id").description


@pytest.mark.slow
def test_phenotype_columns_of_the_study_population_carry_the_phenotype_name(published_database):
    names = {p.id: p.definition.name for p in phenotype_library()}
    with duckdb.connect(str(published_database), read_only=True) as con:
        recorded = [row[0] for row in con.execute(
            "SELECT DISTINCT variable FROM cohort.study_variables ORDER BY 1").fetchall()]
        comments = dict(con.execute(
            "SELECT column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'cohort' AND table_name = 'study_population'").fetchall())
    assert recorded, "the studies record phenotypes"
    for phenotype_id in recorded:
        assert comments[phenotype_id].startswith(f"{names[phenotype_id]}: true when present at index_date")
        assert comments[f"{phenotype_id}_first_date"].startswith(f"{names[phenotype_id]}: first day")


@pytest.mark.slow
def test_every_described_table_is_in_a_full_run(published_copy):
    with duckdb.connect(str(published_copy)) as con:
        assert comment_database(con, require_every_table=True) == []


@pytest.mark.slow
def test_a_described_column_that_does_not_exist_stops_the_comments(published_copy, tmp_path):
    document = yaml.safe_load(DATA_DICTIONARY_PATH.read_text())
    document["tables"]["results.attrition"]["columns"]["persons_at_index"] = "A column no table has."
    dictionary_file = tmp_path / "data_dictionary.yaml"
    dictionary_file.write_text(yaml.safe_dump(document, sort_keys=False))
    dictionary = load_data_dictionary(dictionary_file)

    with duckdb.connect(str(published_copy)) as con:
        con.execute("COMMENT ON TABLE results.attrition IS 'before'")
        with pytest.raises(DataDictionaryError, match=r"results\.attrition\.persons_at_index: described in .* "
                                                      r"but the table has no such column"):
            comment_database(con, dictionary)
        # Nothing was written: the check comes first.
        assert con.execute("SELECT comment FROM duckdb_tables() WHERE schema_name = 'results' "
                           "AND table_name = 'attrition'").fetchone()[0] == "before"


@pytest.mark.slow
def test_a_published_table_or_column_without_description_stops_the_comments(published_copy):
    with duckdb.connect(str(published_copy)) as con:
        con.execute("CREATE TABLE main.scratch (x INTEGER)")
        con.execute("ALTER TABLE results.attrition ADD COLUMN persons_at_index BIGINT")
        con.execute("COMMENT ON COLUMN staging.person.sex IS NULL")
        with pytest.raises(DataDictionaryError) as raised:
            comment_database(con)
    message = str(raised.value)
    assert "main.scratch: published but has no description" in message
    assert "results.attrition.persons_at_index: published but has no description" in message
    assert "staging.person.sex: no comment" in message


def test_a_database_built_in_part_is_commented_without_the_absent_tables():
    """A run of part of the graph (e.g. ingest and publish only) publishes only what it built."""
    dictionary = load_data_dictionary()
    with duckdb.connect() as con:
        con.execute((SQL_DIR / "staging" / "empty_concept_code_map.sql").read_text())
        absent = comment_database(con, dictionary)
        comment = con.execute("SELECT comment FROM duckdb_columns() WHERE schema_name = 'vocabulary' "
                              "AND table_name = 'concept_code_map' AND column_name = 'mapping'").fetchone()[0]
        with pytest.raises(DataDictionaryError, match=r"results\.associations: described in .* but not in the "
                                                      r"database"):
            comment_database(con, dictionary, require_every_table=True)
    assert comment == dictionary.tables["vocabulary.concept_code_map"].columns["mapping"]
    assert set(absent) == set(dictionary.tables) - {"vocabulary.concept_code_map"}


def test_a_column_without_text_or_common_entry_is_refused(tmp_path):
    document = yaml.safe_load(DATA_DICTIONARY_PATH.read_text())
    document["tables"]["results.attrition"]["columns"]["step"] = None
    document["tables"]["cohort.study_population"]["column_families"][0]["columns"]["{id}_last"] = "{nme}"
    dictionary_file = tmp_path / "data_dictionary.yaml"
    dictionary_file.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(DataDictionaryError) as raised:
        load_data_dictionary(dictionary_file)
    assert "results.attrition.step: needs a description" in str(raised.value)
    assert "cohort.study_population: column family per phenotype: unknown field 'nme'" in str(raised.value)


def test_the_generated_page_is_current_and_linked():
    assert DATA_DICTIONARY_PAGE.read_text() == data_dictionary_markdown(), "run `make docs`"
    page = DATA_DICTIONARY_PAGE.read_text()
    assert all(f"### `{name}`" in page for name in load_data_dictionary().tables)
    assert "docs/data_dictionary.md" in (REPO_ROOT / "README.md").read_text()
    assert "(data_dictionary.md)" in (DOCS_DIR / "example_queries.md").read_text()
