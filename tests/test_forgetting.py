"""Per-question learning and forgetting: the probe's trajectories, its time budget, and the analysis of events."""

from __future__ import annotations

import pandas as pd
import pytest

from hils_kit.analyse.forgetting import cell_forgetting, forgetting_by_strategy, question_events, retention
from hils_kit.core.layout import TRAJECTORIES_FILE
from hils_kit.train.presets import make_config
from hils_kit.train.probe import ProbeCallback, probe_callbacks, probe_record, save_curve
from hils_kit.train.training import train
from tests.conftest import make_questions


def trajectory(rights: dict[str, list[int]], logprobs: dict[str, list[float]], difficulty: dict[str, float]):
    steps = range(len(next(iter(rights.values()))))
    return pd.DataFrame(
        [
            {
                "question": q,
                "set": "train",
                "step": 10 * k,
                "gold_logprob": logprobs[q][k],
                "correct": bool(rights[q][k]),
                "difficulty": difficulty[q],
            }
            for q in rights
            for k in steps
        ]
    )


def test_events_retention_and_easy_first_on_a_known_trajectory():
    rights = {"a": [0, 1, 1, 0, 0], "b": [0, 0, 1, 1, 1], "c": [0, 0, 0, 1, 0], "d": [0, 1, 0, 1, 1]}
    logprobs = {
        "a": [-2, -0.5, -0.6, -1.5, -1.8],  # fed first, learned, then forgotten
        "b": [-2, -1.5, -0.5, -0.4, -0.4],
        "c": [-2, -2, -1.5, -0.7, -1.2],
        "d": [-2, -0.4, -1.0, -0.5, -0.3],
    }
    t = trajectory(rights, logprobs, {"a": 0.1, "b": 0.4, "c": 0.9, "d": 0.2})
    fed = pd.DataFrame({"id": ["a", "d", "b", "c", "x"], "step": [5, 8, 18, 35, 40]})  # x: not in the probe
    events = question_events(t)
    assert events["learning_events"].to_dict() == {"a": 1, "b": 1, "c": 1, "d": 2}
    assert events["forgetting_events"].to_dict() == {"a": 1, "b": 0, "c": 1, "d": 1}
    assert events["first_right_step"].to_dict() == {"a": 10, "b": 20, "c": 30, "d": 10}
    kept = retention(t, fed)
    assert kept.loc["a", "after_fed"] == -0.5 and kept.loc["a", "drop"] == pytest.approx(1.3)
    assert kept.loc["c", "fed_step"] == 35 and kept.loc["c", "after_fed"] == -1.2  # first scoring at or after 35
    figures = cell_forgetting(t, fed)
    assert figures["questions"] == 4 and figures["ever_forgotten"] == 0.75
    assert figures["early_retention_drop"] == pytest.approx((1.3 + -0.1) / 2)  # a and d were fed by step 40 / 3
    assert figures["late_retention_drop"] == pytest.approx(0.0)  # c: fed at 35, its first scoring after is the end
    assert figures["easy_first_r"] > 0.7  # the easy ones were right first
    per_cell = pd.DataFrame([{"cell_id": "x", "strategy": "Blocked", **figures}] * 2)
    table = forgetting_by_strategy(per_cell)
    assert table.loc["Blocked", "cells"] == 2 and table.loc["Blocked", "ever_forgotten"] == 0.75


def test_the_probe_scores_training_and_held_out_questions_within_its_share(tmp_path):
    table = make_questions(24)
    config = make_config("tiny", {"per_device_train_batch_size": 2, "bf16": False})
    generous = probe_callbacks({"t": make_questions(8, seed=5)}, 4, every=2, train_table=table, n_train=6, max_share=99)
    train(table, model="tiny", config=config, out_dir=tmp_path / "a", callbacks=generous)
    save_curve(generous, tmp_path / "a")
    t = pd.read_csv(tmp_path / "a" / TRAJECTORIES_FILE, dtype={"question": str})
    steps = sorted(t["step"].unique())
    assert steps == list(range(0, 13, 2)) and len(t) == len(steps) * 10  # 4 held out + 6 training, every 2 steps
    assert t.groupby("set")["question"].nunique().to_dict() == {"held_out": 4, "train": 6}
    assert set(t.loc[t["set"] == "train", "question"]) <= set(table["id"]) and t["difficulty"].notna().all()
    assert generous[0].record()["skipped"] == 0

    thrifty = ProbeCallback(make_questions(8, seed=5), every=1, train_probe=table.head(6), max_share=0.01)
    train(table, model="tiny", config=config, out_dir=tmp_path / "b", callbacks=[thrifty])
    record = probe_record([thrifty])
    steps = sorted(thrifty.trajectories["step"].unique())
    assert steps[0] == 0 and steps[-1] == 12 and record["skipped"] > 0  # first and last scored, others skipped
    assert record["scorings"] + record["skipped"] == 13 and record["seconds"] > 0
    assert record["train_questions"] == 6 and record["held_out_questions"] == 8
    with pytest.raises(ValueError, match="max_share"):
        ProbeCallback(table, max_share=0)
    assert probe_record([]) is None
