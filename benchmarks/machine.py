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


def gemm_peak(dtype: str = "float32", size: int = 2048, repeats: int = 3) -> float:
    """Best of ``repeats`` ``size``³ matmuls in ``dtype`` (a torch dtype name), in FLOP/s."""
    import torch

    a, b = (torch.randn(size, size, dtype=getattr(torch, dtype)) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
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
