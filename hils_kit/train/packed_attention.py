"""Attention in padding-free rows: one causal product per question instead of one masked product over the row.

The kit trains padding-free (``padding_free``: a micro-batch's questions end to end in one row, positions restarting
at each). transformers' ``sdpa`` attends such a row with a block-diagonal mask over the whole row, so every layer
computes (and differentiates) the scores of every question against every other one, and throws them away. Within
:func:`packed_attention` a CPU model attends each question's span on its own with SDPA's causal kernel, from the
row's bounds that TRL's collator passes (``cu_seq_lens_q``): the same attention, a quarter of the products for four
questions a row, and no mask; under bf16 autocast a question up to :data:`FP32_SPAN` tokens attends in fp32, which
torch's CPU kernel computes twice as fast (and nearer fp32). Anything else (a padded batch, a cache, dropout on the
attention, a soft cap, a span longer than a sliding window) goes to transformers' own ``sdpa``.

>>> with packed_attention(trainer.model):                                        # doctest: +SKIP
...     trainer.train()
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from hils_kit.models.attention import attention_function

NAME = "hils_packed_sdpa"
# under bf16 autocast, spans up to this many tokens attend in fp32 (autocast would cast them to bf16): torch 2.13's CPU flash attention took 2x as
# long in bf16 as in fp32 with the casts, forward and backward, for 64-128 tokens and 9 heads of 64, and as long
# for 192 (2026-12-04, a 2-core Xeon with AMX); longer spans stay bf16
FP32_SPAN = 128


def spans(query: torch.Tensor, key: torch.Tensor, module, dropout: float, kwargs: dict) -> list[int] | None:
    """The lengths of the questions in a padding-free row, or ``None`` when the row must go to ``sdpa`` whole.

    >>> row, bounds = torch.zeros(1, 2, 7, 4), torch.tensor([0, 3, 7])
    >>> spans(row, row, None, 0.0, {"cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds})
    [3, 4]
    >>> spans(row, row, None, 0.0, {"cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds, "sliding_window": 3}) is None
    True
    """
    bounds, key_bounds = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    if bounds is None or key_bounds is None or query.shape[0] != 1 or key.shape[2] != query.shape[2]:
        return None
    if (
        dropout
        or not getattr(module, "is_causal", True)
        or any(kwargs.get(name) is not None for name in ("softcap", "s_aux", "position_bias"))
    ):
        return None
    if not torch.equal(bounds, key_bounds) or int(bounds[0]) != 0 or int(bounds[-1]) != query.shape[2]:
        return None
    lengths = bounds.diff().tolist()
    window = kwargs.get("sliding_window")
    return None if window is not None and max(lengths) > window else lengths


def packed_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' attention interface: each question of a padding-free row attended on its own, causally."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    lengths = spans(query, key, module, dropout, kwargs)
    if lengths is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    outputs = []
    for q, k, v in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2)):
        if bf16 and q.shape[2] <= FP32_SPAN:
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, scale=scaling)
            outputs.append(out.to(torch.bfloat16))  # what autocast's sdpa returns
        else:
            outputs.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling))
    return torch.cat(outputs, 2).transpose(1, 2).contiguous(), None


@contextlib.contextmanager
def packed_attention(model):
    """Within the block a CPU ``model`` that attends with ``sdpa`` attends with :func:`packed_sdpa`; other models
    are left as they are."""
    from transformers.masking_utils import sdpa_mask

    device = next(model.parameters()).device
    if getattr(model.config, "_attn_implementation", None) != "sdpa" or device.type != "cpu":
        yield model
        return
    with attention_function(model, NAME, packed_sdpa, sdpa_mask):  # sdpa's masks, for the rows that go to it
        yield model
