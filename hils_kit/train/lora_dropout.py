"""LoRA dropout that keeps one bit per value for the backward pass instead of two float copies of the input.

peft's LoRA branch is ``lora_B(lora_A(dropout(x)))``. On CPU, torch's dropout multiplies ``x`` by a float
noise tensor; autograd keeps that noise (4 bytes per input value) and ``lora_A`` keeps the dropped-out input
(4 bytes more), in each of a decoder layer's seven LoRA modules: 40 KB per token and layer for SmolLM2, over
half of its training activations. Within :func:`lean_lora_dropout` each ``lora_A`` applies its dropout itself,
in one autograd function that keeps ``x`` (one tensor for q/k/v and one for gate/up, which read the same input)
and the dropout mask packed eight values to a byte, and rebuilds the noise in the backward pass. The random
draws are torch's own (the same ``bernoulli_`` on the same shapes in the same order), so the forward values are
identical, and so were the gradients, bit for bit, in fp32 and under bf16 autocast on the 2-core AVX2 machine
measured (``tests/test_lora_dropout.py`` allows float rounding of the matrix products). SmolLM2, one padding-free row of
349 tokens: 738 MB kept for the backward pass with peft's dropout, 455 MB with this.

CPU tensors only: on CUDA torch's dropout already keeps a bool mask, and there the layers keep their own
dropout. Models without LoRA dropout (``lora_dropout=0``) are left as they are.

>>> from hils_kit.train.training import build_trainer                                 # doctest: +SKIP
>>> trainer = build_trainer(table, "smollm2", config, "runs/x", "cpu")         # doctest: +SKIP
>>> with lean_lora_dropout(trainer.model):                                      # doctest: +SKIP
...     trainer.train()
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

_BITS = torch.arange(8, dtype=torch.uint8)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor as a flat uint8 tensor of its bits, eight to a byte (the last byte padded with zeros).

    >>> mask = torch.tensor([[True, False, True], [False, False, True]])
    >>> pack_bits(mask).tolist(), torch.equal(unpack_bits(pack_bits(mask), mask.shape), mask)
    ([37], True)
    """
    flat = mask.reshape(-1)
    if flat.numel() % 8:
        flat = torch.cat([flat, flat.new_zeros(8 - flat.numel() % 8)])
    return (flat.view(-1, 8).view(torch.uint8) << _BITS).sum(-1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape) -> torch.Tensor:
    """The bool tensor of ``shape`` that :func:`pack_bits` packed."""
    n = torch.Size(shape).numel()
    return ((packed.unsqueeze(-1) >> _BITS) & 1).view(-1)[:n].view(shape).bool()


class _DropoutThenLinear(torch.autograd.Function):
    """``F.linear(F.dropout(x, p), weight)`` on CPU, keeping ``x`` and the dropout mask, one bit per value."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x, weight, p):
        noise = torch.empty_like(x).bernoulli_(1 - p).div_(1 - p)  # what torch's CPU dropout draws and applies
        ctx.p = p
        ctx.save_for_backward(x, weight, pack_bits(noise != 0))
        return F.linear(x * noise, weight)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        x, weight, packed = ctx.saved_tensors
        noise = unpack_bits(packed, x.shape).to(x.dtype).div_(1 - ctx.p)  # the forward's noise, bit for bit
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad @ weight) * noise
        if ctx.needs_input_grad[1]:
            grad_weight = grad.reshape(-1, grad.shape[-1]).t() @ (x * noise).reshape(-1, x.shape[-1])
        return grad_x, grad_weight, None


class _DropoutLinear(torch.nn.Linear):
    """A LoRA ``lora_A`` (a bias-free ``Linear``) that applies the layer's dropout ``dropout_p`` itself."""

    dropout_p: float

    def forward(self, x):
        if self.training and x.device.type == "cpu":
            return _DropoutThenLinear.apply(x, self.weight, self.dropout_p)
        return F.linear(F.dropout(x, self.dropout_p, self.training), self.weight)


def _lean_pairs(model):
    """``(lora_dropout dict, lora_A dict, adapter name)`` of every plain CPU LoRA branch with dropout."""
    from peft.tuners.lora import LoraLayer

    for layer in model.modules():
        if not isinstance(layer, LoraLayer):
            continue
        for name, lora_a in layer.lora_A.items():
            dropout = layer.lora_dropout[name]
            if (
                type(dropout) is torch.nn.Dropout
                and 0 < dropout.p < 1
                and type(lora_a) is torch.nn.Linear
                and lora_a.bias is None
                and lora_a.weight.device.type == "cpu"
                and name not in getattr(layer, "lora_variant", {})
            ):
                yield layer.lora_dropout, layer.lora_A, name


@contextlib.contextmanager
def lean_lora_dropout(model):
    """Within the block, every CPU LoRA branch of ``model`` with dropout keeps its input and a bit mask for its
    backward pass instead of two float copies (see the module's docstring); the modules are restored afterwards.
    Parameters and their names (the adapter's state dict) do not change."""
    swapped = []
    for dropouts, lora_as, name in list(_lean_pairs(model)):
        dropout, lora_a = dropouts[name], lora_as[name]
        lora_a.__class__, lora_a.dropout_p = _DropoutLinear, dropout.p
        dropouts[name] = torch.nn.Identity()
        swapped.append((dropouts, lora_a, name, dropout))
    try:
        yield model
    finally:
        for dropouts, lora_a, name, dropout in swapped:
            lora_a.__class__ = torch.nn.Linear
            del lora_a.dropout_p
            dropouts[name] = dropout
