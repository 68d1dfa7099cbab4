"""Attacks on the pipeline: files read from outside an extract or the landing folder, hostile names in SQL.

Every file an extract (or its extract_mapping.yaml) names must be the extract's own; every value written into SQL
text (paths, column names, site database paths, phenotype ids) must stay data. Each test plants a secret or a
hostile name and checks that the pipeline neither reads the secret nor runs the hostile text.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest
import yaml

from pipelines.ingest.containment import OutsideFolderError, inside_folder, links_leading_out
from pipelines.ingest.formats import load_extract_any_format
from pipelines.ingest.formats.detection import detect_format
from pipelines.ingest.loader import ExtractError, load_extract
from pipelines.sql_quoting import quote_identifier
from tests.support.planted_rejects import write_fixture

SECRET = "root:x:0:0:SECRET-LINE-OF-ANOTHER-FILE:/root:/bin/bash"

# Names that break hand-made SQL text: quotes of both kinds, a statement separator, a comment, a newline.
HOSTILE = "it's \"odd\"; DROP TABLE x; --\nnext"


def _secret_file(tmp_path: Path) -> Path:
    """A file outside every extract, shaped like a table file, whose content must never be read."""
    secret = tmp_path / "other_site" / "secret.csv"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(f"person_id,death_date\n{SECRET}\n")
    return secret


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def site_mapping_extract(folder: Path, person_file: str = "pats.csv",
                         person_columns: tuple[str, str, str] = ("PatID", "YOB", "Gender")) -> Path:
    """A small site layout (extract_mapping.yaml and its files); person's file and column names are parameters."""
    folder.mkdir(parents=True, exist_ok=True)
    pid, yob, sex = person_columns
    tables = {
        "person": {"file": person_file, "columns": {"person_id": pid, "year_of_birth": yob, "sex": sex}},
        "observation_period": {"file": "periods.csv", "columns": {
            "observation_period_id": "ID", "person_id": "PatID", "observation_period_start_date": "Start",
            "observation_period_end_date": "End"}},
        "visit_occurrence": {"file": "visits.csv", "columns": {
            "visit_occurrence_id": "ID", "person_id": "PatID", "visit_type": "Kind", "visit_start_date": "Date"}},
        "condition_occurrence": {"file": "dx.csv", "columns": {
            "condition_occurrence_id": "ID", "person_id": "PatID", "condition_code": "Dx",
            "condition_start_date": "Date"}, "code_systems": {"condition_code": "ICD10CM"}},
        "drug_exposure": {"file": "rx.csv", "columns": {
            "drug_exposure_id": "ID", "person_id": "PatID", "drug_code": "ATC", "drug_exposure_start_date": "Date"},
            "code_systems": {"drug_code": "ATC"}},
        "measurement": {"file": "labs.csv", "columns": {
            "measurement_id": "ID", "person_id": "PatID", "measurement_code": "LOINC", "measurement_date": "Date"},
            "code_systems": {"measurement_code": "LOINC"}},
        "procedure_occurrence": {"file": "px.csv", "columns": {
            "procedure_occurrence_id": "ID", "person_id": "PatID", "procedure_code": "Code",
            "procedure_date": "Date"}, "code_systems": {"procedure_code": "CPT4"}},
    }
    (folder / "extract_mapping.yaml").write_text(yaml.safe_dump({"tables": tables}))
    if not (Path(person_file).is_absolute() or ".." in Path(person_file).parts):
        (folder / person_file).parent.mkdir(parents=True, exist_ok=True)
        (folder / person_file).write_text(_csv([pid, yob, sex], [["p1", "1950", "F"], ["p2", "1960", "M"]]))
    (folder / "periods.csv").write_text("ID,PatID,Start,End\no1,p1,2015-01-01,2020-12-31\n")
    (folder / "visits.csv").write_text("ID,PatID,Kind,Date\nv1,p1,OP,2016-02-03\n")
    (folder / "dx.csv").write_text("ID,PatID,Dx,Date\nd1,p1,R252,2016-02-03\n")
    (folder / "rx.csv").write_text("ID,PatID,ATC,Date\nr1,p1,C10AA01,2016-02-03\n")
    (folder / "labs.csv").write_text("ID,PatID,LOINC,Date\n")
    (folder / "px.csv").write_text("ID,PatID,Code,Date\n")
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Every file an extract names is inside the extract folder
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["absolute", "dot-dot", "symlink"])
def test_a_site_mapping_cannot_name_a_file_outside_the_extract(tmp_path, how):
    secret = _secret_file(tmp_path)
    extract = tmp_path / "sites" / "site_a"
    named = {"absolute": str(secret), "dot-dot": "../../other_site/secret.csv", "symlink": "linked.csv"}[how]
    site_mapping_extract(extract, person_file=named)
    if how == "symlink":
        (extract / "linked.csv").unlink()
        (extract / "linked.csv").symlink_to(secret)
    con = duckdb.connect()
    with pytest.raises(OutsideFolderError) as refused:
        load_extract_any_format(con, extract)
    message = str(refused.value)
    # A link is already refused where the extract's table files are listed; the other two where the mapping is read.
    assert repr(named) in message and ("tables.person.file" in message or how == "symlink")
    assert "SECRET" not in message
    # Nothing of the other file reached the database.
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'staging'").fetchone()[0] == 0


