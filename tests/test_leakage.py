"""The leakage guard: test questions that also appear among the training questions are dropped and counted."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hils_kit.data.leakage import drop_overlap, question_key, question_keys
from hils_kit.data.loaders import load_questions, save_questions
from hils_kit.stages.prepare import overlap_dropped, prepare_data


def test_keys_ignore_case_spacing_punctuation_and_option_order_but_not_other_options():
    assert question_key("Which drug?  ", ["Atropine", "Neostigmine."]) == question_key(
        "which DRUG", ["neostigmine", "atropine"]
    )
    assert question_key("Which of the following is true?", ["a", "b"]) != question_key(
        "Which of the following is true?", ["a", "c"]
    )


def test_drop_overlap_counts_and_error_mode():
    train = pd.DataFrame({"id": ["t1"], "question": ["Q one?"], "options": [["x", "y"]]})
    test = pd.DataFrame({"id": ["s1", "s2"], "question": ["q ONE", "Q two?"], "options": [["y", "x"], ["x", "y"]]})
    kept, dropped = drop_overlap(test, question_keys(train), "demo")
    assert kept["id"].tolist() == ["s2"] and dropped == 1
    with pytest.raises(ValueError, match=r"test set 'demo': 1 question\(s\) also appear .* \(e\.g\. s1\)"):
        drop_overlap(test, question_keys(train), "demo", on_overlap="error")
    with pytest.raises(ValueError, match="every one of its 1 questions is a training question"):
        drop_overlap(test.iloc[:1], question_keys(train), "demo")


def test_a_training_file_cut_from_medmcqa_no_longer_leaks_into_the_medmcqa_test_set(tmp_path):
    medmcqa = load_questions("medmcqa")
    train = medmcqa.sample(40, random_state=0).assign(id=lambda t: "copy:" + t["id"].astype(str))  # new ids
    save_questions(train, tmp_path / "mine.csv")
    split = {"kind": "holdout", "test_fraction": 0.25, "seed": 0}
    files = prepare_data(
        str(tmp_path / "mine.csv"), split, {"holdout": ["mine_test", "medmcqa"]}, ["medmcqa"], tmp_path / "prepare"
    )
    used = load_questions(tmp_path / "prepare" / "train_holdout.csv")  # 30 trained on, 10 held out
    assert files.set_index("label").loc["medmcqa", "overlap"] == 30  # every training question is in medmcqa
    assert overlap_dropped(tmp_path / "prepare", "holdout", ["mine_test", "medmcqa"]) == {"mine_test": 0, "medmcqa": 30}
    test = load_questions(tmp_path / "prepare" / "test_holdout__medmcqa.csv")
    assert len(test) == len(medmcqa) - 30 and not (question_keys(test) & question_keys(used))
    assert json.loads((tmp_path / "prepare" / "overlap.json").read_text())["holdout/medmcqa"] == 30
    with pytest.raises(ValueError, match="test set 'medmcqa': 30 question"):
        prepare_data(
            str(tmp_path / "mine.csv"),
            split,
            {"holdout": ["medmcqa"]},
            ["medmcqa"],
            tmp_path / "p2",
            on_overlap="error",
        )
