"""keep_freed_memory(): large blocks freed by one pass are reused by the next, without fresh page faults."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

COUNT = """
import resource, torch
from hils_kit.core.allocator import keep_freed_memory

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.empty(40 << 20, dtype=torch.uint8).fill_(1)  # 40 MB: above glibc's highest dynamic threshold
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
default = faults()
assert keep_freed_memory() and keep_freed_memory()  # set once, then cached
faults()
print(default, faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_blocks_are_reused_without_page_faults():
    # a fresh process: the setting is the process's for good
    out = subprocess.run([sys.executable, "-c", COUNT], capture_output=True, text=True, check=True).stdout
    default, kept = map(int, out.split())
    assert default > 20 * (40 << 20) // 4096 // 2  # every pass faulted its pages in again
    assert kept < default / 20
