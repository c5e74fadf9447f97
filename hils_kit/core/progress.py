"""Progress reporting that suits both a terminal and a notebook run by papermill.

In a terminal: a tqdm bar with rate and ETA. Inside a Jupyter kernel, when output is not a terminal, or
with ``HILS_PROGRESS=log``: a few plain lines, so executed notebooks keep no widget state.
``HILS_PROGRESS=off`` prints nothing.

>>> with progress_bar(total=3, desc="demo") as bar:
...     bar.update(3)
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

HEADLESS = "HILS_HEADLESS"  # set to 1 by the study runner in the notebooks it executes


def headless() -> bool:
    """True in a notebook the study runner executes (``HILS_HEADLESS=1``): nobody is there to move a widget.

    >>> headless() in (True, False)
    True
    """
    return os.environ.get(HEADLESS) == "1"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where tqdm would save widgets into the notebook)."""
    return "ipykernel" in sys.modules


class _LogBar:
    """Prints ``desc: done/total (rate/s, ETA)`` at most every ``every`` seconds and at the end."""

    def __init__(self, total: int, desc: str, every: float = 15.0):
        self.total, self.desc, self.every, self.n = total, desc, every, 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every or self.n >= self.total:
            rate = self.n / max(now - self.start, 1e-9)
            eta = (self.total - self.n) / rate if rate > 0 else float("inf")
            print(f"{self.desc}: {self.n}/{self.total} ({rate:.1f}/s, ETA {eta:.0f} s)", flush=True)
            self.last = now


class _Silent:
    """Counts without printing (``HILS_PROGRESS=off``)."""

    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, desc: str = ""):
    """A context manager yielding an object with ``update(n)``."""
    mode = os.environ.get("HILS_PROGRESS", "auto")
    if mode == "off":
        yield _Silent()
    elif mode == "log" or in_notebook() or not sys.stderr.isatty():
        yield _LogBar(total, desc)
    else:
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, unit="q", dynamic_ncols=True) as bar:
            yield bar
