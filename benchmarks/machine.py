"""What the benchmarks measure the machine with: the GEMM peak of a dtype, and peak RSS since a reset.

>>> gemm_peak("float32", size=256, repeats=1) > 0
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
