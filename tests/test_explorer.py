"""The study explorer on a hand-made finished study: what it offers, the flips, the intervals, the widget."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from hils_kit.analyse.explorer import A_ONLY, B_ONLY, OUTCOMES, StudyExplorer, explore_study
from hils_kit.analyse.results import CellResults
from hils_kit.analyse.tables import accuracy_spread
from hils_kit.core.layout import MANIFEST, CellFiles, PrepareFiles, artefact_path
from hils_kit.core.progress import HEADLESS
from hils_kit.data.loaders import save_questions
from tests.conftest import make_questions

# right (1) or wrong (0) on questions q000..q005 of medqa; on lek each run answers the other way round
RUNS = {
    ("random", "none", 0): [1, 1, 0, 0, 1, 0],
    ("curriculum", "llm", 0): [1, 0, 1, 1, 1, 0],
    ("blocked", "none", 0): [0, 0, 0, 0, 1, 1],
}
DATASETS = ("medqa", "lek")


def make_study(root, runs=RUNS, tested=True):
    """A finished study folder as ``hils study`` leaves it, with only the files the explorer reads: the manifest,
    each cell's results, predictions and learning curve, the prepared test sets and notebook 04's comparisons."""
    cells = []
    for (strategy, scenario, replicate), right in runs.items():
        cell_id = f"tiny__{scenario}__{strategy}__holdout__r{replicate}"
        folder, files = root / "cells" / cell_id, CellFiles(root / "cells" / cell_id)
        cell = {"cell_id": cell_id, "model": "tiny", "strategy": strategy, "scenario": scenario, "part": "holdout"}
        cell |= {"replicate": replicate, "order_seed": replicate, "train_seed": 42}
        metrics = {}
        for k, dataset in enumerate(DATASETS):
            correct = [bool(c) != bool(k) for c in right]
            p_gold = [0.6 if c else 0.2 for c in correct]
            folder.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(
                {"id": [f"q{i:03d}" for i in range(len(right))], "category": "Anatomy", "answer": "A"}
                | {"pred": ["A" if c else "B" for c in correct], "correct": correct, "p_gold": p_gold}
                | {"gold_logprob": [math.log(p) for p in p_gold], "brier": [(1 - p) ** 2 for p in p_gold]}
            ).to_csv(files.predictions(dataset), index=False)
            metrics[dataset] = {"accuracy": sum(correct) / len(correct)}
        CellResults(cell, metrics).write(folder)
        files.train_dir.mkdir()
        seen = [0, 3, 6]
        pd.DataFrame({"step": seen, "examples_seen": seen, "gold_logprob": [-1.4, -1.3, -1.2 + replicate / 10]}).to_csv(
            files.curve, index=False
        )
        cells.append({"cell_id": cell_id, "status": "done"})
    (root / MANIFEST).write_text(json.dumps({"study": "hand", "analysis_dir": "analysis", "cells": cells}))
    for dataset in DATASETS:
        save_questions(make_questions(6), PrepareFiles(root / "prepare").test("holdout", dataset))
    if tested:  # notebook 04's test of Curriculum against Random Shuffle on medqa
        row = {"scenario": "llm", "model": "tiny", "dataset": "medqa", "strategy": "curriculum", "metric": "accuracy"}
        row |= {
            "claim": "strategies",
            "estimate": 16.67,
            "ci_low": 5.0,
            "ci_high": 28.0,
            "p_value": 0.03,
            "also_in": "",
        }
        (root / "analysis").mkdir()
        pd.DataFrame([row]).to_csv(artefact_path(root / "analysis", "comparisons"), index=False)
    return root


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path / "runs" / "hand")


@pytest.fixture
def interactive(monkeypatch):
    monkeypatch.delenv(HEADLESS, raising=False)


def shown(widget) -> str:
    """The HTML the explorer's Output area shows."""
    return "".join(output["data"].get("text/html", "") for output in widget.children[2].outputs)


def test_the_options_list_what_the_folder_holds(study):
    assert StudyExplorer(study).options == {
        "scenario": ["llm"],
        "dataset": ["medqa", "lek"],
        "metric": ["accuracy", "gold log-prob", "Brier"],
        "strategy": ["random", "curriculum", "blocked"],
    }


