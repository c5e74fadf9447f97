"""Progress where a person waits, and nowhere else.

- In JupyterLab (a live kernel): a tqdm widget bar (``tqdm.auto``).
- In a notebook the study runner executes (``HILS_HEADLESS=1``): plain lines on the kernel process's own
  stderr (the terminal or the run's log), never in the saved notebook or its HTML page.
- In a terminal: a tqdm bar with rate and ETA; plain lines on stderr when it is not a terminal or with
  ``HILS_PROGRESS=log``. ``HILS_PROGRESS=off`` prints nothing anywhere.

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


def live_notebook() -> bool:
    """True in a Jupyter kernel a person is looking at: a kernel, not run headless by the study runner."""
    return in_notebook() and not headless()


def progress_off() -> bool:
    """True with ``HILS_PROGRESS=off``."""
    return os.environ.get("HILS_PROGRESS", "auto") == "off"


class _LogBar:
    """Writes ``desc: done/total (rate/s, ETA)`` to ``stream`` at most every ``every`` seconds and at the end."""

    def __init__(self, total: int, desc: str, stream, every: float = 15.0):
        self.total, self.desc, self.stream, self.every, self.n = total, desc, stream, every, 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every or self.n >= self.total:
            rate = self.n / max(now - self.start, 1e-9)
            eta = (self.total - self.n) / rate if rate > 0 else float("inf")
            print(f"{self.desc}: {self.n}/{self.total} ({rate:.1f}/s, ETA {eta:.0f} s)", file=self.stream, flush=True)
            self.last = now


class _Silent:
    """Counts without printing (``HILS_PROGRESS=off``)."""

    def update(self, n: int = 1) -> None:
        pass


def _kernel_terminal():
    """The kernel process's own stderr (the terminal or the run's log). ipykernel forwards what is written to
    file descriptor 2 into the notebook; its stderr's ``fileno()`` is the copy of the original it keeps."""
    try:
        return open(sys.stderr.fileno(), "w", encoding="utf-8", closefd=False)
    except (AttributeError, OSError):  # no forwarding: fd 2 is the terminal itself
        return sys.__stderr__


@contextlib.contextmanager
def progress_bar(total: int, desc: str = ""):
    """A context manager yielding an object with ``update(n)``, shown as the module docstring says."""
    mode = os.environ.get("HILS_PROGRESS", "auto")
    if mode == "off":
        yield _Silent()
    elif live_notebook() and mode != "log":
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=desc, unit="q") as bar:
            yield bar
    elif in_notebook():  # headless: the kernel process's own stderr, which papermill does not save
        yield _LogBar(total, desc, _kernel_terminal())
    elif mode == "log" or not sys.stderr.isatty():
        yield _LogBar(total, desc, sys.stderr)
    else:
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, unit="q", dynamic_ncols=True) as bar:
            yield bar