def test_a_site_mapping_may_name_files_in_subfolders_and_links_inside_the_extract(tmp_path):
    extract = site_mapping_extract(tmp_path / "site_a", person_file="exports/2026/pats.csv")
    (extract / "linked_periods.csv").symlink_to(extract / "periods.csv")
    mapping = yaml.safe_load((extract / "extract_mapping.yaml").read_text())
    mapping["tables"]["observation_period"]["file"] = "linked_periods.csv"
    (extract / "extract_mapping.yaml").write_text(yaml.safe_dump(mapping))
    con = duckdb.connect()
    result = load_extract_any_format(con, extract)
    assert result.extract_format == "site_mapping"
    assert con.execute("SELECT person_id FROM staging.person ORDER BY 1").fetchall() == [("p1",), ("p2",)]
    assert con.execute("SELECT observation_period_id FROM staging.observation_period").fetchall() == [("o1",)]


def test_a_symlinked_table_file_leading_out_is_refused_without_printing_its_content(tmp_path):
    secret = _secret_file(tmp_path)
    extract = write_fixture(tmp_path / "extract")
    (extract / "death.csv").unlink()
    (extract / "death.csv").symlink_to(secret)
    # Format detection lists the table files (files.table_files) ...
    with pytest.raises(OutsideFolderError, match="'death.csv' is a symbolic link .* leading outside") as refused:
        detect_format(extract)
    assert "SECRET" not in str(refused.value)
    # ... and the canonical loader finds each table's file itself (loader.find_table_file).
    con = duckdb.connect()
    with pytest.raises(OutsideFolderError, match="table file of death 'death.csv'") as refused:
        load_extract(con, extract)
    assert "SECRET" not in str(refused.value)
    # Refused before anything was read: no table (no ingest.rejects holding the other file's lines).
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0] == 0


def test_a_symlinked_table_file_inside_the_extract_is_followed(tmp_path):
    extract = write_fixture(tmp_path / "extract")
    (extract / "data").mkdir()
    (extract / "death.csv").rename(extract / "data" / "death_2026.csv")
    (extract / "death.csv").symlink_to(Path("data") / "death_2026.csv")
    con = duckdb.connect()
    load_extract_any_format(con, extract)
    assert con.execute("SELECT person_id, CAST(death_date AS VARCHAR) FROM staging.death").fetchall() == [
        ("P3", "2019-06-30")]
    # The file is named as the extract names it, not by the link's target.
    assert con.execute("SELECT file_name FROM ingest.manifest WHERE table_name = 'death'").fetchall() == [
        ("death.csv",)]