def test_flips_count_each_direction_and_sum_to_the_pairs(study):
    explorer = StudyExplorer(study)
    flips = explorer.flips("llm", "medqa", "curriculum", "random")
    assert flips.counts.to_dict() == {A_ONLY: 2, B_ONLY: 1, "both right": 2, "both wrong": 1}
    assert flips.counts.sum() == 6 and len(flips.table) == 3 and "same model and replicate index" in flips.paired
    by_outcome = flips.table.groupby("outcome", observed=True)["id"].apply(list).to_dict()
    assert by_outcome == {A_ONLY: ["q002", "q003"], B_ONLY: ["q001"]}
    assert flips.table["text"].iloc[0] == make_questions(6)["question"].iloc[2] and set(flips.table["category"]) == {
        "Surgery",
        "Anatomy",
        "Pharmacology",
    }
    reverse = explorer.flips("llm", "medqa", "random", "curriculum").counts  # B − A: the two directions swap
    assert (reverse[A_ONLY], reverse[B_ONLY]) == (flips.counts[B_ONLY], flips.counts[A_ONLY])
    lek = explorer.flips("llm", "lek", "curriculum", "random").counts  # every answer the other way round
    assert lek.to_dict() == {A_ONLY: 1, B_ONLY: 2, "both right": 1, "both wrong": 2}


def test_strategies_with_different_runs_are_compared_by_majority(tmp_path):
    runs = RUNS | {("curriculum", "llm", 1): [1, 0, 0, 1, 0, 0]}  # curriculum right in 2, 0, 1, 2, 1, 0 of 2 runs
    flips = StudyExplorer(make_study(tmp_path / "study", runs)).flips("llm", "medqa", "curriculum", "random")
    assert "more than half of its runs" in flips.paired and list(flips.counts.index) == list(OUTCOMES)
    assert flips.counts.to_dict() == {A_ONLY: 1, B_ONLY: 2, "both right": 1, "both wrong": 2}
    assert flips.table.set_index("id")["a_correct"].to_dict() == {"q003": 1.0, "q001": 0.0, "q004": 0.5}


def test_intervals_agree_with_the_kit_and_the_study_test_reads_a_minus_b(study):
    explorer = StudyExplorer(study)
    intervals = explorer.intervals("llm", "medqa", "accuracy", "curriculum", "random").set_index("strategy")
    spread = accuracy_spread(explorer.long, "llm").xs(("tiny", "medqa"), level=("model", "dataset"))
    for column in ("accuracy", "ci_low", "ci_high"):
        assert intervals[column].to_dict() == pytest.approx(spread.loc[intervals.index, column].to_dict())
    difference = explorer.difference("llm", "medqa", "accuracy", "curriculum", "random").iloc[0]
    assert difference["estimate"] == pytest.approx(100 / 6) and difference["ci_low"] < 100 / 6 < difference["ci_high"]
    test = explorer.study_test("llm", "medqa", "accuracy", "random", "curriculum").iloc[0]
    assert (test["comparison"], test["estimate"], test["ci_low"], test["ci_high"], test["p_value"]) == (
        "Random Shuffle − Curriculum",
        -16.67,
        -28.0,
        -5.0,
        0.03,
    )
    assert explorer.study_test("llm", "medqa", "accuracy", "curriculum", "blocked").empty  # not tested by the study
    logprob = explorer.intervals("llm", "medqa", "gold log-prob", "curriculum", "random")
    assert logprob["gold log-prob"].iloc[0] == pytest.approx((4 * math.log(0.6) + 2 * math.log(0.2)) / 6)


def test_the_curves_figure_draws_both_strategies(study):
    figure = StudyExplorer(study).curves_figure("llm", "curriculum", "random")
    labels = {text.get_text() for text in figure.axes[0].get_legend().get_texts()}
    assert labels == {"Curriculum", "Random Shuffle"}


def test_changing_a_dropdown_redraws_the_output(study, interactive):
    widget = explore_study(study)
    (scenario, dataset, metric), (a, b) = widget.children[0].children, widget.children[1].children
    assert (scenario.value, dataset.value, metric.value, a.value, b.value) == (
        "llm",
        "medqa",
        "accuracy",
        "curriculum",
        "random",
    )
    first = shown(widget)
    assert (
        "A = Curriculum, B = Random Shuffle; medqa" in first
        and "q002" in first
        and "image/png" in str([o["data"].keys() for o in widget.children[2].outputs])
    )
    dataset.value = "lek"
    assert "lek, llm labels" in shown(widget) and shown(widget) != first
    metric.value = "gold log-prob"
    assert "gold log-prob with 95% intervals (unit: nats)" in shown(widget)
    a.value = "random"
    assert "choose two different strategies" in shown(widget)


def test_a_folder_that_is_not_a_finished_study_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"nowhere is not a finished study: it has no manifest\.json"):
        explore_study(tmp_path / "nowhere")
    started = tmp_path / "started"
    (started / "cells" / "c1").mkdir(parents=True)
    (started / MANIFEST).write_text(json.dumps({"cells": [{"cell_id": "c1", "status": "running"}]}))
    with pytest.raises(ValueError, match=r"started is not a finished study: no results\.json"):
        StudyExplorer(started)


def test_headless_shows_a_static_note(study, monkeypatch):
    monkeypatch.setenv(HEADLESS, "1")
    assert "open it in JupyterLab" in explore_study(study).data
