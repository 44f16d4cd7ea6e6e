"""The shape of the tree, checked from the source: layers import downwards only (config ← models ←
workers ← web), the core of a layer names no dialect, no dialect imports another, nothing imports in a
circle, and every dialect has the same files in every layer."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from config.settings import DIALECTS

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("config", "models", "workers", "web")
BELOW = {"config": set(), "models": {"config"}, "workers": {"config", "models"},
         "web": {"config", "models", "workers"}}
# The files each dialect has in each layer (more are allowed).
DIALECT_FILES = {
    "models": ("__init__.py", "tables.py", "store.py"),
    "workers": ("__init__.py", "jobs.py"),
    "web": ("__init__.py", "envelope.py", "auth.py", "views.py", "cli.py"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            if "migrations" in path.parts and path.name != "env.py":
                continue
            found[_module_name(path)] = path
    return found


SOURCES = _sources()


def _imports(module: str, path: Path) -> set[str]:
    """Every project module `module` imports, at the top or inside a function (a late import is still
    an import)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & set(SOURCES)
            # `from models import engine` imports the module models.engine (the package is only its way in)
            names.update(submodules or {base})
    # a module's own packages are always imported before it: not an edge of the design
    ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    return {name for name in names if name.split(".")[0] in LAYERS and _resolve(name)} - ancestors


def _resolve(name: str) -> str | None:
    while name:
        if name in SOURCES:
            return name
        name = name.rpartition(".")[0]
    return None


GRAPH = {module: {_resolve(name) for name in _imports(module, path)} - {module}
         for module, path in SOURCES.items()}


def _dialect_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in DIALECTS else None


def test_the_graph_is_not_empty():
    assert "web.app" in GRAPH and "models.engine" in GRAPH["workers.apply"]


def test_layers_import_only_downwards():
    wrong = sorted(f"{module} imports {target}" for module, targets in GRAPH.items() for target in targets
                   if target.split(".")[0] != module.split(".")[0]
                   and target.split(".")[0] not in BELOW[module.split(".")[0]])
    assert wrong == []


def test_the_core_of_a_layer_names_no_dialect():
    wrong = sorted(f"{module} imports {target}" for module, targets in GRAPH.items() if _dialect_of(module) is None
                   for target in targets if _dialect_of(target) is not None)
    assert wrong == []


def test_no_dialect_imports_another():
    wrong = sorted(f"{module} imports {target}" for module, targets in GRAPH.items()
                   for target in targets
                   if _dialect_of(module) and _dialect_of(target) and _dialect_of(target) != _dialect_of(module))
    assert wrong == []


def test_nothing_imports_in_a_circle():
    # Tarjan's strongly connected components: any component of more than one module is a loop.
    index, low, on_stack, stack, loops = {}, {}, set(), [], []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
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
                loops.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert loops == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_has_the_same_files(dialect):
    missing = [f"{layer}/{dialect}/{name}" for layer, names in DIALECT_FILES.items() for name in names
               if not (ROOT / layer / dialect / name).is_file()]
    assert missing == []
    for layer in ("models", "workers", "web"):
        assert (ROOT / "tests" / layer / dialect).is_dir(), f"tests/{layer}/{dialect} mirrors {layer}/{dialect}"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_plugs_in_the_same_way(dialect):
    import importlib
    models = importlib.import_module(f"models.{dialect}")
    assert isinstance(models.NAMESPACE, str) and models.JOB_KINDS
    assert callable(importlib.import_module(f"workers.{dialect}").register)
    assert callable(importlib.import_module(f"web.{dialect}").register)
    assert hasattr(importlib.import_module(f"web.{dialect}.cli"), "group")


def test_a_dialect_is_named_in_one_place():
    """Outside config/settings.py no source file spells the list of dialects."""
    spelled = []
    for module, path in SOURCES.items():
        if module == "config.settings":
            continue
        text = path.read_text()
        if all(f'"{d}"' in text for d in DIALECTS):
            spelled.append(module)
    assert spelled == []
