"""Drug classes do not depend on how a site records its drugs: a generated extract whose fills are rewritten into
ATC only, into RxNorm ingredient CUIs only, and into OMOP clinical drugs (an OMOP CDM extract with concept and
concept_relationship, no concept_ancestor) gives the same members, with the same first dates, in every drug
phenotype.

The rewrite needs each generated substance's ingredient CUIs. They come from the generator's catalogue (an
independent oracle) where it has them, else from the RxNorm rows of phenotypes/reference/drug_ingredients.csv
(verified or verified_weak, as the phenotypes use both) by ingredient name (fluticasone 41126 from the OHDSI Eunomia
vocabulary in ../shared/data). A substance with no verified CUI (listed in UNVERIFIED_INGREDIENTS) cannot be written as RxNorm, so its fills stay ATC in every variant:
the RxNorm CUIs of those ingredients are the known gap of the reference table.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import duckdb
import pytest

from pipelines import paths
from pipelines.ingest.formats import load_extract_any_format
from pipelines.ingest.loader import load_extract
from pipelines.phenotypes import phenotype_library, run_phenotypes
from pipelines.sql import read_sql
from pipelines.synthetic.catalog import DRUG_CLASSES, NEGATIVE_CONTROL_DRUGS

# Ingredient CUIs verified outside the reference table's class rows (ingredients in no class).
OTHER_VERIFIED_CUIS = {"fluticasone": "41126"}  # OHDSI Eunomia GiBleed CONCEPT.csv, concept 1149380
# Generated substances whose ingredient CUIs are not verified (phenotypes/reference/README.md, known gaps).
UNVERIFIED_INGREDIENTS = {
    "bendroflumethiazide", "chlorothiazide", "amiloride", "triamterene",
    "fenofibrate", "gemfibrozil", "ezetimibe", "formoterol and budesonide", "formoterol",
    "levonorgestrel and ethinylestradiol"}


def _reference_cuis() -> dict[str, str]:
    """Ingredient name -> RxNorm CUI from the RxNorm rows of the reference table (verified or verified_weak)."""
    with open(paths.PHENOTYPES_DIR / "reference" / "drug_ingredients.csv", newline="", encoding="utf-8") as handle:
        return {row["ingredient"].split(" (")[0]: row["code"] for row in csv.DictReader(handle)
                if row["vocabulary"] == "RxNorm"}


def substance_ingredients() -> dict[str, tuple[str, tuple[str, ...]]]:
    """ATC code of each generated substance -> (name, its ingredient CUIs); no CUIs when one is not verified."""
    known = {**_reference_cuis(), **OTHER_VERIFIED_CUIS}
    result = {}
    for drug_class in DRUG_CLASSES.values():
        for substance, _share in drug_class.substances:
            parts = substance.name.split(" and ")
            cuis = (substance.rxcui,) if substance.rxcui and len(parts) == 1 else tuple(known.get(p) for p in parts)
            result[substance.atc] = (substance.name, cuis if all(cuis) else ())
    for substance in NEGATIVE_CONTROL_DRUGS.values():  # the negative-control exposures: one ingredient each
        result[substance.atc] = (substance.name, (substance.rxcui,))
    return result


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, generated_extract) -> dict[str, set[tuple[str, str, str]]]:
    """Recording -> the (person, drug phenotype, first date) rows of phenotype.person_summary."""
    root = tmp_path_factory.mktemp("drug_recordings")
    base = duckdb.connect()
    load_extract(base, generated_extract(300, 1).path)
    substances = substance_ingredients()
    atc_of_rxcui = {cuis[0]: atc for atc, (_name, cuis) in substances.items() if len(cuis) == 1}
    fills = base.execute(
        "SELECT drug_exposure_id, person_id, drug_vocabulary, drug_code, drug_exposure_start_date, "
        "drug_exposure_end_date FROM staging.drug_exposure ORDER BY drug_exposure_id").fetchall()
    persons = base.execute("SELECT person_id, year_of_birth FROM staging.person ORDER BY person_id").fetchall()
    periods = base.execute("SELECT observation_period_id, person_id, observation_period_start_date, "
                           "observation_period_end_date FROM staging.observation_period").fetchall()
    base.close()

    # Every fill as its substance's ATC code (the generator writes the RxCUI where the substance has one).
    atc_fills = [(fill_id, person, atc_of_rxcui[code] if vocabulary == "RxNorm" else code, start, end)
                 for fill_id, person, vocabulary, code, start, end in fills]
    assert {atc for _, _, atc, _, _ in atc_fills} <= set(substances)

    def canonical(folder: Path, drug_rows: list[tuple]) -> Path:
        folder.mkdir()
        _write(folder / "person.csv", ["person_id", "year_of_birth", "sex"], [(p, y, "U") for p, y in persons])
        _write(folder / "observation_period.csv", ["observation_period_id", "person_id",
                                                   "observation_period_start_date", "observation_period_end_date"],
               periods)
        _write(folder / "drug_exposure.csv", ["drug_exposure_id", "person_id", "drug_vocabulary", "drug_code",
                                              "drug_exposure_start_date", "drug_exposure_end_date"], drug_rows)
        for name, header in (("condition_occurrence", "condition_occurrence_id,person_id,condition_vocabulary,"
                                                      "condition_code,condition_start_date"),
                             ("visit_occurrence", "visit_occurrence_id,person_id,visit_type,visit_start_date"),
                             ("measurement", "measurement_id,person_id,measurement_vocabulary,measurement_code,"
                                             "measurement_date"),
                             ("procedure_occurrence", "procedure_occurrence_id,person_id,procedure_vocabulary,"
                                                      "procedure_code,procedure_date")):
            (folder / f"{name}.csv").write_text(header + "\n")
        return folder

    atc_folder = canonical(root / "atc", [(f, p, "ATC", atc, s, e) for f, p, atc, s, e in atc_fills])
    ingredient_rows = []
    for fill_id, person, atc, start, end in atc_fills:
        cuis = substances[atc][1]
        if not cuis:
            ingredient_rows.append((fill_id, person, "ATC", atc, start, end))
        for index, cui in enumerate(cuis):  # a combination is one record per ingredient
            ingredient_rows.append((f"{fill_id}-{index}", person, "RxNorm", cui, start, end))
    ingredient_folder = canonical(root / "rxnorm_ingredients", ingredient_rows)
    omop_folder = _omop_clinical_drug_extract(root / "omop", persons, periods, atc_fills, substances)

    result = {}
    for recording, folder in (("ATC", atc_folder), ("RxNorm ingredients", ingredient_folder),
                              ("OMOP clinical drugs", omop_folder)):
        con = duckdb.connect()
        if recording == "OMOP clinical drugs":
            load_extract_any_format(con, folder)
            # Every clinical drug reached its ingredients through the RxNorm links (there is no concept_ancestor).
            assert not (folder / "concept_ancestor.csv").exists()
            linked, staged = con.execute(
                "SELECT (SELECT count(DISTINCT code) FROM vocabulary.concept_code_map WHERE mapping = 'ingredient'), "
                "(SELECT count(DISTINCT drug_code) FROM staging.drug_exposure WHERE drug_vocabulary = 'RxNorm')"
            ).fetchone()
            assert linked == staged > 10
        else:
            load_extract(con, folder)
            con.execute(read_sql("staging/empty_concept_code_map.sql"))
        run_phenotypes(con)
        result[recording] = {(person, phenotype, day.isoformat()) for person, phenotype, day in con.execute(
            "SELECT person_id, phenotype_id, first_date FROM phenotype.person_summary").fetchall()}
        con.close()
    return result


def _write(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _omop_clinical_drug_extract(folder: Path, persons, periods, atc_fills, substances) -> Path:
    """An OMOP CDM v5.3 extract whose fills are clinical drugs reaching their ingredients only through
    concept_relationship (clinical drug 'Consists of' component, component 'RxNorm has ing' ingredient), with no
    concept_ancestor; substances without verified CUIs are recorded by their ATC concept."""
    folder.mkdir()
    concept_ids = itertools.count(900_000_001)
    concepts, relationships, concept_of_atc = [], [], {}
    ingredient_concepts: dict[str, int] = {}
    for atc, (name, cuis) in sorted(substances.items()):
        if not cuis:
            concept_id = next(concept_ids)
            concepts.append((concept_id, name, "Drug", "ATC", "ATC 5th", "C", atc))
            concept_of_atc[atc] = concept_id
            continue
        # Stand-in clinical drug and component codes (not real RxCUIs): they mean something only through the links.
        drug_id = next(concept_ids)
        concepts.append((drug_id, f"{name} oral product", "Drug", "RxNorm", "Clinical Drug", "S", f"99{drug_id}"))
        concept_of_atc[atc] = drug_id
        for cui in cuis:
            if cui not in ingredient_concepts:
                ingredient_concepts[cui] = next(concept_ids)
                concepts.append((ingredient_concepts[cui], cui, "Drug", "RxNorm", "Ingredient", "S", cui))
            component_id = next(concept_ids)
            concepts.append((component_id, f"{cui} component", "Drug", "RxNorm", "Clinical Drug Comp", "S",
                             f"98{component_id}"))
            relationships += [(drug_id, component_id, "Consists of"),
                              (component_id, ingredient_concepts[cui], "RxNorm has ing")]
    _write(folder / "concept.csv", ["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
                                    "standard_concept", "concept_code", "valid_start_date", "valid_end_date",
                                    "invalid_reason"],
           [(*row, "1970-01-01", "2099-12-31", "") for row in concepts])
    _write(folder / "concept_relationship.csv", ["concept_id_1", "concept_id_2", "relationship_id",
                                                 "valid_start_date", "valid_end_date", "invalid_reason"],
           [(*row, "1970-01-01", "2099-12-31", "") for row in relationships])
    _write(folder / "person.csv", ["person_id", "gender_concept_id", "year_of_birth", "month_of_birth",
                                   "day_of_birth", "race_source_value", "ethnicity_source_value", "care_site_id"],
           [(p, 0, y, "", "", "", "", "") for p, y in persons])
    _write(folder / "observation_period.csv", ["observation_period_id", "person_id", "observation_period_start_date",
                                               "observation_period_end_date", "period_type_concept_id"],
           [(*row, 0) for row in periods])
    _write(folder / "drug_exposure.csv", ["drug_exposure_id", "person_id", "drug_concept_id", "drug_source_concept_id",
                                          "drug_source_value", "drug_exposure_start_date", "drug_exposure_end_date",
                                          "days_supply", "quantity", "visit_occurrence_id"],
           [(index, person, concept_of_atc[atc], 0, "", start, end, "", "", "")
            for index, (_fill, person, atc, start, end) in enumerate(atc_fills, start=1)])
    return folder


def test_the_unverified_ingredients_are_exactly_the_generated_substances_without_cuis():
    without = {name for name, cuis in substance_ingredients().values() if not cuis}
    assert without == UNVERIFIED_INGREDIENTS


def test_every_drug_phenotype_has_the_same_members_whatever_the_recording(recordings):
    drug_phenotypes = {p.id for p in phenotype_library() if p.definition.domain == "drug"}
    by_recording = {recording: {row for row in rows if row[1] in drug_phenotypes}
                    for recording, rows in recordings.items()}
    atc = by_recording["ATC"]
    # Every drug phenotype has members in the generated extract, so a class that lost all of them would show.
    assert {phenotype for _, phenotype, _ in atc} == drug_phenotypes
    for recording in ("RxNorm ingredients", "OMOP clinical drugs"):
        assert by_recording[recording] == atc, recording
