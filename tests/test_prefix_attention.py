"""Scoring with questions end to end in one row (prefix_attention) gives what left-padded batches give, computes no
padding, and leaves the model's attention as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hils_kit.score.scoring as scoring
from hils_kit.data.prompts import prompts_of
from hils_kit.score.prefix_attention import NAME, SharedPrefix, fits, prefix_sdpa
from hils_kit.score.scoring import letter_probabilities
from tests.test_scoring import BF16_PROB_TOLERANCE, mixed_table


def padded(model, tok, table, **kwargs) -> np.ndarray:
    """The scorer's left-padded batches: the same model attending with transformers' eager attention."""
    model.set_attn_implementation("eager")
    try:
        return letter_probabilities(model, tok, table, **kwargs)
    finally:
        model.set_attn_implementation("sdpa")


def positions_fed(model, call) -> int:
    """Token positions the model computed during ``call()``."""
    fed = []
    hook = model.get_input_embeddings().register_forward_hook(lambda mod, args, out: fed.append(args[0].numel()))
    try:
        call()
    finally:
        hook.remove()
    return sum(fed)


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_one_row_scores_as_padded_batches_and_computes_no_padding(tiny_model, batch_size):
    model, tok = tiny_model
    table = mixed_table()
    encoded = tok(prompts_of(table))["input_ids"]
    shared = scoring.shared_prefix(encoded)
    assert shared >= scoring.MIN_SHARED_TOKENS and fits(model, shared, [len(e) - shared for e in encoded])
    row = {}
    fed = positions_fed(
        model, lambda: row.update(p=letter_probabilities(model, tok, table, batch_size=batch_size, precision="fp32"))
    )
    assert fed == shared + sum(len(e) - shared for e in encoded)  # the prefix once, then no padding
    assert sum(scoring.pass_tokens(model, encoded, batch_size)) == fed  # what bench_scoring times the products over
    np.testing.assert_allclose(row["p"], padded(model, tok, table, batch_size=batch_size, precision="fp32"), atol=1e-6)
    assert model.config._attn_implementation == "sdpa"


def test_without_a_shared_prefix(tiny_model, monkeypatch):
    model, tok = tiny_model
    table = mixed_table()
    monkeypatch.setattr(scoring, "MIN_SHARED_TOKENS", 10**9)
    fed = positions_fed(model, lambda: letter_probabilities(model, tok, table, batch_size=8, precision="fp32"))
    assert fed == sum(len(e) for e in tok(prompts_of(table))["input_ids"])
    np.testing.assert_allclose(
        letter_probabilities(model, tok, table, batch_size=8, precision="fp32"),
        padded(model, tok, table, batch_size=8, precision="fp32"),
        atol=1e-6,
    )


def test_bf16_row_within_tolerance(tiny_model):
    model, tok = tiny_model
    table = mixed_table()
    row = letter_probabilities(model, tok, table, precision="bf16")
    assert np.nanmax(np.abs(row - padded(model, tok, table, precision="fp32"))) <= BF16_PROB_TOLERANCE


def test_a_sliding_window_model_scores_in_one_row_when_every_prompt_fits(tiny_model):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    _, tok = tiny_model
    table = mixed_table()
    longest = max(len(e) for e in tok(prompts_of(table))["input_ids"])
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        sliding_window=longest,
        layer_types=["sliding_attention", "full_attention"],
        pad_token_id=tok.pad_token_id,
        attn_implementation="sdpa",
    )
    model = Gemma3ForCausalLM(config).eval()
    encoded = tok(prompts_of(table))["input_ids"]
    shared = scoring.shared_prefix(encoded)
    assert fits(model, shared, [len(e) - shared for e in encoded])
    fed = positions_fed(model, lambda: letter_probabilities(model, tok, table, precision="fp32"))
    assert fed == shared + sum(len(e) - shared for e in encoded)
    np.testing.assert_allclose(
        letter_probabilities(model, tok, table, precision="fp32"),
        padded(model, tok, table, precision="fp32"),
        atol=1e-6,
    )
    config.sliding_window = longest - shared  # the longest prompt would not fit: left-padded batches
    assert not fits(model, shared, [len(e) - shared for e in encoded])


def test_other_attention_implementations_are_scored_in_padded_batches(tiny_model):
    model, tok = tiny_model
    model.set_attn_implementation("eager")
    try:
        assert not fits(model, 0, [5])
    finally:
        model.set_attn_implementation("sdpa")


def test_the_attention_is_restored_after_an_error(tiny_model, monkeypatch):
    model, tok = tiny_model

    forward = model.forward

    def fail(*args, **kwargs):
        if "hils_spans" not in kwargs:  # the shared prefix's pass
            return forward(*args, **kwargs)
        assert model.config._attn_implementation == NAME
        raise RuntimeError("boom")

    monkeypatch.setattr(model, "forward", fail)
    with pytest.raises(RuntimeError, match="boom"):
        letter_probabilities(model, tok, mixed_table(), precision="fp32")
    assert model.config._attn_implementation == "sdpa"


def test_prefix_sdpa_refuses_a_row_it_cannot_split():
    q = torch.zeros(1, 2, 5, 4)
    with pytest.raises(ValueError, match="hils_spans"):
        prefix_sdpa(None, q, q, q, None, hils_prefix=SharedPrefix(), hils_spans=[2, 2])
    with pytest.raises(ValueError, match="soft caps"):
        prefix_sdpa(None, q, q, q, None, hils_prefix=SharedPrefix(), hils_spans=[5], softcap=30.0)
    prefix = SharedPrefix([torch.zeros(1, 2, 3, 4)], [torch.zeros(1, 2, 3, 4)])
    with pytest.raises(ValueError, match="layer_idx.*'eager'"):
        prefix_sdpa(object(), q, q, q, None, hils_prefix=prefix, hils_spans=[5])


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "--model", "tiny", "--data", "medmcqa", "-o", "x"],
        ["label", "difficulty", "--data", "medmcqa", "--models", "tiny", "-o", "x.csv"],
    ],
)
def test_the_commands_score_in_the_scorers_batches(command):
    from hils_kit.cli import build_parser

    parser = build_parser()
    args, _ = parser.parse_known_args(command)
    assert args.batch_size == scoring.BATCH_SIZE


@pytest.mark.long  # test_a_sliding_window_model_scores_in_one_row_when_every_prompt_fits is its small scale
def test_gemma3_in_one_row_scores_as_the_paper_method():
    """The real Gemma 3 270M (sliding-window layers, one key/value head, query and key norms), where installed."""
    from hils_kit.data.assets import MissingAssetError
    from hils_kit.data.loaders import load_questions
    from hils_kit.models.loading import load_model
    from hils_kit.score.scoring import per_option_losses, predict, probabilities_from_losses

    try:
        model, tok = load_model("gemma3-270m", precision="fp32")
    except MissingAssetError as err:
        pytest.skip(str(err))
    table = load_questions("medmcqa").head(8)
    encoded = tok(prompts_of(table))["input_ids"]
    shared = scoring.shared_prefix(encoded)
    assert fits(model, shared, [len(e) - shared for e in encoded])  # really the one-row path
    probs = letter_probabilities(model, tok, table, precision="fp32")
    losses = per_option_losses(model, tok, table)
    assert (predict(probs) == predict(-losses)).all()
    np.testing.assert_allclose(probs, probabilities_from_losses(losses, tok, table), atol=1e-4)
