"""Swap a model's attention function for the length of a block.

transformers looks a model's attention up by name (``config._attn_implementation``) in its ``AttentionInterface``;
the kit registers its own functions there (attention per question in training and in scoring) and uses them only
within a block, so a model leaves it as it came.

>>> import torch.nn.functional as F
>>> def plain(module, q, k, v, mask, scaling=None, **kwargs):                                   # doctest: +SKIP
...     return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling).transpose(1, 2), None
>>> with attention_function(model, "plain_sdpa", plain):                                       # doctest: +SKIP
...     model(input_ids)
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def attention_function(model, name: str, function, mask_function=None):
    """Within the block ``model`` attends with ``function``, registered as ``name``; ``mask_function`` builds the masks
    it gets (none: transformers builds no mask), as ``transformers.masking_utils.sdpa_mask`` does for ``sdpa``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(name, function)
    if mask_function is not None:
        AttentionMaskInterface.register(name, mask_function)
    before = model.config._attn_implementation
    model.set_attn_implementation(name)
    try:
        yield model
    finally:
        model.set_attn_implementation(before)
