"""Every measurement of the phenotype library takes its canonical unit, units and plausible range from one row of
phenotypes/reference/measurements.yaml (measurement.analyte), so the phenotypes, the staging range checks and the
lab_test index read one statement of them."""

import pytest
import yaml

from pipelines.phenotypes import PhenotypeDefinitionError, load_phenotype_library, phenotype_library
from pipelines.phenotypes.loader import measurement_table

SODIUM_LAB = {
    "id": "sodium_low", "name": "Low sodium", "version": 1, "domain": "measurement", "description": "Sodium < 135.",
    "seed_section": "Electrolytes",
    "codes": [{"vocabulary": "LOINC", "match": "exact", "codes": ["2951-2"], "unit": "mmol/L", "status": "verified",
               "source": "OMOP"}],
    "measurement": {"analyte": "sodium", "threshold": {"less_than": 135}},
    "rule": {"type": "min_records", "min_records": 1}, "sources": ["StatPearls"],
}


def _load(tmp_path, measurement: dict):
    (tmp_path / "sodium_low.yaml").write_text(yaml.safe_dump({**SODIUM_LAB, "measurement": measurement}))
    return load_phenotype_library(tmp_path)


def test_every_library_measurement_names_its_row_of_the_table():
    table = measurement_table()
    measurements = [p.definition.measurement for p in phenotype_library() if p.definition.measurement is not None]
    assert {m.analyte for m in measurements} == set(table) == {"sodium", "potassium", "magnesium",
                                                               "ankle_brachial_index"}
    for m in measurements:
        row = table[m.analyte]
        assert m.canonical_unit == row["canonical_unit"]
        assert [(u.unit, u.factor) for u in m.units] == [(u["unit"], u["factor"]) for u in row["units"]]
    # Magnesium's range is stated once, in mmol/L, and read in mg/dL (x 2.4305) by every magnesium phenotype.
    assert phenotype_library().plausible_range("LOINC", "2601-3") == (0.24305, 12.1525, True)


def test_a_definition_takes_the_row_and_may_not_restate_it(tmp_path):
    [phenotype] = _load(tmp_path, {"analyte": "sodium", "threshold": {"less_than": 135}})
    assert phenotype.definition.measurement.plausible_range.max == 200
    with pytest.raises(PhenotypeDefinitionError, match="plausible_range come from the analyte's row"):
        _load(tmp_path, {"analyte": "sodium", "threshold": {"less_than": 135},
                         "plausible_range": {"min": 90, "max": 200}})
    with pytest.raises(PhenotypeDefinitionError, match="unknown analyte 'natrium'"):
        _load(tmp_path, {"analyte": "natrium", "threshold": {"less_than": 135}})


def test_the_row_is_part_of_the_definitions_fingerprint(tmp_path, monkeypatch):
    [before] = _load(tmp_path, {"analyte": "sodium", "threshold": {"less_than": 135}})
    changed = {**measurement_table(), "sodium": {**measurement_table()["sodium"],
                                                 "plausible_range": {"min": 90, "max": 200}}}
    monkeypatch.setattr("pipelines.phenotypes.loader.measurement_table", lambda: changed)
    [after] = _load(tmp_path, {"analyte": "sodium", "threshold": {"less_than": 135}})
    assert after.definition.measurement.plausible_range.min == 90
    assert after.sha256 != before.sha256
