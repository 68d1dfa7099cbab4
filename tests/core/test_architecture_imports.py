"""Imports point one way: the layers of docs/architecture.md, checked on the source of pipelines/ with the standard
library's ast (every import counts: module level, inside functions and under TYPE_CHECKING).

- No import cycle between modules.
- A module imports only modules of its own unit or of a lower layer: shared core at the bottom, the ingest, the
  phenotype library, the other domains (phenotypes -> cohorts -> statistics, quality beside statistics), then
  publish, run configuration, network, jobs, operations, definitions and the command line.
- Production code imports neither the synthetic generator nor test support (they sit outside the layers and may
  import anything).
- A published table's name is spelled once in Python, in pipelines/tables.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from pipelines import tables

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"

# Bottom to top. Each layer holds units (a module, or a package with everything under it); a module may import
# its own unit and any unit of a lower layer. The same table is drawn in docs/architecture.md.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shared core", ("pipelines paths sql_quoting sql engine extract_spec vocabularies tables asset_keys disclosure "
                     "run_failures warehouse field_paths",)),
    ("ingest", ("ingest",)),
    # The checked YAML definitions: what every stage after the ingest asks for phenotype ids, domains, codes and
    # ranges. Above the ingest, which never reads them (the code location passes what it reports from them), so
    # the phenotype stage may use the ingest: core <- ingest <- phenotypes.
    ("phenotype library", ("phenotypes.loader phenotypes.schema phenotypes.errors",)),
    ("phenotypes", ("phenotypes",)),
    ("cohorts", ("cohorts",)),
    ("statistics, quality", ("statistics", "quality")),
    ("publish", ("publish data_dictionary",)),
    ("run configuration", ("operations.run_config",)),
    ("network", ("network",)),
    ("jobs", ("jobs",)),
    ("operations", ("operations",)),
    ("definitions", ("definitions",)),
    ("command line", ("run", "generated_docs", "results_browser")),
    ("generated files", ("generate",)),
)
# Outside the layers: the extract generator and test support. Production code must not import them.
OUTSIDE = ("synthetic", "testing")
# Dependencies the layers allow but the design rules out: the network pools published tables and needs none of
# the study graph's assets.
FORBIDDEN = (("network", "statistics.assets"),)


def _qualified(name: str) -> str:
    return "pipelines" if name == "pipelines" else f"pipelines.{name}"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PIPELINES.rglob("*.py"):
        parts = list(path.relative_to(PIPELINES.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _known(name: str) -> str | None:
    """The module `name` is, or the nearest package holding it (`from pkg.mod import Class`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {_known(alias.name) for alias in node.names if alias.name.split(".")[0] == "pipelines"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "pipelines":
                continue
            for alias in node.names:  # `from pipelines import tables` imports the module pipelines.tables
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in MODULES else _known(source))
    found.discard(None)
    found.discard(module)
    return found  # type: ignore[return-value]


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _in(module: str, unit: str) -> bool:
    return module == unit or (unit != "pipelines" and module.startswith(unit + "."))


def _unit(module: str) -> tuple[int, str] | None:
    """(layer index, unit) of a production module: the most specific unit naming it; None outside the layers."""
    if any(_in(module, _qualified(name)) for name in OUTSIDE):
        return None
    best = None
    for index, (_, units) in enumerate(LAYERS):
        for unit in units:
            for name in map(_qualified, unit.split()):
                if _in(module, name) and (best is None or len(name) > len(best[2])):
                    best = (index, unit, name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)"
    return best[0], best[1]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_walk_sees_imports_inside_functions():
    # run.run_study imports the code location inside the function (the CLI is above it); the walk must see it.
    assert "pipelines.definitions" in GRAPH["pipelines.run"]
    assert "pipelines.tables" in GRAPH["pipelines.run"]  # `from pipelines import tables as table_names`


def test_no_import_cycle():
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_top_level_units():
    """Cycles hidden across packages (jobs <-> network, cohorts.settings <-> operations.run_config) count too."""
    def top(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2])

    packages: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        if _unit(module) is None:
            continue
        packages.setdefault(top(module), set()).update(top(t) for t in targets if top(t) != top(module))
    for targets in packages.values():
        targets &= set(packages)
    assert _cycles(packages) == []


def test_every_module_is_placed():
    for module in MODULES:
        _unit(module)


def test_no_layer_imports_a_higher_one():
    wrong = []
    for module, targets in sorted(GRAPH.items()):
        placed = _unit(module)
        if placed is None:
            continue
        for target in sorted(targets):
            target_placed = _unit(target)
            if target_placed is None:
                wrong.append(f"{module} imports {target}, which is not production code")
            elif target_placed[1] != placed[1] and target_placed[0] >= placed[0]:
                wrong.append(f"{module} ({LAYERS[placed[0]][0]}) imports {target} ({LAYERS[target_placed[0]][0]})")
    assert wrong == []


def test_production_code_imports_no_tests():
    wrong = [module for module, path in MODULES.items() if _unit(module) is not None
             and re.search(r"^\s*(from|import) tests\b", path.read_text(), re.MULTILINE)]
    assert wrong == []


def test_forbidden_dependencies():
    wrong = [(module, target) for module, targets in GRAPH.items() for target in targets
             for importer, imported in FORBIDDEN
             if _in(module, _qualified(importer)) and _in(target, _qualified(imported))]
    assert wrong == []


def test_the_layer_rule_catches_an_upward_import():
    """The check itself: the warehouse importing the run configuration (as it once did) is refused."""
    assert _unit("pipelines.warehouse")[0] < _unit("pipelines.operations.run_config")[0]
    assert _unit("pipelines.cohorts.settings")[0] < _unit("pipelines.operations.run_config")[0]
    assert _unit("pipelines.operations.sensors") is not None and _unit("pipelines.synthetic.generator") is None
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


TABLE_NAME = re.compile(r"^(ingest|vocabulary|phenotype|cohort|results|dq)\.[a-z0-9_]+$")


def test_table_names_are_spelled_once_in_python():
    """A string that is exactly a published table's name appears only in pipelines/tables.py (SQL text and prose
    may name tables; a name used as a value comes from the one module)."""
    spelled = []
    for module, path in MODULES.items():
        if module == "pipelines.tables" or _unit(module) is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and TABLE_NAME.match(node.value):
                spelled.append(f"{path.relative_to(PIPELINES.parent)}:{node.lineno} {node.value}")
    assert spelled == []


def test_study_population_columns_are_the_documented_ones():
    dictionary = yaml.safe_load((PIPELINES / "data_dictionary.yaml").read_text())
    [documented] = [entry for name, entry in dictionary["tables"].items() if name == tables.STUDY_POPULATION]
    fixed = [column for column in documented["columns"] if "<" not in column]
    assert tuple(fixed) == tables.STUDY_POPULATION_COLUMNS
    select = (PIPELINES.parent / "sql" / "cohorts" / "study_population.sql").read_text()
    selected = re.findall(r"(?:AS )?(\w+),?\n", select.split("SELECT", 1)[1].split("FROM", 1)[0])
    assert tuple(selected) == tables.STUDY_POPULATION_COLUMNS
