"""Loading and checking the phenotype files.

``load_phenotype_library()`` reads every ``*.yaml`` under phenotypes/ and returns them checked, or raises one
``PhenotypeDefinitionError`` listing every problem found (file, field path, problem). Nothing touches the database
here: a broken definition stops the run before any SQL runs.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml
from pydantic import ValidationError

from pipelines import paths
from pipelines.extract_spec import VOCABULARIES
from pipelines.field_paths import field_path
from pipelines.vocabularies import VOCABULARIES_BY_DOMAIN, code_problem
from pipelines.phenotypes.errors import DefinitionProblem, PhenotypeDefinitionError
from pipelines.phenotypes.schema import (
    RULE_TYPES,
    RULE_TYPES_BY_DOMAIN,
    AllOfRule,
    CodeGroup,
    CodeRemoval,
    PhenotypeDefinition,
    VariantDefinition,
    normalise_unit,
)

WHOLE_FILE = "(file)"
# One row per measurement: canonical unit, units and plausible range, which a phenotype takes by naming its analyte.
MEASUREMENTS_TABLE = paths.PHENOTYPES_DIR / "reference" / "measurements.yaml"
MEASUREMENT_TABLE_FIELDS = ("canonical_unit", "units", "plausible_range")


@functools.cache
def measurement_table() -> dict[str, dict]:
    """{analyte: {canonical_unit, units, plausible_range, plausible_range_reason}} of phenotypes/reference/
    measurements.yaml."""
    return yaml.safe_load(MEASUREMENTS_TABLE.read_text(encoding="utf-8"))["measurements"]


@dataclass(frozen=True)
class LoadedPhenotype:
    """A checked definition with the file it came from."""

    definition: PhenotypeDefinition
    source_file: str  # repository-relative path where possible, as shown in messages and phenotype.definitions
    # Of the file's bytes (and, for a measurement, its analyte's row of measurements.yaml): tells which exact text
    # produced a result. A variant's is of its file's and its parent's (its definition is built from both).
    sha256: str
    # 0 for phenotypes computed from records alone; otherwise 1 + the depth of the deepest phenotype it refers to.
    # Phenotypes are computed in order of depth.
    depth: int

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass(frozen=True)
class PhenotypeLibrary:
    """All phenotype definitions, in the order they are computed (depth, then id)."""

    phenotypes: tuple[LoadedPhenotype, ...]

    def __iter__(self) -> Iterator[LoadedPhenotype]:
        return iter(self.phenotypes)

    def __len__(self) -> int:
        return len(self.phenotypes)

    def __getitem__(self, phenotype_id: str) -> LoadedPhenotype:
        for phenotype in self.phenotypes:
            if phenotype.id == phenotype_id:
                return phenotype
        raise KeyError(phenotype_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.phenotypes)

    def plausible_range(self, vocabulary: str, code: str) -> tuple[float, float, bool]:
        """(min, max, min_inclusive) in the canonical unit of the measurement code, as every phenotype reading it
        states it (the loader refuses a library where they differ)."""
        for phenotype in self.phenotypes:
            measurement = phenotype.definition.measurement
            if measurement is not None and any(group.vocabulary == vocabulary and code in group.codes
                                               for group in phenotype.definition.codes):
                return measurement.canonical_plausible_range()
        raise KeyError(f"no measurement phenotype reads {vocabulary} {code}")

    @property
    def domains(self) -> dict[str, str]:
        """Phenotype id -> domain (condition, drug, measurement or composite)."""
        return {p.id: p.definition.domain for p in self.phenotypes}

    @property
    def parents(self) -> dict[str, str]:
        """Variant phenotype id -> the phenotype it is a variant of (variant_of), for the variants only."""
        return {p.id: p.definition.variant_of for p in self.phenotypes if p.definition.variant_of is not None}

    def code_vocabularies(self) -> dict[str, dict[str, frozenset[str]]]:
        """Domain -> phenotype id -> the vocabularies of its codes: what the ingest needs to say which phenotypes
        an extract's codes cannot reach (pipelines/ingest/formats/common.py, PhenotypeVocabularies). Composites
        have no codes of their own."""
        found: dict[str, dict[str, frozenset[str]]] = {}
        for phenotype in self.phenotypes:
            definition = phenotype.definition
            found.setdefault(definition.domain, {})[phenotype.id] = frozenset(
                group.vocabulary for group in definition.codes)
        return found


def phenotype_library(folder: Path | str = paths.PHENOTYPES_DIR) -> PhenotypeLibrary:
    """The library of ``folder``, read and checked once per process: what every stage asks for the phenotype ids,
    domains and rules (studies, quality suites, docs). ``load_phenotype_library`` reads the files again."""
    return _library_of(Path(folder).resolve())


@functools.lru_cache(maxsize=None)
def _library_of(folder: Path) -> PhenotypeLibrary:
    return load_phenotype_library(folder)


def load_phenotype_library(folder: Path | str = paths.PHENOTYPES_DIR) -> PhenotypeLibrary:
    """Read and check every phenotype file under ``folder`` (searched recursively for ``*.yaml``; the reference
    tables in ``reference/`` are data the phenotypes read, not phenotypes)."""
    folder = Path(folder)
    files = sorted(path for path in folder.rglob("*.yaml") if "reference" not in path.relative_to(folder).parts[:-1])
    if not files:
        raise PhenotypeDefinitionError([DefinitionProblem(_display_name(folder), WHOLE_FILE,
                                                          "no phenotype files (*.yaml) found")])
    return load_phenotype_files(files)


def load_phenotype_files(files: list[Path]) -> PhenotypeLibrary:
    """Read and check the given phenotype files as one library."""
    problems: list[DefinitionProblem] = []
    loaded: list[tuple[PhenotypeDefinition, str, str]] = []
    variants: list[tuple[VariantDefinition, str, str, Path]] = []
    for path in files:
        file_name = _display_name(path)
        definition, sha256, file_problems = _load_one_file(path, file_name)
        problems.extend(file_problems)
        if isinstance(definition, VariantDefinition):
            variants.append((definition, file_name, sha256, path))
        elif definition is not None:
            loaded.append((definition, file_name, sha256))
    loaded += _resolved_variants(variants, loaded, {v.id: v.variant_of for v, _, _, _ in variants}, problems)

    problems.extend(_library_problems(loaded))
    if problems:
        raise PhenotypeDefinitionError(problems)

    depths = _depths({d.id: d for d, _, _ in loaded})
    phenotypes = [LoadedPhenotype(d, file_name, sha256, depths[d.id]) for d, file_name, sha256 in loaded]
    phenotypes.sort(key=lambda p: (p.depth, p.id))
    return PhenotypeLibrary(tuple(phenotypes))


# ---------------------------------------------------------------------------------------------------------------
# One file
# ---------------------------------------------------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML would silently keep the last)."""


