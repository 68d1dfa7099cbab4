"""Ingest warnings say what to do, not only what happened."""

import duckdb

from pipelines import extract_spec as spec
from pipelines.ingest.formats import load_extract_any_format
from pipelines.ingest.loader import TableLoad
from pipelines.ingest.reject_share import reject_share_verdicts
from pipelines.phenotypes.loader import phenotype_library


def _tiny_omop_without_vocabulary(folder):
    folder.mkdir()
    (folder / "person.csv").write_text(
        "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,race_source_value,"
        "ethnicity_source_value,care_site_id\n1,8532,1950,1,2,,,\n")
    (folder / "observation_period.csv").write_text(
        "observation_period_id,person_id,observation_period_start_date,observation_period_end_date\n"
        "1,1,2015-01-01,2020-12-31\n")
    (folder / "condition_occurrence.csv").write_text(
        "condition_occurrence_id,person_id,condition_concept_id,condition_source_concept_id,condition_source_value,"
        "condition_start_date,condition_end_date,visit_occurrence_id\n1,1,140673,0,E039,2018-01-01,,\n")
    return folder


def test_unresolvable_phenotypes_warning_says_what_to_ship(tmp_path):
    result = load_extract_any_format(duckdb.connect(), _tiny_omop_without_vocabulary(tmp_path / "omop"),
                                     phenotype_vocabularies=phenotype_library().code_vocabularies())
    [condition_warning] = [w for w in result.warnings if w.startswith(
        f"{len(result.unresolvable_phenotypes['condition_occurrence'])} condition phenotype(s) cannot be resolved")]
    assert "the extract ships no vocabulary tables" in condition_warning
    assert condition_warning.endswith(
        "To resolve them: ship the extract's OMOP vocabulary tables (concept, concept_relationship, "
        "concept_ancestor, as exported with the CDM), or describe files that hold the source codes with an "
        "extract_mapping.yaml naming their code system (docs/extract_formats.md, site layouts).")
    # An absent clinical table says what to add.
    assert any(w.startswith("the extract ships no drug_exposure table (created empty)") and
               w.endswith("Add drug_exposure.csv to the extract if the site has it.") for w in result.warnings)


def test_a_failed_reject_share_says_how_to_go_on():
    reasons = {reason: 0 for reason in spec.REJECT_REASON_CODES}
    loads = {table.name: TableLoad(table.name, f"{table.name}.csv", 100, 100, dict(reasons)) for table in spec.TABLES}
    loads["measurement"] = TableLoad("measurement", "measurement.csv", 100, 50, {**reasons, "unparseable_date": 50})
    [failed] = [v for v in reject_share_verdicts(loads, 0.01) if not v.passed]
    assert failed.table == "measurement"
    assert failed.description.endswith(
        "Fix the file and load it again, or, if these losses are acceptable for the study, raise the limit "
        "(legcramp-run --max-reject-share, or resources.extract.config.max_reject_share in the run configuration).")