def test_the_mapping_file_itself_cannot_be_a_link_out(tmp_path):
    outside = site_mapping_extract(tmp_path / "elsewhere")
    extract = site_mapping_extract(tmp_path / "site_a")
    (extract / "extract_mapping.yaml").unlink()
    (extract / "extract_mapping.yaml").symlink_to(outside / "extract_mapping.yaml")
    with pytest.raises(OutsideFolderError, match="'extract_mapping.yaml' is a symbolic link"):
        load_extract_any_format(duckdb.connect(), extract)


def test_containment_rules(tmp_path):
    folder = tmp_path / "extract"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.csv").write_text("x\n")
    (tmp_path / "out").mkdir()
    (folder / "inside_link").symlink_to(folder / "sub")
    (folder / "outside_link").symlink_to(tmp_path / "out")
    (folder / "sub" / "dangling_out").symlink_to("/nonexistent/secret")
    assert inside_folder(folder, "sub/a.csv") == folder / "sub" / "a.csv"
    assert inside_folder(folder, "inside_link/a.csv") == folder / "inside_link" / "a.csv"
    for name in ("/etc/passwd", "../out/x.csv", "sub/../../out/x.csv", "outside_link/x.csv", "sub/dangling_out",
                 "", 7):
        with pytest.raises(OutsideFolderError):
            inside_folder(folder, name)
    assert links_leading_out(folder) == ["outside_link", "sub/dangling_out"]
    # The folder itself may be reached through a link (an operator's data/sample -> /mnt/extracts/...).
    (tmp_path / "alias").symlink_to(folder)
    assert inside_folder(tmp_path / "alias", "sub/a.csv") == tmp_path / "alias" / "sub" / "a.csv"


# ---------------------------------------------------------------------------------------------------------------
# The extract-drop sensor: names, links out of landing/, drops naming outside files
# ---------------------------------------------------------------------------------------------------------------
def _complete_drop(folder: Path) -> Path:
    write_fixture(folder)
    (folder / "_manifest.json").write_text(json.dumps({"patients": 5}))
    return folder


def _tick(landing: Path, databases: Path, instance):
    from pipelines.definitions import defs
    from pipelines.operations.sensors import build_extract_drop_sensor

    sensor = build_extract_drop_sensor(landing, databases)
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs,
                                                        instance_ref=instance.get_ref()))


def test_site_names_match_as_a_whole(tmp_path):
    from pipelines.network.sites import SiteNameError, check_site_name, site_database, site_for_extract

    assert check_site_name("site_a.2") == "site_a.2"
    for name in ("a\n", "nl_site\n", "a\nb", "a/b", "../a", "", " a", "a'b"):
        with pytest.raises(SiteNameError):
            check_site_name(name)
    with pytest.raises(SiteNameError):
        site_database("nl_site\n", tmp_path)
    with pytest.raises(SiteNameError):
        site_for_extract(tmp_path / "nl_site\n")


