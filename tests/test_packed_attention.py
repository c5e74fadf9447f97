"""packed_attention(): each question of a padding-free row attended on its own gives the block-diagonal masked
attention of transformers' sdpa, and everything it cannot take goes to sdpa."""

from __future__ import annotations

import types

import pytest
import torch

from hils_kit.train.packed_attention import NAME, packed_attention, packed_sdpa, spans

LENGTHS = [5, 9, 3]


def row(heads: int = 4, kv_heads: int = 2, dim: int = 8, seed: int = 0):
    """Query, key and value of one padding-free row of ``LENGTHS`` questions, and the row's bounds."""
    generator = torch.Generator().manual_seed(seed)
    n = sum(LENGTHS)
    q = torch.randn(1, heads, n, dim, generator=generator, requires_grad=True)
    k = torch.randn(1, kv_heads, n, dim, generator=generator, requires_grad=True)
    v = torch.randn(1, kv_heads, n, dim, generator=generator, requires_grad=True)
    bounds = torch.tensor([0, *torch.tensor(LENGTHS).cumsum(0).tolist()], dtype=torch.int32)
    return q, k, v, {"cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds.clone()}


def block_causal_mask() -> torch.Tensor:
    """The (1, 1, n, n) bool mask of causal attention within each question, as transformers builds it."""
    question = torch.repeat_interleave(torch.arange(len(LENGTHS)), torch.tensor(LENGTHS))
    causal = torch.ones(len(question), len(question), dtype=torch.bool).tril()
    return (causal & (question[:, None] == question[None, :]))[None, None]


MODULE = types.SimpleNamespace(num_key_value_groups=2, is_causal=True)


def test_the_same_attention_and_gradients_as_the_masked_row():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, k, v, bounds = row()
    packed, _ = packed_sdpa(MODULE, q, k, v, None, scaling=0.3, **bounds)
    grads = torch.autograd.grad(packed.square().sum(), (q, k, v))
    masked, _ = sdpa_attention_forward(MODULE, q, k, v, block_causal_mask(), scaling=0.3)
    masked_grads = torch.autograd.grad(masked.square().sum(), (q, k, v))
    assert packed.shape == masked.shape == (1, sum(LENGTHS), 4, 8)
    torch.testing.assert_close(packed, masked, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, masked_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "change",
    [
        {"dropout": 0.1},
        {"sliding_window": 4},  # a question of 5 and one of 9 tokens do not fit
        {"softcap": 30.0},
        {"no_bounds": True},
        {"other_key_bounds": True},
        {"longer_key": True},  # a cache
        {"batch": 2},
    ],
)
def test_what_it_cannot_take_goes_to_sdpa(change):
    q, k, v, bounds = row()
    dropout = change.get("dropout", 0.0)
    kwargs = {**bounds, **{name: change[name] for name in ("sliding_window", "softcap") if name in change}}
    if "no_bounds" in change:
        kwargs = {}
    if "other_key_bounds" in change:
        kwargs["cu_seq_lens_k"] = torch.tensor([0, 10, sum(LENGTHS)], dtype=torch.int32)
    if "longer_key" in change:
        k = torch.cat([k, k[:, :, :2]], 2)
    if "batch" in change:
        q = q.expand(2, -1, -1, -1)
    assert spans(q, k, MODULE, dropout, kwargs) is None
    assert spans(*row()[:2], MODULE, 0.0, {**bounds, "sliding_window": 9}) == LENGTHS  # every question fits


def test_a_cpu_sdpa_model_attends_packed_within_the_block_and_comes_back():
    from hils_kit.models.loading import load_model

    model, _ = load_model("tiny", dtype=torch.float32, device="cpu")
    assert model.config._attn_implementation == "sdpa"
    with packed_attention(model):
        assert model.config._attn_implementation == NAME
    assert model.config._attn_implementation == "sdpa"
    model.set_attn_implementation("eager")
    with packed_attention(model):
        assert model.config._attn_implementation == "eager"


def test_a_padded_batch_in_the_block_scores_as_without_it():
    """Padded rows (no bounds) go to sdpa with its mask: the same logits."""
    from hils_kit.models.loading import load_model

    model, _ = load_model("tiny", dtype=torch.float32, device="cpu")
    ids = torch.arange(1, 25).reshape(2, 12)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
        with packed_attention(model):
            packed = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(packed, plain, rtol=0, atol=0)


def test_train_attends_each_question_of_a_padding_free_row_on_its_own(monkeypatch, tmp_path):
    """The loss passes the row's bounds to the model, so training really takes the per-question path (a row
    without them would go to sdpa: the same numbers, slower)."""
    from hils_kit.train import packed_attention as module
    from hils_kit.train.training import train
    from tests.test_training import ordered_table, tiny_config

    seen, real = [], module.spans

    def recorded(*args):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(module, "spans", recorded)
    result = train(ordered_table(), model="tiny", config=tiny_config(lora_dropout=0.0), out_dir=tmp_path / "run")
    assert result.summary["batching"] == "padding-free"
    assert seen and all(lengths is not None for lengths in seen)
    assert {len(lengths) for lengths in seen} == {3, 2}  # 20 questions, 3 a row: the last row has 2


def test_under_bf16_autocast_short_questions_attend_in_fp32():
    """Questions up to FP32_SPAN tokens attend in fp32 (faster on CPUs, and nearer fp32), longer ones in bf16 as
    autocast's sdpa would; the output is bf16 either way."""
    from hils_kit.train.packed_attention import FP32_SPAN

    q, k, v, bounds = row()
    q, k, v = (t.detach().bfloat16() for t in (q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        packed, _ = packed_sdpa(MODULE, q, k, v, None, scaling=0.3, **bounds)
    reference, _ = packed_sdpa(MODULE, q.float(), k.float(), v.float(), None, scaling=0.3, **bounds)
    assert packed.dtype == torch.bfloat16
    torch.testing.assert_close(packed, reference.bfloat16(), rtol=0, atol=0)
    n = FP32_SPAN + 1  # one question too long for fp32
    generator = torch.Generator().manual_seed(1)
    long = [torch.randn(1, 2, n, 8, generator=generator).bfloat16() for _ in range(3)]
    one = {"cu_seq_lens_q": torch.tensor([0, n]), "cu_seq_lens_k": torch.tensor([0, n])}
    module = types.SimpleNamespace(num_key_value_groups=1, is_causal=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        packed, _ = packed_sdpa(module, *long, None, scaling=0.3, **one)
        bf16 = torch.nn.functional.scaled_dot_product_attention(*long, is_causal=True, scale=0.3)
    torch.testing.assert_close(packed, bf16.transpose(1, 2), rtol=0, atol=0)
