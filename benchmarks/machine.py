"""What the benchmarks measure the machine with: the GEMM peak of a dtype, a model's own matrix products alone, and
peak RSS since a reset.

>>> gemm_peak("float32", size=256, repeats=1) > 0
True
>>> import torch
>>> products_seconds([torch.ones(8, 4)], [16], "float32", repeats=1) > 0
True
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
from pathlib import Path


def gemm_peak(dtype: str = "float32", size: int | None = None, repeats: int = 3, device: str = "cpu") -> float:
    """Best of ``repeats`` ``size``³ matmuls in ``dtype`` (a torch dtype name) on ``device``, in FLOP/s.

    ``size``: 2048 on a CPU, 8192 on a GPU (a 2048³ product is too short to fill an H200: 589 against 779
    TFLOP/s in bf16). On a GPU fp32 is fp32 (TF32 stays off, as in the kit's fp32 runs) and each timing is of
    five products, synchronised.
    """
    import torch

    cuda = device.startswith("cuda")
    size = size or (8192 if cuda else 2048)
    a, b = (torch.randn(size, size, dtype=getattr(torch, dtype), device=device) for _ in range(2))
    calls = 5 if cuda else 1
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            a @ b
        sync()
        best = min(best, (time.perf_counter() - start) / calls)
    return 2 * size**3 / best


def products_seconds(weights: list, rows: list[int], dtype: str, backward: bool = False, repeats: int = 3) -> float:
    """Best of ``repeats`` times of the matrix products alone of ``weights`` (``out × in`` each) over activations of
    each of ``rows`` token counts, in ``dtype`` (weights and activations already in it, no casts), on the CPU.

    What a forward pass's products cost without anything else (norms, attention, casts, Python): with the useful
    FLOPs, the fraction of the GEMM peak that eager products of these shapes allow. ``backward``: also each
    product of the input's gradient (``grad @ W``), as training computes for frozen weights.
    """
    import torch

    kind = getattr(torch, dtype)
    weights = [w.detach().to(kind) for w in weights]
    inputs = {(r, n): torch.randn(r, n, dtype=kind) for r in rows for w in weights for n in w.shape}

    def run():
        for r in rows:
            for w in weights:
                torch.nn.functional.linear(inputs[r, w.shape[1]], w)
                if backward:
                    inputs[r, w.shape[0]] @ w

    with torch.inference_mode():
        run()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
    return best


def token_weights(model) -> int:
    """The weights every token goes through as a matrix product: the linear layers', without the LM head (the kit
    applies it at the answer positions only, in training and scoring) and without LoRA's own factors.

    Useful FLOPs per real token are 2 per such weight forward, 4 in training (forward and the input's gradient; the
    frozen weights take no gradient of their own). SmolLM2-135M: 106.2M of its 134.5M parameters (the rest is the
    embedding, tied to the head).
    """
    import torch

    head = model.get_output_embeddings()
    return sum(
        module.weight.numel()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head and "lora_" not in name
    )


def reset_peak_rss() -> None:
    """Free what earlier work left (glibc keeps freed heap otherwise), then restart the peak RSS count."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """The process's peak resident memory since :func:`reset_peak_rss` (``VmHWM``), in MiB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
