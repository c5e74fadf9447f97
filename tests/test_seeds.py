"""Replicates and crossed seeds: the runs of a cell, their ids and seeds, the one-order-seed rule, the analysis."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hils_kit.analyse.collect import collect_results
from hils_kit.order.orderings import order_questions
from hils_kit.order.registry import STRATEGIES, STRATEGY
from hils_kit.study.cells import cell_parameters, expand_cells, replicate_seeds, seed_plan
from hils_kit.study.config import _NAME, study_from_dict
from hils_kit.study.loading import load_study
from hils_kit.study.runner import run_study

FIXTURES = Path(__file__).parent / "notebooks"
CROSSED = {"order_seeds": 3, "train_seeds": 2}


def study(replicates, **more):
    base = {"models": ["tiny"], "preset": "tiny", "strategies": ["random", "curriculum"], "scenarios": ["llm"]}
    return study_from_dict({**base, "train": {"seed": 7}, "replicates": replicates, **more})


def runs(config, strategy):
    """``{cell id: (replicate, order_seed, train_seed, variant)}`` of a strategy's cells."""
    return {
        c.id: (c.replicate, *(replicate_seeds(config, c)[k] for k in ("order_seed", "train_seed", "variant")))
        for c in expand_cells(config)
        if c.strategy == strategy
    }


def test_an_integer_keeps_its_runs_ids_and_seeds():
    config = study(3)
    assert runs(config, "curriculum") == {
        f"tiny__llm__curriculum__holdout__r{r}": (r, r, 7 + r, "strict") for r in range(3)
    }
    assert all(c.order_index == c.train_index == c.replicate and not c.crossed for c in expand_cells(config))
    assert seed_plan(config) == []


def test_crossed_seeds_run_every_order_seed_with_every_training_seed(tmp_path):
    config = study(CROSSED)
    expected = {
        f"tiny__none__random__holdout__o{i}-t{j}": (2 * i + j, i, 7 + j, "strict") for i in range(3) for j in range(2)
    }
    assert runs(config, "random") == expected
    # a strict curriculum breaks ties with the seed: it runs every order seed too
    assert len(runs(config, "curriculum")) == 6
    cells = expand_cells(config)
    assert all(_NAME.match(c.id) for c in cells) and len({c.id for c in cells}) == len(cells)
    assert [c.id for c in cells if fnmatch.fnmatchcase(c.id, "*random*__o1-*")] == [
        "tiny__none__random__holdout__o1-t0",
        "tiny__none__random__holdout__o1-t1",
    ]
    params = cell_parameters(config, cells[3], tmp_path / "prepare", tmp_path / "cell")
    assert (params.cell_id, params.replicate, params.order_seed, params.train_seed) == (cells[3].id, 3, 1, 8)
    assert seed_plan(config)[:2] == [
        "runs per cell: 3 order seeds × 2 training seeds",
        "curriculum (strict): the order seed only breaks ties between equal difficulties",
    ]


def test_variant_paper_takes_the_authors_order_seeds_for_the_order_index():
    config = study({"order_seeds": 5, "train_seeds": 2}, variant="paper")
    curriculum = runs(config, "curriculum")
    assert curriculum["tiny__llm__curriculum__holdout__o0-t1"] == (1, 0, 8, "strict")
    assert curriculum["tiny__llm__curriculum__holdout__o3-t0"] == (6, 456, 7, "tiers")
    assert sorted({seeds[1] for seeds in curriculum.values()}) == [0, 42, 123, 456, 789]
    assert {seeds[3] for seeds in runs(config, "random").values()} == {"strict"}  # no difficulty: no tiers


@pytest.mark.parametrize("variant", ["strict", "tiers"])
def test_the_registry_says_which_orders_the_seed_changes(variant):
    # three difficulty levels, two categories: ties everywhere, as 0/1 human or few-model LLM labels give
    table = pd.DataFrame(
        {"id": [f"q{i}" for i in range(12)], "category": list("ab" * 6), "difficulty": [0.1, 0.5, 0.9] * 4}
    )
    for strategy in STRATEGIES:
        orders = [order_questions(table, strategy, variant=variant, seed=s)["id"].tolist() for s in (0, 1)]
        assert (orders[0] != orders[1]) == STRATEGY[strategy].seeded, strategy
    # without ties no seed changes a strict curriculum; the kit cannot know the labels when it plans
    untied = table.assign(difficulty=np.linspace(0, 1, 12))
    assert len({tuple(order_questions(untied, "curriculum", seed=s)["id"]) for s in range(4)}) == 1


