"""The dependency rules of docs/architecture.md#dependency-rules hold: no torch in the core, no import cycles,
detector modules import only the core, persistence sits below the registry."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "unseen"
HEAVY = ("torch", "transformers", "sentence_transformers", "onnxruntime")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, *, lazy: bool = False) -> set[str]:
    """unseen modules imported when ``name`` is imported (module-level statements), or anywhere in it (``lazy``:
    imports inside functions too, which run later but are still dependencies)."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree) if lazy else (s for n in tree.body for s in (n.body if isinstance(n, ast.If) else [n]))
    for stmt in nodes:
        if isinstance(stmt, ast.ImportFrom):
            base = package[: len(package) - stmt.level + 1] if stmt.level else []
            target = ".".join(base + ([stmt.module] if stmt.module else [])) if stmt.level else stmt.module
            for alias in stmt.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        elif isinstance(stmt, ast.Import):
            found.update(alias.name for alias in stmt.names)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}
#: Every dependency, including the imports inside functions (a lazy import hides a cycle, it does not remove it).
ALL = {name: _imports(name, lazy=True) for name in MODULES}


def test_the_import_graph_sees_the_package():
    assert {"unseen.base", "unseen.registry", "unseen.detectors.logits"} <= set(GRAPH)
    assert "unseen.base" in GRAPH["unseen.detectors.logits"]  # the parser resolves relative imports


@pytest.mark.parametrize("graph", [GRAPH, ALL], ids=["import-time", "including-lazy-imports"])
def test_no_import_cycles(graph):
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(dep) :] + [node, dep]))
            if dep not in state:
                visit(dep, path + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_detector_modules_import_only_the_core():
    allowed = {
        "unseen.base",
        "unseen._validation",
        "unseen._stats",
        "unseen.exceptions",
        "unseen.search",
        "unseen.detectors",
    }
    for name, deps in GRAPH.items():
        if name.startswith("unseen.detectors."):
            extra = {d for d in deps if d not in allowed and not d.startswith("unseen.detectors.")}
            assert not extra, f"{name} imports {sorted(extra)} at import time"


def test_persistence_is_below_the_registry():
    assert ALL["unseen.persistence"] <= {"unseen.exceptions", "unseen._version", "unseen._schema", "unseen._validation"}
    assert "unseen.registry" not in GRAPH["unseen.base"]


def test_the_core_never_imports_torch():
    code = (
        "import sys, unseen, unseen.metrics, unseen.decisions, unseen.explain, unseen.bench.selection\n"
        "unseen.list_detectors()\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
