"""The kit's one-pass letter scorer against the paper's per-option method, batching, and predict()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hils_kit.score.scoring import letter_probabilities, per_option_losses, predict, probabilities_from_losses
from tests.conftest import make_questions


def mixed_table() -> pd.DataFrame:
    """20 questions: 10 with 4 options, 10 with 5, interleaved, with prompts of different lengths."""
    four = make_questions(10, seed=1)
    five = make_questions(10, seed=2)
    five["id"] = [f"f{i:03d}" for i in range(10)]
    five["question"] = [f"{q} " + "with a longer stem " * (i % 4) for i, q in enumerate(five["question"])]
    five["options"] = [o + [f"option 5 of {i}"] for i, o in enumerate(five["options"])]
    five["answer"] = ["ABCDE"[i % 5] for i in range(10)]
    return pd.concat([four, five]).sort_values("id", key=lambda s: s.str[1:]).reset_index(drop=True)


def test_predictions_identical_to_paper_method_on_mixed_table(tiny_model):
    model, tok = tiny_model
    table = mixed_table()
    probs = letter_probabilities(model, tok, table, batch_size=4, precision="fp32")
    losses = per_option_losses(model, tok, table, batch_size=4)
    assert probs.shape == losses.shape == (20, 5)
    n_opts = table["options"].map(len).to_numpy()
    assert (np.isnan(probs[:, 4]) == (n_opts == 4)).all()
    assert (np.isnan(losses) == np.isnan(probs)).all()
    assert np.allclose(np.nansum(probs, axis=1), 1.0)
    assert (predict(probs) == predict(-losses)).all()
    assert np.allclose(probs, probabilities_from_losses(losses, tok, table), atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("n_options", [4, 5])
def test_predictions_identical_to_paper_method_per_option_count(tiny_model, n_options):
    model, tok = tiny_model
    table = mixed_table()
    table = table[table["options"].map(len) == n_options].reset_index(drop=True)
    probs = letter_probabilities(model, tok, table, precision="fp32")
    losses = per_option_losses(model, tok, table)
    assert probs.shape == (10, n_options)
    assert (predict(probs) == predict(-losses)).all()


def test_batched_equals_unbatched(tiny_model):
    model, tok = tiny_model
    table = mixed_table()
    one = letter_probabilities(model, tok, table, batch_size=1, precision="fp32")
    many = letter_probabilities(model, tok, table, batch_size=7, precision="fp32")
    assert np.allclose(one, many, atol=1e-6, equal_nan=True)
    ref_one = per_option_losses(model, tok, table.head(8), batch_size=1)
    ref_many = per_option_losses(model, tok, table.head(8), batch_size=8)
    assert np.allclose(ref_one, ref_many, atol=1e-6, equal_nan=True)
    assert (predict(one) == predict(many)).all()


def test_shared_prefix_cache_changes_nothing(tiny_model, monkeypatch):
    import hils_kit.score.scoring as scoring
    from hils_kit.data.prompts import prompts_of

    model, tok = tiny_model
    table = mixed_table()
    assert scoring.shared_prefix(tok(prompts_of(table))["input_ids"]) >= scoring.MIN_SHARED_TOKENS
    fed = []  # token positions the model computes, per call
    hook = model.get_input_embeddings().register_forward_hook(lambda mod, args, out: fed.append(args[0].numel()))
    try:
        shared = letter_probabilities(model, tok, table, batch_size=4, precision="fp32")
        n_shared, fed[:] = sum(fed), []
        monkeypatch.setattr(model.config, "sliding_window", 8, raising=False)  # too small a window: no sharing
        windowed = letter_probabilities(model, tok, table, batch_size=4, precision="fp32")
        n_windowed, fed[:] = sum(fed), []
        monkeypatch.setattr(scoring, "MIN_SHARED_TOKENS", 10**9)
        whole = letter_probabilities(model, tok, table, batch_size=4, precision="fp32")
        n_whole = sum(fed)
    finally:
        hook.remove()
    assert n_shared < 0.8 * n_whole  # the prefix really is computed once
    assert np.allclose(shared, whole, atol=1e-6, equal_nan=True)
    assert n_windowed == n_whole and np.array_equal(windowed, whole, equal_nan=True)


def test_scoring_turns_dropout_off_and_restores_train_mode(tiny_model):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny_model
    table = mixed_table().head(6)
    base = letter_probabilities(model, tok, table)
    # random (non-zero) LoRA weights with heavy dropout: in train mode two passes would differ
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_dropout=0.9, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    try:
        peft_model.train()
        first = letter_probabilities(peft_model, tok, table)
        second = letter_probabilities(peft_model, tok, table)
        assert peft_model.training
        assert np.array_equal(first, second, equal_nan=True)
        assert not np.allclose(first, base, equal_nan=True)  # the adapter is really in use
    finally:
        peft_model.unload()
        model.eval()


BF16_PROB_TOLERANCE = 0.02  # bf16 autocast vs fp32: largest letter-probability difference allowed


def test_bf16_scores_within_tolerance_of_fp32(tiny_model):
    model, tok = tiny_model
    table = mixed_table()
    fp32 = letter_probabilities(model, tok, table, batch_size=4, precision="fp32")
    bf16 = letter_probabilities(model, tok, table, batch_size=4, precision="bf16")
    assert (np.isnan(fp32) == np.isnan(bf16)).all()
    assert 0 < np.nanmax(np.abs(bf16 - fp32)) <= BF16_PROB_TOLERANCE  # really bf16, and close
    top_two = np.sort(np.nan_to_num(fp32, nan=0.0), axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 2 * BF16_PROB_TOLERANCE  # a near-tie may flip; a clear winner may not
    assert (predict(bf16)[clear] == predict(fp32)[clear]).all()


def test_predict_ignores_missing_options():
    scores = np.array([[0.1, np.nan, 0.3], [np.nan, 0.2, 0.1], [-3.0, -1.0, np.nan]])
    assert predict(scores).tolist() == ["C", "B", "B"]


@pytest.mark.slow
def test_smollm2_predictions_identical_to_paper_method():
    from hils_kit.data.loaders import load_questions
    from hils_kit.models.loading import load_model

    model, tok = load_model("smollm2")
    table = load_questions("medmcqa")
    table = table.loc[table["question"].str.len().sort_values(kind="stable").index[:4]].reset_index(drop=True)
    probs = letter_probabilities(model, tok, table, batch_size=2, precision="fp32")
    losses = per_option_losses(model, tok, table, batch_size=2)
    assert (predict(probs) == predict(-losses)).all()
    assert np.allclose(probs, probabilities_from_losses(losses, tok, table), atol=1e-4)
