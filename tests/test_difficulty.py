"""Difficulty labels: expected accuracy against a hand-made forward pass, caching, tiers, human difficulty, CLI."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hils_kit.cli import main
from hils_kit.data.loaders import load_questions, save_questions
from hils_kit.data.prompts import format_prompt, letter_token_ids
from hils_kit.data.questions import LETTERS
from hils_kit.labels.difficulty import (
    expected_accuracy,
    human_difficulty,
    label_difficulty,
    llm_difficulty,
    model_agreement,
    sidecar_path,
)
from hils_kit.labels.tiers import HUMAN_THRESHOLDS, LLM_THRESHOLDS
from hils_kit.labels.tiers import tier_names as assign_tiers
from tests.conftest import make_questions

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def sharp_model(tiny_model):
    """The tiny model with its final norm scaled up, so its letter probabilities are far from uniform."""
    model, tokenizer = tiny_model
    sharp = copy.deepcopy(model)
    with torch.no_grad():
        sharp.model.norm.weight.mul_(40.0)
    return sharp, tokenizer


@pytest.fixture(scope="module")
def sharp_folder(sharp_model, tmp_path_factory):
    model, tokenizer = sharp_model
    folder = tmp_path_factory.mktemp("sharp")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def table():
    """Six questions of different lengths (so batches are padded), one with three options."""
    t = make_questions(6)
    t.loc[1, "question"] = "A much longer stem: " + "the patient presents with fever and cough " * 4
    t.at[4, "options"] = t.loc[4, "options"][:3]
    t.loc[4, "answer"] = "C"
    return t


def hand_p_correct(model, tokenizer, question, options, answer) -> float:
    """One unpadded fp32 forward pass: softmax of the last position's logits over the letter ids."""
    enc = tokenizer(format_prompt(question, options), return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits[0, -1]
    probs = torch.softmax(logits[letter_token_ids(tokenizer, len(options))].double(), dim=0)
    return float(probs[LETTERS.index(answer)])


def test_expected_accuracy_matches_hand_computation(sharp_model, table):
    model, tokenizer = sharp_model
    got = expected_accuracy(model, tokenizer, table, batch_size=4, precision="fp32")
    want = [hand_p_correct(model, tokenizer, r.question, r.options, r.answer) for r in table.itertuples()]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert np.ptp(got) > 0.1  # far from uniform, so a wrong letter would show


def test_debiased_expected_accuracy_matches_hand_computation(sharp_model, table):
    model, tokenizer = sharp_model
    got = expected_accuracy(model, tokenizer, table, debias=True, batch_size=4, precision="fp32")
    want = []
    for r in table.itertuples():
        n, a = len(r.options), LETTERS.index(r.answer)
        rotations = [
            hand_p_correct(model, tokenizer, r.question, r.options[s:] + r.options[:s], LETTERS[(a - s) % n])
            for s in range(n)
        ]
        want.append(np.mean(rotations))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not np.allclose(got, expected_accuracy(model, tokenizer, table, precision="fp32"), atol=0.01)


def test_llm_difficulty_is_one_minus_mean_over_models(tiny_model, sharp_model, sharp_folder, table):
    labels = llm_difficulty(table, ["tiny", sharp_folder])
    tiny_acc = expected_accuracy(*tiny_model, table)
    sharp_acc = expected_accuracy(*sharp_model, table)
    sharp_col = [c for c in labels.columns if c.startswith("p_correct_") and c != "p_correct_tiny"]
    assert list(labels.columns[:3]) == ["id", "difficulty", "p_correct_tiny"] and len(sharp_col) == 1
    assert labels["id"].tolist() == table["id"].tolist()
    np.testing.assert_allclose(labels["p_correct_tiny"], tiny_acc, rtol=1e-5)
    np.testing.assert_allclose(labels[sharp_col[0]], sharp_acc, rtol=1e-5)
    np.testing.assert_allclose(labels["difficulty"], 1 - (tiny_acc + sharp_acc) / 2, rtol=1e-5)


def test_label_file_is_reused_until_data_or_models_change(sharp_folder, table, tmp_path, caplog):
    path = tmp_path / "difficulty.csv"
    caplog.set_level(logging.INFO, logger="hils_kit.labels.difficulty")
    first = label_difficulty(table, ["tiny"], False, path)
    assert "computing" in caplog.text and path.exists() and sidecar_path(path).exists()
    assert pd.read_csv(path, dtype={"id": str})["id"].tolist() == table["id"].tolist()

    caplog.clear()
    again = label_difficulty(table, ["tiny"], False, path)
    assert "reusing" in caplog.text
    pd.testing.assert_frame_equal(again, first)

    caplog.clear()
    edited = table.copy()
    edited.loc[0, "question"] = "Which nerve supplies the deltoid?"
    label_difficulty(edited, ["tiny"], False, path)
    assert "recomputing" in caplog.text and "questions" in caplog.text

    caplog.clear()
    both = label_difficulty(edited, ["tiny", sharp_folder], False, path)
    assert "recomputing" in caplog.text and "models" in caplog.text
    assert len(both.filter(like="p_correct_").columns) == 2
    meta = json.loads(sidecar_path(path).read_text())
    assert [m["name"] for m in meta["fingerprint"]["models"]] == ["tiny", sharp_folder]


def test_per_model_cache_scores_only_new_models(table, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="hils_kit.labels.difficulty")
    first = llm_difficulty(table, ["tiny"], cache=tmp_path)
    caplog.clear()
    second = llm_difficulty(table, ["tiny"], cache=tmp_path)
    assert "reusing expected accuracies" in caplog.text and "scored" not in caplog.text
    np.testing.assert_allclose(second["p_correct_tiny"], first["p_correct_tiny"])


def test_bad_model_name_is_a_clear_error(table):
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        llm_difficulty(table, ["no-such-model"])
    with pytest.raises(ValueError, match="twice"):
        llm_difficulty(table, ["tiny", "tiny"])


def test_model_agreement():
    labels = pd.DataFrame(
        {
            "id": list("abcd"),
            "difficulty": 0.5,
            "p_correct_m1": [0.1, 0.2, 0.3, 0.4],
            "p_correct_m2": [0.4, 0.3, 0.2, 0.1],
            "p_correct_m3": [0.2, 0.4, 0.6, 0.8],
        }
    )
    agreement = model_agreement(labels)
    assert agreement.mean_accuracy.to_dict() == pytest.approx({"m1": 0.25, "m2": 0.25, "m3": 0.5})
    assert agreement.correlation.loc["m1", "m2"] == pytest.approx(-1)
    assert agreement.mean_pairwise == pytest.approx((-1 + 1 - 1) / 3)


def test_tiers_by_thresholds_and_terciles():
    d = pd.Series([0.10, 0.66, 0.70, 0.80, 0.95, np.nan], index=list("abcdef"))
    tiers = assign_tiers(d, LLM_THRESHOLDS)
    assert tiers.iloc[:5].tolist() == ["easy", "medium", "medium", "hard", "hard"]
    assert pd.isna(tiers["f"]) and tiers.index.tolist() == list("abcdef")
    terciles = assign_tiers(pd.Series(np.linspace(0, 1, 9)))
    assert terciles.value_counts().to_dict() == {"easy": 3, "medium": 3, "hard": 3}
    with pytest.raises(ValueError, match="must not exceed"):
        assign_tiers(d, (0.8, 0.6))


def test_human_difficulty_from_lek_statistics():
    table = load_questions(FIX / "lek_sample.csv")
    d = human_difficulty(table)
    want = [1 - row[f"%{row['answer']}"] / 100 for _, row in table.iterrows()]
    np.testing.assert_allclose(d, want)
    tiers = assign_tiers(d, HUMAN_THRESHOLDS)
    assert tiers[0] == "medium"  # 92.1% correct
    assert tiers[5] == "medium"  # exactly 94% correct: the paper code's "easy" needs more than 94%
    with pytest.raises(ValueError, match="no examinee statistics"):
        human_difficulty(make_questions(4))


def test_cli_difficulty_end_to_end(table, tmp_path, capsys):
    data = save_questions(table, tmp_path / "questions.csv")
    out = tmp_path / "labels.csv"
    code = main(
        [
            "label",
            "difficulty",
            str(data),
            "--models",
            "tiny",
            "--debias",
            "--limit",
            "4",
            "-o",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "mean expected accuracy per model" in printed and "tiers by terciles" in printed
    labels = pd.read_csv(out)
    assert len(labels) == 4 and {"id", "difficulty", "p_correct_tiny"} <= set(labels.columns)
    assert json.loads(sidecar_path(out).read_text())["fingerprint"]["debias"] is True


def test_cli_difficulty_bad_inputs(table, tmp_path, capsys):
    data = save_questions(table, tmp_path / "questions.csv")
    assert main(["label", "difficulty", str(data), "--models", "no-such-model", "-o", str(tmp_path / "x.csv")]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("stem,choices\nwhat?,a|b\n")
    assert main(["label", "difficulty", str(bad), "--models", "tiny", "-o", str(tmp_path / "x.csv")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_debiasing_maps_rotated_letters_back_on_smollm2():
    """SmolLM2 reacts to option content (the tiny model only to letters), so this pins the letter mapping."""
    from hils_kit.models.loading import load_model

    model, tokenizer = load_model("smollm2")
    table = load_questions("medmcqa").head(1)
    got = expected_accuracy(model, tokenizer, table, debias=True, precision="fp32")
    for r, value in zip(table.itertuples(), got):
        a = LETTERS.index(r.answer)
        rotations = [
            hand_p_correct(model, tokenizer, r.question, r.options[s:] + r.options[:s], LETTERS[(a - s) % 4])
            for s in range(4)
        ]
        assert value == pytest.approx(np.mean(rotations), rel=1e-4)
