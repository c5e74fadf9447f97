"""LoRA's CPU training step as one autograd function per adapted linear layer, its dropout mask drawn cheaply.

peft computes an adapted layer as ``base(x) + lora_B(lora_A(dropout(x))) * scaling``: on a CPU that is, per layer
and step, a dropout mask drawn one value at a time (``bernoulli_``, 8.7 ns a value) and kept as a float tensor for
the backward pass, the dropped-out input kept again by ``lora_A``, and full-size element-wise passes for the
dropout, the scaling and the sum, each with its autograd node, and as many again backwards.

Within :func:`fused_lora` each adapted ``Linear`` computes ``y = x Wᵀ + s/(1-p) · ((x ∘ m) Aᵀ) Bᵀ`` in one
autograd function (:class:`LoraLinearFunction`): the low-rank product is added inside the matrix product that makes
it (``addmm_``), so the scaling and the sum cost no pass of their own, and the backward pass is four rank-``r``
products, the frozen weight's product and one fused multiply-add for the input's gradient. It keeps ``x`` (one
tensor for q/k/v and one for gate/up, which read the same input), the rank-``r`` product and the mask as bools
(1 byte a value, against 8 for peft's float noise and dropped-out copy). The mask ``m`` is :func:`keep_mask`:
each value kept with probability ``1 - p``, from numpy's SFC64 generator seeded by one draw from torch's generator,
so ``torch.manual_seed`` (the Trainer's ``seed``) fixes every mask. The masks are not the values peft's dropout
draws (another generator) but the same distribution, and the losses and gradients are those of peft's LoRA with
these masks up to float rounding (``tests/test_fused_lora.py``). Under bf16 autocast the layer computes in bf16 as
autocast would, the input cast once for both products and the low-rank term added in the product's fp32
accumulator: nearer fp32 than peft's bf16 (one rounding fewer).

CPU tensors only: on CUDA torch's dropout keeps a bool mask and draws in parallel, and the layers stay peft's.
Evaluation (no gradient or eval mode) and anything but one plain adapter (DoRA, several adapters, merged weights,
``lora_bias``, ``fan_in_fan_out``) run peft's own forward.

>>> from hils_kit.train.training import build_trainer                                 # doctest: +SKIP
>>> trainer = build_trainer(table, "smollm2", config, "runs/x", "cpu")         # doctest: +SKIP
>>> with fused_lora(trainer.model):                                             # doctest: +SKIP
...     trainer.train()
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np
import torch
import torch.nn.functional as F


def draw_seed() -> int:
    """A mask's seed: one draw from torch's default generator (so ``torch.manual_seed`` fixes the masks)."""
    return int(torch.randint(0, 2**62, ()))


_MASK64 = 2**64 - 1
_THREAD = threading.local()


def sfc64(seed: int) -> np.random.SFC64:
    """This thread's SFC64 generator, its state set from ``seed`` by splitmix64 (the usual seeding of a 64-bit
    generator from one number): 2 µs, where ``np.random.SFC64(seed)`` builds a ``SeedSequence`` each time (6 µs
    alone, 60 µs amid training)."""
    words = []
    for _ in range(3):
        seed = (seed + 0x9E3779B97F4A7C15) & _MASK64
        z = ((seed ^ (seed >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        words.append(z ^ (z >> 31))
    generator = getattr(_THREAD, "sfc64", None) or np.random.SFC64(0)
    _THREAD.sfc64 = generator
    state = np.array([*words, 1], dtype=np.uint64)  # a, b, c and the counter
    generator.state = {"bit_generator": "SFC64", "state": {"state": state}, "has_uint32": 0, "uinteger": 0}
    return generator


def keep_mask(seed: int, shape, p: float) -> torch.Tensor:
    """The bool mask of ``shape`` that keeps each value with probability ``1 - p``, drawn from ``seed``.

    A value is dropped when a 32-bit uniform draw is below ``round(p * 2**32)``. The draw's top 8 bits decide all
    but one value in 256; only those whose top byte equals the threshold's draw their low 24 bits: the same
    probability as whole 32-bit draws, from a quarter of the random bits (2-3x faster on SmolLM2's layers).

    >>> mask = keep_mask(7, (1000, 100), 0.1)
    >>> mask.dtype, round(mask.float().mean().item(), 2), torch.equal(mask, keep_mask(7, (1000, 100), 0.1))
    (torch.bool, 0.9, True)
    """
    n = math.prod(shape)
    threshold = round(p * 2**32)
    top_threshold, low_threshold = threshold >> 24, threshold & 0xFFFFFF
    generator = sfc64(seed)
    top = generator.random_raw((n + 7) // 8).view(np.uint8)[:n]
    keep = top > top_threshold
    ties = np.flatnonzero(top == top_threshold)
    keep[ties] = (generator.random_raw(ties.size) & 0xFFFFFF) >= low_threshold
    return torch.from_numpy(keep).view(shape)


def dropped(x: torch.Tensor, seed: int, p: float) -> torch.Tensor:
    """``x`` with the values :func:`keep_mask` drops set to zero and the others scaled by ``1 / (1 - p)``."""
    return x.mul(keep_mask(seed, x.shape, p)).mul_(1 / (1 - p))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a ``Linear`` on ``x`` computes in here: autocast's, else ``x``'s."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


class LoraLinearFunction(torch.autograd.Function):
    """``F.linear(x, weight, bias) + scale * F.linear(F.linear(dropout(x, p), lora_a), lora_b)`` on a CPU, the
    dropout's mask drawn by :func:`keep_mask` and kept as bytes for the backward pass; ``weight`` and ``bias`` take
    no gradient (LoRA's frozen base layer)."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scale: float, p: float):
        dtype = _compute_dtype(x)
        ctx.dtype, ctx.k = dtype, scale / (1 - p)
        with torch.autocast("cpu", enabled=False):
            xc = x.to(dtype)
            y = F.linear(xc, weight.to(dtype), None if bias is None else bias.to(dtype))
            # as 0/1 bytes: a float times uint8 is one pass (a bool, or a float mask made first, 2-3x slower)
            mask = keep_mask(draw_seed(), x.shape, p).view(torch.uint8) if p else None
            if mask is not None:
                xc = xc * mask
            low = F.linear(xc, lora_a.to(dtype))  # (…, r): the dropped-out input's low-rank product
            y.view(-1, y.shape[-1]).addmm_(low.view(-1, low.shape[-1]), lora_b.to(dtype).t(), alpha=ctx.k)
        ctx.save_for_backward(x, mask, weight, lora_a, lora_b, low)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, mask, weight, lora_a, lora_b, low = ctx.saved_tensors
        dtype, k = ctx.dtype, ctx.k
        with torch.autocast("cpu", enabled=False):
            grad = grad.to(dtype).reshape(-1, grad.shape[-1])
            grad_low = (grad @ lora_b.to(dtype)).mul_(k)  # (tokens, r)
            grad_b = (grad.t() @ low.reshape(-1, low.shape[-1])).mul_(k).to(lora_b.dtype)
            dropped_x = x.to(dtype).reshape(-1, x.shape[-1])
            if mask is not None:
                mask = mask.view(dropped_x.shape)
                dropped_x = dropped_x * mask
            grad_a = (grad_low.t() @ dropped_x).to(lora_a.dtype)
            grad_x = None
            if ctx.needs_input_grad[0]:
                # summed in x's dtype, as autograd sums the two branches' gradients (fp32 under autocast)
                grad_x = (grad @ weight.to(dtype)).to(x.dtype)
                lora_grad_x = grad_low @ lora_a.to(dtype)
                if mask is None:
                    grad_x.add_(lora_grad_x)
                else:
                    grad_x.addcmul_(lora_grad_x, mask)
                grad_x = grad_x.view(x.shape)
        return grad_x, None, None, grad_a, grad_b, None, None


def _lora_linear_class():
    from peft.tuners.lora.layer import Linear

    class FusedLoraLinear(Linear):
        """peft's LoRA ``Linear`` whose training forward is :class:`LoraLinearFunction`."""

        def forward(self, x, *args, **kwargs):
            names = self.active_adapters
            if (
                self.training
                and torch.is_grad_enabled()
                and x.device.type == "cpu"
                and not (args or kwargs or self.disable_adapters or self.merged)
                and len(names) == 1
                and names[0] in self.lora_A
            ):
                name, base = names[0], self.base_layer
                dropout = self.lora_dropout[name]
                p = dropout.p if isinstance(dropout, torch.nn.Dropout) else 0.0
                return LoraLinearFunction.apply(
                    x, base.weight, base.bias, self.lora_A[name].weight, self.lora_B[name].weight, self.scaling[name], p
                )
            return super().forward(x, *args, **kwargs)

    return Linear, FusedLoraLinear


def _fusable(layer, linear_class) -> bool:
    """A plain peft LoRA ``Linear`` over a CPU ``torch.nn.Linear``: one function computes it."""
    if type(layer) is not linear_class or layer.fan_in_fan_out or getattr(layer, "lora_variant", {}):
        return False
    if type(layer.base_layer) is not torch.nn.Linear or layer.base_layer.weight.device.type != "cpu":
        return False
    return all(
        type(layer.lora_dropout[name]) in (torch.nn.Dropout, torch.nn.Identity)
        and type(layer.lora_A[name]) is torch.nn.Linear
        and layer.lora_A[name].bias is None
        and layer.lora_B[name].bias is None
        for name in layer.lora_A
    )


@contextlib.contextmanager
def fused_lora(model):
    """Within the block, every plain CPU LoRA ``Linear`` of ``model`` trains through :class:`LoraLinearFunction`
    (see the module's docstring); the modules' classes are restored afterwards. Parameters, their names (the
    adapter's state dict) and evaluation do not change."""
    linear, fused = _lora_linear_class()
    swapped = [layer for layer in model.modules() if _fusable(layer, linear)]
    for layer in swapped:
        layer.__class__ = fused
    try:
        yield model
    finally:
        for layer in swapped:
            layer.__class__ = linear
