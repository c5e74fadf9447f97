"""The shape of the package: no import cycle (function-level imports count), thin notebooks."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from hils_kit.core.paths import NOTEBOOKS_DIR, PROJ_ROOT

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


# the subpackages from the bottom up: a module imports only modules of its own layer or a lower one
LAYERS = ("core", "stats", "data", "models", "score", "labels", "order", "train", "analyse", "stages", "study", "cli")


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) >= 2 and parts[1] in LAYERS else -1  # hils_kit (its version): below all


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_a_lower_layer_never_imports_a_higher_one():
    graph = import_graph()
    assert {name.split(".")[1] for name in graph if name.count(".") >= 2} == set(LAYERS)
    upward = [f"{m} -> {d}" for m, deps in graph.items() for d in deps if layer(d) > layer(m)]
    assert not upward, upward


def test_each_subpackage_says_what_it_owns_and_no_module_is_long():
    for name in LAYERS:
        init = PACKAGE / name / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "may import" in doc.lower(), f"{init}: a docstring saying what it owns and what it may import"
    long = {str(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long, long


def test_notebook_parameters_cells_are_generated_from_the_stage_dataclasses():
    from hils_kit.stages.notebooks import stale_parameter_cells

    assert stale_parameter_cells() == [], "run `make notebook-params`"


def test_run_file_names_and_strategy_names_live_in_one_place():
    """Every file name of a study's run tree is spelled in hils_kit.core.layout only; strategy keys are compared
    in the registry only (the trainer's sampler is also called "random")."""
    from hils_kit.core import layout
    from hils_kit.order.registry import STRATEGIES

    names = {
        value
        for key, value in vars(layout).items()
        if not key.startswith("__") and isinstance(value, str) and ("." in value or value.isupper())
    } | {"results.json", "metrics.json", "labels.csv", "overlap.json", "split.json", "train_summary.json"}
    spelled, compared = [], []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "layout.py" or path.parent.name == "cli":
            continue  # the command line's help texts name the files a command writes
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names and not isinstance(node.value, bool):
                spelled.append(f"{path.name}:{node.lineno} {node.value}")
            if isinstance(node, ast.Compare) and path.name not in ("registry.py", "training.py"):
                for side in (node.left, *node.comparators):
                    for item in side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]:
                        if isinstance(item, ast.Constant) and item.value in STRATEGIES:
                            compared.append(f"{path.name}:{node.lineno} {item.value}")
    assert not spelled and not compared, (spelled, compared)


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
