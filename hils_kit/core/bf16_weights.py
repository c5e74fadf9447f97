"""bf16 copies of a CPU model's linear weights, made once, for work under bf16 autocast.

Under ``torch.autocast(dtype=torch.bfloat16)`` every ``Linear`` casts its fp32 weight to bf16 at every call:
autocast keeps a cast only for weights that require a gradient, so a LoRA model's frozen base weights, and every
weight while scoring, are read in fp32 and written in bf16 again at every forward pass. For SmolLM2-135M on a
2-core Xeon with AMX that was 34 % of the scorer's operator time (2026-12-04). Within :func:`bf16_linear_weights`
those weights are bf16 copies made once; autocast then casts only the activations. The results are the same bit for
bit, since autocast would have computed those products in bf16 from the same rounded weights
(``tests/test_bf16_weights.py``). The fp32 weights are kept and put back when the block ends.

CPU only: on a GPU the copies would cost half as much memory again as the fp32 weights, and casting there is cheap.

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 4)).requires_grad_(False)
>>> with bf16_linear_weights(model):
...     model[0].weight.dtype
torch.bfloat16
>>> model[0].weight.dtype
torch.float32
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def bf16_linear_weights(model: torch.nn.Module, trainable: bool = False):
    """Within the block, the fp32 CPU weights of ``model``'s ``torch.nn.Linear`` layers are bf16 copies.

    ``trainable``: also the weights that require a gradient (for scoring, where none is computed); by default only
    the frozen ones (for training, where the optimizer updates the others in fp32). Weights shared by several
    layers (tied embeddings) are copied for the ``Linear`` alone; the other layers keep the fp32 weight.
    """
    swapped = []
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if (
                isinstance(module, torch.nn.Linear)
                and isinstance(weight, torch.nn.Parameter)
                and weight.dtype == torch.float32
                and weight.device.type == "cpu"
                and (trainable or not weight.requires_grad)
            ):
                module._parameters["weight"] = torch.nn.Parameter(weight.to(torch.bfloat16), requires_grad=False)
                swapped.append((module, weight))
    try:
        yield model
    finally:
        for module, weight in swapped:
            module._parameters["weight"] = weight
