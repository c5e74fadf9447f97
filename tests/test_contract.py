"""The contract between study, notebooks and analysis: one dataclass per notebook, mirrored by its parameters cell."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import papermill
import pytest

from hils_kit.analyse.results import CellResults
from hils_kit.core.params import convert, from_namespace, type_text
from hils_kit.core.paths import NOTEBOOKS_DIR
from hils_kit.labels.scenarios import SCENARIO
from hils_kit.order.registry import STRATEGIES, STRATEGY, strategy_scenarios
from hils_kit.stages.cell import CellParams
from hils_kit.stages.notebooks import NOTEBOOK_PARAMS

FIXTURES = Path(__file__).parent / "notebooks"


@pytest.mark.parametrize("folder", [NOTEBOOKS_DIR, FIXTURES], ids=["notebooks", "fixtures"])
@pytest.mark.parametrize("notebook", list(NOTEBOOK_PARAMS))
def test_help_notebook_lists_exactly_the_dataclass_fields_types_and_defaults(folder, notebook):
    declared = papermill.inspect_notebook(folder / f"{notebook}.ipynb")
    fields = dataclasses.fields(NOTEBOOK_PARAMS[notebook])
    assert list(declared) == [f.name for f in fields]
    for f in fields:
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert declared[f.name]["inferred_type_name"] == type_text(f.type), f.name
        assert ast.literal_eval(declared[f.name]["default"]) == default, f.name
        assert declared[f.name]["help"] == f.metadata["help"], f.name


def test_a_notebook_validates_its_globals_through_its_dataclass():
    params = from_namespace(
        CellParams, {"strategy": "blocked", "rounds": "4", "category_order": ["a", "b"], "unrelated": object()}
    )
    assert (params.strategy, params.rounds, params.category_order) == ("blocked", 4, ["a", "b"])
    with pytest.raises(ValueError, match=r"CellParams: 'strategy' 'blokced' should be one of random"):
        from_namespace(CellParams, {"strategy": "blokced"})
    with pytest.raises(ValueError, match=r"CellParams: 'rounds' should be an integer, got str 'three'"):
        from_namespace(CellParams, {"rounds": "three"})
    with pytest.raises(ValueError, match=r"'train_seed' should be a finite number, got nan"):
        from_namespace(CellParams, {"train_seed": float("nan")})


@pytest.mark.parametrize(
    "value, hint, expected",
    [
        ("1e-4", float, 1e-4),
        (3, float, 3.0),
        ("8", int, 8),
        ("true", bool, True),
        ("False", bool, False),
        ("null", bool | None, None),
        (None, str | None, None),
        (["a"], list[str], ["a"]),
    ],
)
def test_one_converter_for_yaml_papermill_and_command_line(value, hint, expected):
    assert convert(value, hint, "x") == expected


@pytest.mark.parametrize(
    "value, hint", [("yes", bool), ("8.5", int), (1, bool), ("inf", float), (2.5, int), ("x", float), (True, int)]
)
def test_the_converter_refuses_ambiguous_values(value, hint):
    with pytest.raises(TypeError, match="'x' should be"):
        convert(value, hint, "x")


def test_vocabulary_is_defined_once():
    assert STRATEGIES[0] == "random" and STRATEGY["interleaved_curriculum"].name == "Interleaved Curriculum"
    assert SCENARIO["human"].difficulty_column == "difficulty_human" and SCENARIO["none"].difficulty_column is None
    assert strategy_scenarios("curriculum", ["human", "llm"]) == ["human", "llm"]
    assert strategy_scenarios("random", ["human", "llm_clusters"]) == ["none"]


def test_cell_results_round_trip_and_refuse_malformed_files(tmp_path):
    results = CellResults(
        {"cell_id": "c", "model": "m", "strategy": "random", "scenario": "none", "replicate": 0},
        {"medqa": {"accuracy": 0.25}},
        {"audit_ok": True},
    )
    path = results.write(tmp_path)
    assert CellResults.read(path) == results
    path.write_text('{"cell": {"cell_id": "c"}, "metrics": {"x": {"accuracy": 0.2}}}')
    with pytest.raises(ValueError, match=r"results\.json: field 'cell\.model' is missing"):
        CellResults.read(path)