class _LibyamlUniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The same loader on libyaml's parser (PyYAML's C extension, where installed): the same documents for a tenth of
    the CPU (0.05 instead of 0.48 s for the library's files: a fixed cost of every run and definitions build)."""


def _construct_mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


for _loader in (_UniqueKeyLoader, _LibyamlUniqueKeyLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_without_duplicates)


def _parsed(text: str):
    """The file's document. A file libyaml refuses is parsed again by the pure-Python parser, whose message quotes
    the line and names the character (libyaml's does neither)."""
    try:
        return yaml.load(text, Loader=_LibyamlUniqueKeyLoader)
    except yaml.YAMLError:
        return yaml.load(text, Loader=_UniqueKeyLoader)


def _load_one_file(path: Path, file_name: str
                   ) -> tuple[PhenotypeDefinition | VariantDefinition | None, str, list[DefinitionProblem]]:
    """The file's definition (a variant's as written: its parent's is needed to complete it), its sha256 and its
    problems."""
    raw = path.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()

    def problem(field: str, message: str) -> DefinitionProblem:
        return DefinitionProblem(file_name, field, message)

    try:
        document = _parsed(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        return None, sha256, [problem(WHOLE_FILE, f"not valid YAML: {' '.join(str(error).split())}")]
    if not isinstance(document, dict):
        return None, sha256, [problem(WHOLE_FILE, "the file must hold one mapping of fields (id, name, ...)")]

    measurement = document.get("measurement")
    if isinstance(measurement, dict) and "analyte" in measurement:
        analyte = measurement["analyte"]
        table = measurement_table()
        if analyte not in table:
            return None, sha256, [problem("measurement.analyte", f"unknown analyte {analyte!r}; "
                                          f"{MEASUREMENTS_TABLE.name} lists {', '.join(sorted(table))}")]
        stated = [name for name in MEASUREMENT_TABLE_FIELDS if name in measurement]
        if stated:
            return None, sha256, [problem(f"measurement.{stated[0]}", f"{', '.join(stated)} come from the analyte's "
                                          f"row of phenotypes/reference/{MEASUREMENTS_TABLE.name}: leave them out")]
        row = {name: table[analyte][name] for name in MEASUREMENT_TABLE_FIELDS}
        document = {**document, "measurement": {**measurement, **row}}
        # The result depends on the row as much as on the file: both go into the fingerprint.
        sha256 = hashlib.sha256(raw + yaml.safe_dump(row, sort_keys=True).encode("utf-8")).hexdigest()

    model = VariantDefinition if "variant_of" in document else PhenotypeDefinition
    try:
        definition = model.model_validate(document)
    except ValidationError as error:
        return None, sha256, [problem(_problem_field(e["loc"]), _variant_message(e) if model is VariantDefinition
                                      else _pydantic_message(e)) for e in error.errors()]
    if isinstance(definition, VariantDefinition):
        id_problems = [problem("id", message) for message in _id_problems(definition.id, path)]
        return (None if id_problems else definition), sha256, id_problems

    problems = [problem(field, message) for field, message in _definition_problems(definition, path)]
    return (None if problems else definition), sha256, problems


def _definition_problems(definition: PhenotypeDefinition, path: Path) -> Iterator[tuple[str, str]]:
    """(field path, problem) for everything wrong inside one parsed definition."""
    domain = definition.domain

    for message in _id_problems(definition.id, path):
        yield "id", message

    allowed_rules = RULE_TYPES_BY_DOMAIN[domain]
    if definition.rule.type not in allowed_rules:
        yield "rule.type", (f"rule type {definition.rule.type!r} does not apply to a {domain} phenotype "
                            f"(use {' or '.join(allowed_rules)})")

    if domain == "composite":
        if definition.codes:
            yield "codes", "a composite phenotype has no codes of its own: it combines other phenotypes"
        if definition.exclude_codes:
            yield "exclude_codes", "a composite phenotype has no codes of its own: it combines other phenotypes"
    elif not definition.codes:
        yield "codes", f"a {domain} phenotype needs at least one code group"

    if domain == "measurement":
        if definition.measurement is None:
            yield "measurement", "a measurement phenotype needs units, a plausible range and a threshold"
        else:
            yield from _measurement_problems(definition)
    elif definition.measurement is not None:
        yield "measurement", f"only measurement phenotypes have a measurement section (this one is a {domain})"

    yield from _code_group_problems(definition, "codes", definition.codes, included=True)
    yield from _code_group_problems(definition, "exclude_codes", definition.exclude_codes, included=False)


def _id_problems(phenotype_id: str, path: Path) -> Iterator[str]:
    if path.stem != phenotype_id:
        yield f"the id must equal the file name without .yaml ({path.stem!r})"


# ---------------------------------------------------------------------------------------------------------------
# Variants: the parent's definition with the differences a variant file states
# ---------------------------------------------------------------------------------------------------------------

def _resolved_variants(variants: list[tuple[VariantDefinition, str, str, Path]],
                       mains: list[tuple[PhenotypeDefinition, str, str]], variant_parents: dict[str, str],
                       problems: list[DefinitionProblem]) -> list[tuple[PhenotypeDefinition, str, str]]:
    """Each variant's complete definition, built from its parent's (a main phenotype: variants do not chain), with
    its sha256 over both files; the problems of a variant are named by its own file (a problem of the built
    definition by the field of that definition)."""
    parents = {definition.id: (definition, sha256) for definition, _, sha256 in mains}
    resolved = []
    for variant, file_name, sha256, path in variants:
        parent = variant.variant_of
        if parent == variant.id:
            message = "a phenotype cannot be a variant of itself"
        elif parent in variant_parents:
            message = f"{parent!r} is itself a variant of {variant_parents[parent]!r}; name the main phenotype"
        elif parent not in parents:
            message = f"unknown phenotype {parent!r}"
        else:
            message = None
        if message:
            problems.append(DefinitionProblem(file_name, "variant_of", message))
            continue
        parent_definition, parent_sha256 = parents[parent]
        data, own_problems = _variant_data(variant, parent_definition)
        try:
            definition = PhenotypeDefinition.model_validate(data)
        except ValidationError as error:
            own_problems += [(f"{_problem_field(e['loc'])} (as built from {parent})", _pydantic_message(e))
                             for e in error.errors()]
        else:
            own_problems += [(f"{field} (as built from {parent})", message)
                             for field, message in _definition_problems(definition, path)]
        problems.extend(DefinitionProblem(file_name, field, message) for field, message in own_problems)
        if not own_problems:
            combined = hashlib.sha256(f"{sha256}\n{parent_sha256}".encode()).hexdigest()
            resolved.append((definition, file_name, combined))
    return resolved


def _variant_data(variant: VariantDefinition, parent: PhenotypeDefinition) -> tuple[dict, list[tuple[str, str]]]:
    """The complete definition of a variant, as data for PhenotypeDefinition, and the problems of its differences
    (a removed code the parent does not list, a threshold of a phenotype that has none, no difference at all)."""
    problems: list[tuple[str, str]] = []
    if not variant.differences:
        problems.append((WHOLE_FILE, f"states no difference from {parent.id} (add_codes, remove_codes, "
                                     "add_exclude_codes, remove_exclude_codes, rule or threshold)"))
    codes = [*_without(parent.codes, variant.remove_codes, "remove_codes", parent.id, problems), *variant.add_codes]
    excluded = [*_without(parent.exclude_codes, variant.remove_exclude_codes, "remove_exclude_codes", parent.id,
                          problems), *variant.add_exclude_codes]
    measurement = parent.measurement
    if variant.threshold is not None:
        if measurement is None:
            problems.append(("threshold", f"{parent.id} is a {parent.domain} phenotype; only a measurement "
                                          "phenotype has a threshold"))
        else:
            measurement = measurement.model_copy(update={"threshold": variant.threshold})
    data = {**parent.model_dump(),
            "id": variant.id, "variant_of": parent.id, "name": variant.name, "version": variant.version,
            "description": variant.description,
            "codes": [group.model_dump() for group in codes],
            "exclude_codes": [group.model_dump() for group in excluded],
            "measurement": None if measurement is None else measurement.model_dump(),
            "rule": (variant.rule or parent.rule).model_dump(),
            "decisions": [decision.model_dump() for decision in variant.decisions],
            "clinical_doubts": list(variant.clinical_doubts),
            "sources": list(dict.fromkeys([*parent.sources, *variant.sources]))}
    return data, problems


def _without(groups: list[CodeGroup], removals: list[CodeRemoval], field: str, parent_id: str,
             problems: list[tuple[str, str]]) -> list[CodeGroup]:
    """The parent's code groups less the removed codes; a group left without codes is dropped, and a group that
    lost some says so in its note (the parent's note may name the removed codes)."""
    removed = {(removal.vocabulary, code): f"{field}[{index}].codes[{position}]"
               for index, removal in enumerate(removals) for position, code in enumerate(removal.codes)}
    listed = {(group.vocabulary, code) for group in groups for code in group.codes}
    problems += [(where, f"{parent_id} lists no {vocabulary} code {code} here to remove")
                 for (vocabulary, code), where in removed.items() if (vocabulary, code) not in listed]
    kept = []
    for group in groups:
        codes = [code for code in group.codes if (group.vocabulary, code) not in removed]
        if codes == group.codes:
            kept.append(group)
        elif codes:
            dropped = ", ".join(code for code in group.codes if code not in codes)
            note = f"{parent_id}'s codes less {dropped}." + (f" Its note: {group.note}" if group.note else "")
            kept.append(group.model_copy(update={"codes": codes, "note": note}))
    return kept


def _code_group_problems(definition: PhenotypeDefinition, field: str, groups: list[CodeGroup],
                         included: bool) -> Iterator[tuple[str, str]]:
    domain = definition.domain
    known_units = _listed_units(definition)
    first_seen: dict[tuple[str, str, str], str] = {}
    for group_index, group in enumerate(groups):
        group_path = f"{field}[{group_index}]"
        if group.vocabulary not in VOCABULARIES:
            yield f"{group_path}.vocabulary", (f"unknown vocabulary {group.vocabulary!r} "
                                               f"(known: {', '.join(VOCABULARIES)})")
            continue
        domain_vocabularies = VOCABULARIES_BY_DOMAIN.get(domain, ())
        if domain in VOCABULARIES_BY_DOMAIN and group.vocabulary not in domain_vocabularies:
            yield f"{group_path}.vocabulary", (f"{group.vocabulary} codes do not occur in {domain} records "
                                               f"(they hold {', '.join(domain_vocabularies)})")
            continue

        if domain == "measurement" and included:
            if group.unit is None:
                yield f"{group_path}.unit", "measurement codes need the unit they report in"
            elif known_units is not None and normalise_unit(group.unit) not in known_units:
                yield f"{group_path}.unit", f"unit {group.unit!r} is not listed in measurement.units"
        elif group.unit is not None:
            yield f"{group_path}.unit", "only included codes of measurement phenotypes have a unit"

        if group.match == "descendants" and group.vocabulary != "SNOMED":
            yield f"{group_path}.match", "only SNOMED codes can be matched with their descendants"
            continue
        for code_index, code in enumerate(group.codes):
            code_path = f"{group_path}.codes[{code_index}]"
            message = code_problem(group.vocabulary, code, group.match)
            if message:
                yield code_path, message
                continue
            key = (group.vocabulary, code, group.match)
            if key in first_seen:
                yield code_path, f"{group.vocabulary} {code} is listed twice (also at {first_seen[key]})"
            else:
                first_seen[key] = code_path


def _listed_units(definition: PhenotypeDefinition) -> set[str] | None:
    if definition.measurement is None:
        return None
    return {normalise_unit(u.unit) for u in definition.measurement.units}


def _measurement_problems(definition: PhenotypeDefinition) -> Iterator[tuple[str, str]]:
    measurement = definition.measurement
    assert measurement is not None
    factors: dict[str, float] = {}
    for index, conversion in enumerate(measurement.units):
        unit = normalise_unit(conversion.unit)
        if unit in factors:
            yield f"measurement.units[{index}].unit", f"unit {conversion.unit!r} is listed twice"
        factors[unit] = conversion.factor
    canonical = normalise_unit(measurement.canonical_unit)
    if factors.get(canonical) != 1:
        yield "measurement.canonical_unit", "the canonical unit must be listed in measurement.units with factor 1"
    for field, unit in (("measurement.plausible_range.unit", measurement.plausible_range.unit),
                        ("measurement.threshold.unit", measurement.threshold.unit)):
        if unit is not None and normalise_unit(unit) not in factors:
            yield field, f"unit {unit!r} is not listed in measurement.units"


# ---------------------------------------------------------------------------------------------------------------
# Across files
# ---------------------------------------------------------------------------------------------------------------

def _library_problems(loaded: list[tuple[PhenotypeDefinition, str, str]]) -> list[DefinitionProblem]:
    problems: list[DefinitionProblem] = []
    file_of: dict[str, str] = {}
    for definition, file_name, _ in loaded:
        if definition.id in file_of:
            problems.append(DefinitionProblem(file_name, "id", f"duplicate id {definition.id!r} "
                                                               f"(also defined in {file_of[definition.id]})"))
        else:
            file_of[definition.id] = file_name

    definitions = {d.id: d for d, _, _ in loaded}
    for definition, file_name, _ in loaded:
        for field, message in _reference_problems(definition, definitions):
            problems.append(DefinitionProblem(file_name, field, message))
    if not problems:
        problems += _plausible_range_problems(loaded)
        for definition, file_name, _ in loaded:
            cycle = _cycle_through(definition.id, definitions)
            if cycle:
                problems.append(DefinitionProblem(file_name, "rule", "phenotypes refer to each other in a cycle: "
                                                                     + " -> ".join(cycle)))
    return problems


def _plausible_range_problems(loaded: list[tuple[PhenotypeDefinition, str, str]]) -> list[DefinitionProblem]:
    """A measurement code has one plausible range: every phenotype that reads the code must state the same one (in
    the canonical unit), so the library holds one fact, which the staging checks read too."""
    problems: list[DefinitionProblem] = []
    first_of_code: dict[tuple[str, str], tuple[tuple[float, float, bool], str]] = {}
    for definition, file_name, _ in loaded:
        if definition.measurement is None:
            continue
        plausible = definition.measurement.canonical_plausible_range()
        for group in definition.codes:
            for code in group.codes:
                stated, where = first_of_code.setdefault((group.vocabulary, code), (plausible, definition.id))
                if stated != plausible:
                    problems.append(DefinitionProblem(
                        file_name, "measurement.plausible_range",
                        f"{group.vocabulary} {code} is plausible in {_range_text(plausible)} here but in "
                        f"{_range_text(stated)} in {where}; a code has one plausible range"))
    return problems


def _range_text(plausible: tuple[float, float, bool]) -> str:
    low, high, low_inclusive = plausible
    return f"{'[' if low_inclusive else '('}{low:g}, {high:g}]"


def _variant_problems(definition: PhenotypeDefinition,
                      definitions: dict[str, PhenotypeDefinition]) -> Iterator[tuple[str, str]]:
    """A variant names a parent of its own domain that is not itself a variant: a sensitivity analysis replaces the
    parent, a main phenotype, by it (pipelines/cohorts/study.py checks the replacement against this)."""
    parent = definition.variant_of
    if parent is None:
        return
    if parent == definition.id:
        yield "variant_of", "a phenotype cannot be a variant of itself"
    elif parent not in definitions:
        yield "variant_of", f"unknown phenotype {parent!r}"
    elif definitions[parent].domain != definition.domain:
        yield "variant_of", (f"{parent!r} is a {definitions[parent].domain} phenotype; a variant has its parent's "
                             f"domain ({definition.domain})")
    elif definitions[parent].variant_of is not None:
        yield "variant_of", (f"{parent!r} is itself a variant of {definitions[parent].variant_of!r}; name the main "
                             "phenotype")


def _reference_problems(definition: PhenotypeDefinition,
                        definitions: dict[str, PhenotypeDefinition]) -> Iterator[tuple[str, str]]:
    yield from _variant_problems(definition, definitions)
    rule = definition.rule
    if isinstance(rule, AllOfRule):
        lists = {"all_of": rule.all_of, "none_of": rule.none_of}
    else:
        lists = {"exclude_persons_with": rule.exclude_persons_with}
    seen: set[str] = set()
    for list_name, ids in lists.items():
        for index, referenced in enumerate(ids):
            field = f"rule.{list_name}[{index}]"
            if referenced not in definitions:
                yield field, f"unknown phenotype {referenced!r}"
            elif referenced == definition.id:
                yield field, "a phenotype cannot refer to itself"
            elif referenced in seen:
                yield field, f"phenotype {referenced!r} is named twice"
            elif list_name == "exclude_persons_with" and definitions[referenced].domain == "composite":
                yield field, (f"{referenced!r} is a composite; exclusions must name phenotypes computed from "
                              "records")
            seen.add(referenced)


def _cycle_through(start: str, definitions: dict[str, PhenotypeDefinition]) -> list[str] | None:
    """A chain of references leading from ``start`` back to itself, if there is one."""
    def walk(current: str, chain: list[str]) -> list[str] | None:
        for referenced in definitions[current].referenced_phenotypes:
            if referenced == start:
                return chain + [referenced]
            if referenced not in chain:
                found = walk(referenced, chain + [referenced])
                if found:
                    return found
        return None

    return walk(start, [start])


def _depths(definitions: dict[str, PhenotypeDefinition]) -> dict[str, int]:
    depths: dict[str, int] = {}

    def depth(phenotype_id: str) -> int:
        if phenotype_id not in depths:
            referenced = definitions[phenotype_id].referenced_phenotypes
            depths[phenotype_id] = 1 + max(depth(r) for r in referenced) if referenced else 0
        return depths[phenotype_id]

    for phenotype_id in definitions:
        depth(phenotype_id)
    return depths


# ---------------------------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------------------------

def _display_name(path: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(paths.REPO_ROOT).as_posix()
    except ValueError:
        return resolved.as_posix()


def _problem_field(location: tuple) -> str:
    """Where a pydantic error is in the phenotype file (the rule's type, the union's tag, is no field of it)."""
    return field_path(location, union_tags={"rule": RULE_TYPES}) or WHOLE_FILE


def _variant_message(error: dict) -> str:
    """A field of a complete definition in a variant file: the variant takes it from its parent."""
    if error["type"] == "extra_forbidden" and error["loc"] and error["loc"][0] in PhenotypeDefinition.model_fields:
        return ("a variant takes this from its parent (variant_of); state only the differences: add_codes, "
                "remove_codes, add_exclude_codes, remove_exclude_codes, rule or threshold (phenotypes/README.md)")
    return _pydantic_message(error)


def _pydantic_message(error: dict) -> str:
    message = error["msg"]
    # Messages of our own validators arrive as "Value error, <text>".
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if error["type"] == "extra_forbidden":
        message = "unknown field (not part of the phenotype format; see docs/phenotypes.md)"
    return message
