"""bf16 copies of a CPU model's weights, made once, for work under bf16 autocast.

Under ``torch.autocast(dtype=torch.bfloat16)`` every ``Linear`` casts its fp32 weight to bf16 at every call:
autocast keeps a cast only for weights that require a gradient, so a LoRA model's frozen base weights, and every
weight while scoring, are read in fp32 and written in bf16 again at every forward pass. For SmolLM2-135M on a
2-core Xeon with AMX that was 34 % of the scorer's operator time (2026-12-04).

- Training (:func:`bf16_linear_weights`): the frozen ``Linear`` weights are bf16 copies made once per run; autocast
  then casts only the activations. The results are the same bit for bit, since autocast would have computed those
  products in bf16 from the same rounded weights (``tests/test_bf16_weights.py``).
- Scoring (:func:`bf16_model_weights`): every weight is a bf16 copy, the embedding and the norms' too, so the model
  computes as if loaded in bf16 (the same probabilities bit for bit) and no activation is cast before a product.

The fp32 weights are kept and put back when the block ends. CPU only: on a GPU the kit loads the weights in bf16
for bf16 work (:func:`hils_kit.models.loading.weights_dtype`).

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
def bf16_linear_weights(model: torch.nn.Module):
    """Within the block, the frozen fp32 CPU weights of ``model``'s ``torch.nn.Linear`` layers are bf16 copies (the
    trained ones stay fp32 for the optimizer). Weights shared by several layers (tied embeddings) are copied for the
    ``Linear`` alone; the other layers keep the fp32 weight.
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
                and not weight.requires_grad
            ):
                module._parameters["weight"] = torch.nn.Parameter(weight.to(torch.bfloat16), requires_grad=False)
                swapped.append((module, weight))
    try:
        yield model
    finally:
        for module, weight in swapped:
            module._parameters["weight"] = weight


@contextlib.contextmanager
def bf16_model_weights(model: torch.nn.Module):
    """Within the block, every fp32 CPU parameter of ``model`` is a bf16 copy (tied ones share one): the model as if
    loaded in bf16, for scoring under bf16 autocast; the fp32 parameters are put back when the block ends.

    Beyond :func:`bf16_linear_weights`, the embedding and the norms' weights are bf16 too, so the residual stream
    is: no activation is cast before a product, and the element-wise work moves half the bytes. SmolLM2-135M, frozen
    as a trained cell's base, scored 64 MedMCQA questions 1.17x faster so than with bf16 linear weights alone
    (1.68-1.72 s against 1.97-2.04 s, alternating, a 2-core Xeon with AMX, 2026-12-04), its letter probabilities
    those of the model loaded in bf16 and within 0.044 of fp32's (0.039 before), the same predictions as fp32's on
    64 of 64.

    >>> model = torch.nn.Sequential(torch.nn.Embedding(4, 4), torch.nn.LayerNorm(4))
    >>> with bf16_model_weights(model):
    ...     {p.dtype for p in model.parameters()}
    {torch.bfloat16}
    >>> {p.dtype for p in model.parameters()}
    {torch.float32}
    """
    copies, swapped = {}, []
    with torch.no_grad():
        for module in model.modules():
            for name, weight in list(module._parameters.items()):
                if (
                    isinstance(weight, torch.nn.Parameter)
                    and weight.dtype == torch.float32
                    and weight.device.type == "cpu"
                ):
                    if id(weight) not in copies:
                        copies[id(weight)] = torch.nn.Parameter(weight.to(torch.bfloat16), requires_grad=False)
                    module._parameters[name] = copies[id(weight)]
                    swapped.append((module, name, weight))
    try:
        yield model
    finally:
        for module, name, weight in swapped:
            module._parameters[name] = weight