def test_an_order_no_seed_can_change_runs_one_order_seed_and_the_plan_says_so(monkeypatch, tmp_path):
    monkeypatch.setitem(STRATEGY, "curriculum", dataclasses.replace(STRATEGY["curriculum"], seeded=False))
    config = study(CROSSED)
    assert runs(config, "curriculum") == {
        "tiny__llm__curriculum__holdout__o0-t0": (0, 0, 7, "strict"),
        "tiny__llm__curriculum__holdout__o0-t1": (1, 0, 8, "strict"),
    }
    assert len(runs(config, "random")) == 6
    line = "curriculum (strict): its order does not depend on the seed, so 1 order seed × 2 training seeds"
    assert seed_plan(config)[1:] == [line]
    lines = []
    run_study(config, out=tmp_path, notebooks=FIXTURES, dry_run=True, say=lines.append)
    assert f"  {line}" in lines and "  to run       tiny__llm__curriculum__holdout__o0-t1" in lines
    # where the seed still changes what is trained on, every order seed runs
    assert len(runs(study(CROSSED, balance_letters=True), "curriculum")) == 6
    assert len(runs(study(CROSSED, variant="paper"), "curriculum")) == 6  # seeds 1-4 are tiered orders
    assert len(runs(study(3), "curriculum")) == 3  # an integer keeps its meaning


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "{order_seeds: 2, train_seed: 2}",
            r"'replicates\.train_seed' is not a key \(known: order_seeds, train_seeds\)",
        ),
        ("{order_seeds: 0, train_seeds: 2}", r"'replicates\.order_seeds' should be a positive integer, got 0"),
        ("{order_seeds: 2, train_seeds: -1}", r"'replicates\.train_seeds' should be a positive integer, got -1"),
        ("{order_seeds: two, train_seeds: 2}", r"'replicates\.order_seeds' should be a positive integer, got 'two'"),
        ("{order_seeds: 1.5, train_seeds: 2}", r"'replicates\.order_seeds' should be a positive integer, got 1\.5"),
        ("{order_seeds: true, train_seeds: 2}", r"'replicates\.order_seeds' should be a positive integer, got True"),
        ("{order_seeds: 2}", r"'replicates\.train_seeds' is missing"),
        ("three", r"'replicates' should be an integer or a mapping, got str 'three'"),
        ("0", r"'replicates' should be at least 1"),
    ],
)
def test_bad_replicates_are_refused_naming_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "demo.yaml"
    path.write_text(f"models: [tiny]\nreplicates: {text}\n")
    with pytest.raises(ValueError, match=r"demo\.yaml: .*" + message):
        load_study(path)


def test_variant_paper_allows_as_many_order_seeds_as_the_authors_ran():
    with pytest.raises(ValueError, match=r"'variant' paper defines 5 ordering seeds; 'replicates\.order_seeds' is 6"):
        study_from_dict({"variant": "paper", "replicates": {"order_seeds": 6, "train_seeds": 1}}, source="s.yaml")
    assert len(expand_cells(study({"order_seeds": 1, "train_seeds": 9}, variant="paper"))) == 2 * 9


def test_the_results_frame_has_both_seeds_also_in_pooled_k_fold_rows(tmp_path):
    for part, ids in (("fold0", ["q0", "q1"]), ("fold1", ["q2", "q3"])):
        for j in range(2):
            cell_id = f"tiny__none__random__{part}__o0-t{j}"
            folder = tmp_path / "cells" / cell_id
            folder.mkdir(parents=True)
            predictions = {"id": ids, "category": "c", "answer": "A", "pred": ["A", "B"], "correct": [True, False]}
            pd.DataFrame({**predictions, "p_A": [0.9, 0.1], "p_B": [0.1, 0.9]}).to_csv(
                folder / "predictions_lek.csv", index=False
            )
            cell = {"cell_id": cell_id, "model": "tiny", "strategy": "random", "scenario": "none", "part": part}
            cell.update(variant="strict", replicate=j, order_seed=0, train_seed=42 + j)
            metrics = {"lek": {"n": 2, "accuracy": 0.5}}
            (folder / "results.json").write_text(json.dumps({"cell": cell, "metrics": metrics, "train": {}}))
    long = collect_results(tmp_path)
    pooled = long[long["level"] == "pooled"].sort_values("replicate")
    assert pooled[["order_seed", "train_seed"]].values.tolist() == [[0, 42], [0, 43]]
    assert long["train_seed"].notna().all() and long["order_seed"].notna().all()
