"""Scoring attention for questions end to end in one row: each attends the shared prefix and itself, causally.

The scorer (:func:`hils_kit.score.scoring.letter_probabilities`) runs the tokens every prompt starts with once. On a
CPU it then puts a batch's prompts, without that prefix, end to end in one row (no padding; positions restart after
the prefix at each), so every linear layer is one large matrix product. Within :func:`prefix_attention` each layer
attends each prompt's span, in one SDPA call, to the prefix's keys from that first pass and to its own keys
causally: each prompt's own attention, as if it had been run alone.

>>> with prefix_attention(model):                                                            # doctest: +SKIP
...     out = model(input_ids=row, position_ids=positions, hils_prefix=SharedPrefix.of(cache), hils_spans=[52, 61])
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from hils_kit.models.attention import attention_function

NAME = "hils_prefix_sdpa"


@dataclass
class SharedPrefix:
    """The shared prefix's keys and values per layer, ``(1, kv heads, prefix tokens, head dim)`` each (empty lists:
    no prefix), and the attention masks of the span lengths seen so far.

    >>> prefix = SharedPrefix([torch.zeros(1, 1, 2, 4)], [torch.zeros(1, 1, 2, 4)])
    >>> prefix.mask(3, torch.float32).tolist()
    [[0.0, 0.0, 0.0, -inf, -inf], [0.0, 0.0, 0.0, 0.0, -inf], [0.0, 0.0, 0.0, 0.0, 0.0]]
    """

    keys: list = field(default_factory=list)
    values: list = field(default_factory=list)
    masks: dict = field(default_factory=dict)

    @classmethod
    def of(cls, cache) -> SharedPrefix:
        """The keys and values of a transformers ``DynamicCache`` filled by the prefix's forward pass."""
        return cls([layer.keys for layer in cache.layers], [layer.values for layer in cache.layers])

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def mask(self, span: int, dtype) -> torch.Tensor:
        """``(span, prefix + span)``, added to the scores: every position sees the whole prefix, and its own span up to
        itself. Additive in the scores' ``dtype`` (SDPA turns a boolean mask into that at every call)."""
        if (span, dtype) not in self.masks:
            mask = torch.zeros(span, self.length + span, dtype=dtype, device=self.keys[0].device)
            mask[:, self.length :] = float("-inf")
            self.masks[span, dtype] = mask.triu_(self.length + 1)
        return self.masks[span, dtype]


def prefix_sdpa(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout=0.0,
    scaling=None,
    is_causal=None,
    hils_prefix: SharedPrefix | None = None,
    hils_spans: list[int] | None = None,
    **kwargs,
):
    """transformers' attention interface: each span of the row (``hils_spans`` tokens each) attended to the prefix
    (``hils_prefix``) and, causally, to itself."""
    if hils_prefix is None or hils_spans is None or query.shape[0] != 1 or sum(hils_spans) != query.shape[2]:
        raise ValueError(f"{NAME} attends one row of questions: pass hils_prefix and hils_spans summing to its length")
    if dropout or kwargs.get("softcap") is not None:
        raise ValueError(f"{NAME} scores without attention dropout or soft caps")
    # grouped keys and values as they are: SDPA repeats them for the query heads (enable_gqa), cheaper than copying
    gqa = query.shape[1] != key.shape[1]
    prefix_keys = prefix_values = None
    if hils_prefix.length:
        layer = getattr(module, "layer_idx", None)
        if layer is None:
            raise ValueError(
                f"{NAME} finds a layer's prefix keys by its attention module's layer_idx, which "
                f"{type(module).__name__} lacks: set the model's attention to 'eager' to score it in padded batches"
            )
        prefix_keys = hils_prefix.keys[layer].to(query.dtype)
        prefix_values = hils_prefix.values[layer].to(query.dtype)
    outputs = []
    for q, k, v in zip(query.split(hils_spans, 2), key.split(hils_spans, 2), value.split(hils_spans, 2)):
        if prefix_keys is None:
            outputs.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling, enable_gqa=gqa))
            continue
        k, v = torch.cat([prefix_keys, k], 2), torch.cat([prefix_values, v], 2)
        mask = hils_prefix.mask(q.shape[2], q.dtype)
        outputs.append(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scaling, enable_gqa=gqa))
    return torch.cat([out.transpose(1, 2) for out in outputs], 1), None  # (1, row, heads, head dim)


def fits(model, prefix: int, spans: list[int]) -> bool:
    """Whether ``model`` can score ``spans`` after a ``prefix`` this way: a CPU model attending with ``sdpa``, no
    attention soft cap, and every prompt within a sliding window it may have.

    >>> from types import SimpleNamespace as NS
    >>> cpu = NS(device=torch.device("cpu"))
    >>> model = NS(config=NS(_attn_implementation="sdpa", sliding_window=64), parameters=lambda: iter([cpu]))
    >>> fits(model, 31, [20, 33]), fits(model, 31, [20, 34])
    (True, False)
    """
    config = model.config
    window = getattr(config, "sliding_window", None)
    return (
        next(model.parameters()).device.type == "cpu"
        and getattr(config, "_attn_implementation", None) == "sdpa"
        and getattr(config, "attn_logit_softcapping", None) is None
        and (window is None or prefix + max(spans) <= window)
    )


@contextlib.contextmanager
def prefix_attention(model):
    """Within the block ``model`` attends with :func:`prefix_sdpa` (and transformers builds no masks)."""
    with attention_function(model, NAME, prefix_sdpa):
        yield model