def test_the_sensor_refuses_drops_that_would_read_outside_them(tmp_path, dagster_instance):
    landing, databases = tmp_path / "landing", tmp_path / "sites"
    secret = _secret_file(tmp_path)
    _complete_drop(landing / "good_site")
    # A name ending in a newline (a partition 'nl_site\n', a database 'nl_site\n.duckdb').
    _complete_drop(landing / "nl_site\n")
    _complete_drop(landing / "net_site" / "drop\n")
    # A drop folder that is a link out of the landing folder (to another site's extract).
    _complete_drop(tmp_path / "other_site_extract")
    (landing / "linked_site").symlink_to(tmp_path / "other_site_extract")
    # A drop whose site folder is a link out of the landing folder.
    _complete_drop(tmp_path / "elsewhere" / "2026_11")
    (landing / "linked_network_site").symlink_to(tmp_path / "elsewhere")
    # A drop with a table file linked out of it.
    drop = _complete_drop(landing / "death_link_site")
    (drop / "death.csv").unlink()
    (drop / "death.csv").symlink_to(secret)
    # Drops whose extract_mapping.yaml names files outside them.
    for site, named in (("absolute_site", str(secret)), ("dotdot_site", "../../other_site/secret.csv")):
        site_mapping_extract(landing / site, person_file=named)
        (landing / site / "_manifest.json").write_text("{}")

    result = _tick(landing, databases, dagster_instance)
    assert [request.partition_key for request in result.run_requests] == ["good_site"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["good_site"]


def test_the_sensor_names_each_refused_drop(tmp_path, dagster_instance):
    from pipelines.operations.sensors import Drop, find_drops, paths_leading_out

    landing = tmp_path / "landing"
    secret = _secret_file(tmp_path)
    _complete_drop(tmp_path / "other_site_extract")
    landing.mkdir()
    (landing / "linked_site").symlink_to(tmp_path / "other_site_extract")
    drop = _complete_drop(landing / "death_link_site")
    (drop / "death.csv").unlink()
    (drop / "death.csv").symlink_to(secret)
    site_mapping_extract(landing / "dotdot_site", person_file="../other_site/secret.csv")
    (landing / "dotdot_site" / "_manifest.json").write_text("{}")
    _complete_drop(landing / "nl_site\n")

    drops = {d.name: d for d in find_drops(landing)}
    assert paths_leading_out(landing, drops["linked_site"]) == [
        f"linked_site is a symbolic link (or inside one) leading outside the landing folder {landing}"]
    assert paths_leading_out(landing, drops["death_link_site"]) == [
        "death.csv is a symbolic link leading outside the drop"]
    [problem] = paths_leading_out(landing, drops["dotdot_site"])
    assert "tables.person.file '../other_site/secret.csv' leads out of its folder" in problem
    assert paths_leading_out(landing, Drop("x", landing / "nl_site\n", "nl_site\n")) == []

    result = _tick(landing, tmp_path / "sites", dagster_instance)
    assert not result.run_requests
    message = result.skip_message
    assert "linked_site: refused, it names files outside its folder" in message
    assert "death_link_site: refused" in message and "dotdot_site: refused" in message
    assert "'nl_site\\n': rename 'nl_site\\n'" in message
    assert "SECRET" not in message


# ---------------------------------------------------------------------------------------------------------------
# Hostile names in SQL text
# ---------------------------------------------------------------------------------------------------------------
def _site_database(path: Path, exposure: str) -> None:
    from pipelines.statistics.assets import create_associations_table

    with duckdb.connect(str(path)) as con:
        create_associations_table(con)
        con.execute("INSERT INTO results.associations (study_id, exposure, outcome, method, estimate, ci_lower, "
                    "ci_upper) VALUES ('leg_cramps', ?, 'leg_cramps', 'Cox', 1.5, 1.1, 2.0)", [exposure])


def test_the_network_job_attaches_site_databases_whatever_their_paths(tmp_path, dagster_instance, monkeypatch):
    from pipelines.definitions import defs
    from pipelines.network.assets import NETWORK_JOB_NAME
    from pipelines.publish.assets import PUBLISHED_KEY

    monkeypatch.chdir(tmp_path)
    # The crafted name is a whole ATTACH; COPY; ATTACH script when pasted between quotes: before the fix the
    # network job wrote pwned.csv and read the other database (b.duckdb) as that site's.
    crafted = "a.duckdb' AS evil (READ_ONLY); COPY (SELECT 42 AS x) TO 'pwned.csv'; ATTACH 'b.duckdb"
    _site_database(tmp_path / "a.duckdb", "decoy_a")
    _site_database(tmp_path / "b.duckdb", "decoy_b")
    paths = {
        "crafted_site": crafted,  # relative to the working folder, as a database path may be
        "quote_site": str(tmp_path / "o'brien" / "site.duckdb"),
        "odd_site": str(tmp_path / 'we"ird; name\nwith a newline.duckdb'),
    }
    for site, path in paths.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _site_database(Path(path), f"exposure_of_{site}")
    dagster_instance.add_dynamic_partitions("site", list(paths))
    for site, path in paths.items():
        dagster_instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=PUBLISHED_KEY, partition=site, metadata={"path": dg.MetadataValue.path(path)}))

    network_db = tmp_path / "network" / "network.duckdb"
    result = defs.resolve_job_def(NETWORK_JOB_NAME).execute_in_process(
        run_config={"resources": {"network_warehouse": {"config": {"database_path": str(network_db)}}}},
        instance=dagster_instance, raise_on_error=False)
    assert not (tmp_path / "pwned.csv").exists()
    assert result.success
    with duckdb.connect(str(network_db), read_only=True) as con:
        rows = con.execute("SELECT site, exposure FROM results.site_associations ORDER BY site").fetchall()
        sites = con.execute("SELECT site, database_path FROM results.network_sites ORDER BY site").fetchall()
    assert rows == [(site, f"exposure_of_{site}") for site in sorted(paths)]
    assert sites == sorted(paths.items())


