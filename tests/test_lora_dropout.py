"""lean_lora_dropout(): the loss and gradients of peft's LoRA with the same dropout masks, with less kept for the
backward pass; the masks drop each value with probability p, independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from hils_kit.train.lora_dropout import draw_seed, dropped, keep_mask, lean_lora_dropout
from tests.conftest import seeded_peft_dropout, tiny_lora_model


def lora_model(dropout: float = 0.1):
    """The tiny LoRA model with dropout, in train mode."""
    model, _ = tiny_lora_model(dropout=dropout)
    model.train()
    return model


def step(model, seed: int = 7, bf16: bool = False):
    """Loss, LoRA gradients and the bytes autograd keeps (parameters left out) of one forward/backward pass."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (2, 24), generator=generator)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, sum(kept.values())


def test_same_loss_and_gradients_as_peft_with_less_kept():
    model = lora_model()
    _, _, peft_kept = step(model)  # peft's own dropout: float noise kept
    with seeded_peft_dropout(model):
        loss, grads, _ = step(model)
    with lean_lora_dropout(model):
        lean_loss, lean_grads, lean_kept = step(model)
        other_loss, other_grads, _ = step(model, seed=8)  # other dropout masks
    assert len(grads) == 2 * 7 * model.config.num_hidden_layers  # every lora_A and lora_B has a gradient
    assert lean_grads.keys() == grads.keys()
    torch.testing.assert_close(lean_loss, loss, rtol=0, atol=0)
    for name in grads:
        torch.testing.assert_close(lean_grads[name], grads[name], rtol=1e-6, atol=1e-8, msg=name)
    # the dropout is really applied: other masks give other gradients
    assert not torch.allclose(
        other_grads["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"],
        grads["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"],
    )
    assert lean_kept < 0.8 * peft_kept


def test_bf16_autocast_gives_peft_s_gradients():
    model = lora_model()
    with seeded_peft_dropout(model):
        loss, grads, _ = step(model, bf16=True)
    with lean_lora_dropout(model):
        lean_loss, lean_grads, _ = step(model, bf16=True)
    torch.testing.assert_close(lean_loss, loss, rtol=0, atol=0)
    assert all(g.dtype == torch.float32 for g in lean_grads.values())
    for name in grads:
        torch.testing.assert_close(lean_grads[name], grads[name], rtol=1e-2, atol=1e-5, msg=name)


def test_modules_and_adapter_names_come_back():
    model = lora_model()
    names = list(model.state_dict())
    dropouts = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout)}
    with lean_lora_dropout(model):
        assert list(model.state_dict()) == names
        assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
        lora_as = [m for name, m in model.named_modules() if name.endswith("lora_A.default")]
        assert len(lora_as) == 7 * model.config.num_hidden_layers
        assert all(type(m) is not torch.nn.Linear for m in lora_as)
    assert list(model.state_dict()) == names
    assert {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout)} == dropouts
    assert all(type(m) is torch.nn.Linear for name, m in model.named_modules() if name.endswith("lora_A.default"))
    assert not any(hasattr(m, "dropout_p") for m in model.modules())


def test_eval_mode_applies_no_dropout():
    model = lora_model()
    model.eval()
    ids = torch.arange(16)[None]
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with lean_lora_dropout(model):
            lean = model(input_ids=ids).logits
    torch.testing.assert_close(lean, plain, rtol=0, atol=0)


def test_a_model_without_lora_dropout_is_left_alone():
    model = lora_model(dropout=0.0)
    before = [type(m) for m in model.modules()]
    with lean_lora_dropout(model):
        assert [type(m) for m in model.modules()] == before


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_masks_drop_each_value_with_probability_p_independently(p):
    n = 200_000
    torch.manual_seed(0)
    first, second = keep_mask(draw_seed(), (n,), p), keep_mask(draw_seed(), (n,), p)
    for mask in (first, second):
        dropped_share = stats.binomtest(int((~mask).sum()), n, p)
        assert dropped_share.pvalue > 1e-4, dropped_share  # the share dropped is p
    # two draws are independent: the 2 x 2 table of (dropped in the first, dropped in the second)
    table = np.histogram2d(first.numpy(), second.numpy(), bins=2)[0]
    assert stats.chi2_contingency(table).pvalue > 1e-4
    # neighbouring values too (the draws come two to a 64-bit word)
    pairs = np.histogram2d(first[0::2].numpy(), first[1::2].numpy(), bins=2)[0]
    assert stats.chi2_contingency(pairs).pvalue > 1e-4
    x = torch.randn(n)
    kept = dropped(x, 3, p)
    assert torch.equal(kept == 0, ~keep_mask(3, (n,), p) | (x == 0))
    torch.testing.assert_close(kept[kept != 0], x[kept != 0] / (1 - p))
    torch.manual_seed(0)
    assert torch.equal(keep_mask(draw_seed(), (n,), p), first)  # torch's seed fixes the masks
