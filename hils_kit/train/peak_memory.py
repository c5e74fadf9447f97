"""Peak memory of a training run: CUDA's allocator peak, or on CPU the process's peak RSS since a reset.

>>> reset_peak_memory("cpu") and peak_memory_mb("cpu", True)[0] > 0
True
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
from pathlib import Path

import torch


def reset_peak_memory(device: str) -> bool:
    """Start peak-memory tracking at zero (CUDA allocator; Linux peak RSS via clear_refs); False if impossible.

    On CPU, freed heap (the transient buffers of model loading) is first handed back to the system (glibc
    ``malloc_trim``), so training neither holds it nor counts it.
    """
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return True
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb(device: str, was_reset: bool) -> tuple[float, str]:
    """Peak memory since the reset, and what the number measures."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20, "CUDA max_memory_allocated during training"
    if was_reset:
        status = Path("/proc/self/status").read_text().splitlines()
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        return kb / 1024, "peak RSS during training"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS (incl. model loading)"
