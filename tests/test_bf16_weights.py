"""bf16 copies of the weights, made once under bf16 autocast: in training the same results as autocast's own casts,
in scoring those of the model loaded in bf16."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from hils_kit.core.bf16_weights import bf16_linear_weights, bf16_model_weights
from hils_kit.models.loading import load_model
from hils_kit.score import scoring
from hils_kit.score.scoring import letter_probabilities
from hils_kit.train import training
from hils_kit.train.training import train
from tests.conftest import make_questions, tiny_lora_model
from tests.test_training import ordered_table, tiny_config


def test_frozen_linear_weights_only_and_tied_weights_stay_fp32():
    model, _ = tiny_lora_model()
    model.base_model.model.config.tie_word_embeddings = True
    inner = model.base_model.model
    inner.lm_head.weight = inner.model.embed_tokens.weight  # tied, as SmolLM2's
    before = {name: p for name, p in model.named_parameters(remove_duplicate=False)}
    with bf16_linear_weights(model):
        dtypes = {name: p.dtype for name, p in model.named_parameters(remove_duplicate=False)}
        assert inner.model.embed_tokens.weight.dtype == torch.float32  # the embedding keeps the fp32 weight
    bf16 = {name for name, dtype in dtypes.items() if dtype == torch.bfloat16}
    assert bf16 and all("base_layer" in name or name.endswith("lm_head.weight") for name in bf16)
    assert not any("lora_" in name for name in bf16)  # trained in fp32
    with bf16_model_weights(model):  # scoring: every weight, tied ones as one copy
        assert all(p.dtype == torch.bfloat16 for p in model.parameters())
        assert inner.lm_head.weight is inner.model.embed_tokens.weight
    after = dict(model.named_parameters(remove_duplicate=False))
    assert after.keys() == before.keys() and all(after[n] is before[n] for n in before)  # the same objects back
    assert inner.lm_head.weight is inner.model.embed_tokens.weight


def test_scoring_in_bf16_gives_the_bf16_model_s_own_results(monkeypatch, tiny_model):
    model, tok = tiny_model
    table = make_questions(12)
    cast_once = letter_probabilities(model, tok, table, batch_size=4, precision="bf16")
    loaded_in_bf16, _ = load_model("tiny", dtype=torch.bfloat16, device="cpu")
    assert np.array_equal(
        cast_once, letter_probabilities(loaded_in_bf16, tok, table, batch_size=4, precision="bf16"), equal_nan=True
    )
    fp32 = letter_probabilities(model, tok, table, batch_size=4, precision="fp32")
    assert not np.array_equal(cast_once, fp32, equal_nan=True)  # really bf16
    assert all(p.dtype == torch.float32 for p in model.parameters())
    monkeypatch.setattr(scoring, "bf16_model_weights", lambda model: contextlib.nullcontext())
    autocast_alone = letter_probabilities(model, tok, table, batch_size=4, precision="bf16")
    assert np.nanmax(np.abs(autocast_alone - cast_once)) < 0.01  # fp32 residual stream: a little nearer fp32


def test_training_in_bf16_gives_autocast_s_own_losses_and_adapter(monkeypatch, tmp_path):
    config, real, copied = tiny_config(bf16=True), training.bf16_linear_weights, []

    @contextlib.contextmanager
    def counted(model):
        with real(model):
            copied.append(sum(p.dtype == torch.bfloat16 for p in model.parameters()))
            yield model

    monkeypatch.setattr(training, "bf16_linear_weights", counted)
    once = train(ordered_table(), model="tiny", config=config, out_dir=tmp_path / "once")
    monkeypatch.setattr(training, "bf16_linear_weights", lambda model: contextlib.nullcontext())
    each_step = train(ordered_table(), model="tiny", config=config, out_dir=tmp_path / "each")
    assert copied == [7 * once.model.config.num_hidden_layers + 1]  # every frozen linear weight, the LM head too
    assert once.log["loss"].tolist() == each_step.log["loss"].tolist()
    weights, reference = once.model.state_dict(), each_step.model.state_dict()
    assert all(torch.equal(weights[name], reference[name]) for name in weights)
    assert all(p.dtype == torch.float32 for p in once.model.parameters())