def test_network_column_comments_take_any_column_name(tmp_path):
    from pipelines.network.pooling import comment_on, comment_on_columns

    con = duckdb.connect()
    con.execute("CREATE SCHEMA results")
    con.execute(f"CREATE TABLE results.t ({quote_identifier(HOSTILE)} VARCHAR)")
    comment_on_columns(con, "results.t", [(HOSTILE, HOSTILE)])
    comment_on(con, "results.t", HOSTILE)
    assert con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 't'").fetchall() == [
        (HOSTILE, HOSTILE)]
    assert con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 't'").fetchone()[0] == HOSTILE


def test_site_mapping_columns_with_hostile_names_load_as_data(tmp_path):
    columns = ("Pat\"ID's; DROP TABLE staging.person; --", "Y'O'B year", 'Gen"der;')
    extract = site_mapping_extract(tmp_path / "it's; a \"site\"", person_columns=columns)
    # Other tables name the same persons by the plain column PatID.
    con = duckdb.connect()
    load_extract_any_format(con, extract)
    assert con.execute("SELECT person_id, year_of_birth, sex FROM staging.person ORDER BY 1").fetchall() == [
        ("p1", 1950, "F"), ("p2", 1960, "M")]


def test_a_line_break_inside_a_quoted_header_name_is_refused_by_name(tmp_path):
    # Physical line numbers assume a one-line header, so a header name holding a line break is an error, not SQL.
    columns = ("PatID", "Y'O'B\nyear", "Gender")
    extract = site_mapping_extract(tmp_path / "site_nl", person_columns=columns)
    with pytest.raises(ExtractError, match="line 1 \\(the header\\) has an unclosed quote"):
        load_extract_any_format(duckdb.connect(), extract)


def test_site_mapping_code_systems_and_date_formats_with_quotes_stay_data(tmp_path):
    from pipelines import extract_spec as spec
    from pipelines.ingest.formats.common import run_sql_file
    from pipelines.ingest.formats.site_mapping import read_mapping, table_shape_sql

    extract = site_mapping_extract(tmp_path / "site_a")
    mapping = read_mapping(extract)
    entry = mapping["tables"]["condition_occurrence"]
    entry["code_systems"] = {"condition_code": HOSTILE}
    entry["date_format"] = "%d/%m/%Y'); SELECT ('x"
    _, select = table_shape_sql(extract, mapping, spec.TABLES_BY_NAME["condition_occurrence"])
    con = duckdb.connect()
    run_sql_file(con, "staging/format_macros.sql")
    con.execute("CREATE TEMP TABLE _raw_source AS SELECT 'd1,p1' AS _record, 'd1' AS \"ID\", 'p1' AS \"PatID\", "
                "'R252' AS \"Dx\", '03/02/2016' AS \"Date\"")
    # The vocabulary is the mapping's text; the date does not parse in that (odd) format, so it passes unchanged
    # for the loader to reject as unparseable_date.
    assert con.execute(f"SELECT condition_vocabulary, condition_start_date FROM ({select})").fetchall() == [
        (HOSTILE, "03/02/2016")]


