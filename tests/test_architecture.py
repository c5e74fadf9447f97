"""The shape of the package: no import cycle (function-level imports count), thin notebooks."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from hils_kit.paths import NOTEBOOKS_DIR, PROJ_ROOT

PACKAGE = PROJ_ROOT / "hils_kit"
CONTROL_FLOW = (
    ast.For,
    ast.While,
    ast.If,
    ast.IfExp,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.Try,
    ast.With,
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJ_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def kit_imports(path: Path) -> set[str]:
    """Every hils_kit module ``path`` imports, at any depth (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hils_kit")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hils_kit"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in kit_imports(path) if m in modules and m != name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "hils_kit.contract" in graph and graph["hils_kit.contract"] <= {"hils_kit.paths"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_are_thin_and_committed_without_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert not any(cell.outputs or cell.execution_count for cell in code)
    lines = set()
    for cell in code:
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, CONTROL_FLOW):
                lines.add((cell.id, node.lineno))
    assert len(lines) <= 10, f"{notebook.name}: {len(lines)} lines of control flow; move logic into hils_kit"


def notebook_imports(notebook: Path) -> list[str]:
    """The ``hils_kit`` modules a notebook's code cells import."""
    code = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    return sorted(
        node.module
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hils_kit")
    )


@pytest.mark.parametrize("notebook", ["01_data_exploration", "04_analysis"])
def test_notebooks_that_load_no_model_import_no_model_library(notebook):
    """01 and 04 start in a few seconds: no torch, transformers or peft behind their imports (about 10 s each)."""
    import subprocess
    import sys

    modules = notebook_imports(NOTEBOOKS_DIR / f"{notebook}.ipynb")
    probe = f"import sys; import {', '.join(modules)}; print(sorted({{'torch', 'transformers', 'peft'}} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert modules and loaded == "[]"