def test_study_phenotype_columns_take_any_name():
    from pipelines.cohorts.build import add_phenotype_columns
    from pipelines.statistics.study_analysis import POPULATION_COLUMNS, study_population

    con = duckdb.connect()
    con.execute("CREATE SCHEMA cohort")
    con.execute("CREATE TABLE cohort.study_population (study_id VARCHAR, person_id BIGINT, "
                + ", ".join(f"{name} VARCHAR" for name in POPULATION_COLUMNS) + ")")
    study = SimpleNamespace(id="s1", variables=[SimpleNamespace(variable=HOSTILE)], phenotype_ids=[HOSTILE])
    add_phenotype_columns(con, study)
    con.execute("INSERT INTO cohort.study_population BY NAME SELECT 's1' AS study_id, true AS "
                f"{quote_identifier(HOSTILE)}")
    assert [name for (name,) in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'study_population' ORDER BY column_index"
    ).fetchall()][-2:] == [HOSTILE, f"{HOSTILE}_first_date"]
    frame = study_population(con, study)
    assert list(frame.columns[-2:]) == [HOSTILE, f"{HOSTILE}_first_date"] and bool(frame[HOSTILE].iloc[0])


def test_study_population_pivot_quotes_the_phenotype_ids():
    from pipelines.cohorts.build import study_population_select_sql

    sql = study_population_select_sql(SimpleNamespace(variables=[SimpleNamespace(variable=HOSTILE)]))
    quoted_literal = "'" + HOSTILE.replace("'", "''") + "'"
    quoted_identifier = '"' + HOSTILE.replace('"', '""') + '"'
    assert f"FILTER (WHERE variable = {quoted_literal}) AS {quoted_identifier}" in sql
    # The whole statement parses (an unbalanced quote would make it a parser error).
    duckdb.connect().extract_statements(sql)


def test_quality_history_database_path_with_quotes(tmp_path):
    from pipelines.quality.runner import ensure_check_results_table

    history = tmp_path / "o'brien \"dq\"; x.duckdb"
    with duckdb.connect(str(history)) as con:
        ensure_check_results_table(con)
        con.execute("INSERT INTO dq.check_results (run_id, suite) VALUES ('earlier run', 'staging')")
    con = duckdb.connect(str(tmp_path / "new.duckdb"))
    ensure_check_results_table(con, history)
    assert con.execute("SELECT run_id, suite FROM dq.check_results").fetchall() == [("earlier run", "staging")]


def test_check_sql_literals_double_quotes_and_braces():
    from pipelines.quality.suites import literal

    # Quotes doubled for SQL, braces doubled for GX's str.format of {batch}: after formatting, the text is data.
    assert literal("it's {batch}").format(batch="x") == "'it''s {batch}'"


def test_data_dictionary_comments_take_any_table_and_column_name():
    from pipelines.data_dictionary import DataDictionary, TableEntry, comment_database

    table = "it's \"t\"; x"
    dictionary = DataDictionary(common_columns={}, tables={
        f"results.{table}": TableEntry(name=f"results.{table}", description=HOSTILE, columns={HOSTILE: HOSTILE})})
    con = duckdb.connect()
    con.execute("CREATE SCHEMA results")
    con.execute(f"CREATE TABLE results.{quote_identifier(table)} ({quote_identifier(HOSTILE)} VARCHAR)")
    assert comment_database(con, dictionary) == []
    assert con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = ?", [table]).fetchall() == [
        (HOSTILE,)]
    assert con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ?",
                       [table]).fetchall() == [(HOSTILE, HOSTILE)]


def test_benchmark_plain_load_reads_a_folder_with_quotes(tmp_path):
    from bench.run_benchmark import duckdb_plain_load_seconds

    extract = write_fixture(tmp_path / "o'brien; \"extract\"")
    assert duckdb_plain_load_seconds(extract, tmp_path, None) >= 0
    assert not os.path.exists(tmp_path / "plain_load.duckdb")
