"""Where the kit keeps things: the project root, the model cache and atomic file writes.

>>> from hils_kit.paths import write_text_atomic
>>> write_text_atomic("/tmp/hils_kit_paths_doc.txt", "written whole or not at all").read_text()
'written whole or not at all'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
PARAMS_DIR = PROJ_ROOT / "params"
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"
REPORTS_DIR = PROJ_ROOT / "reports"
RUNS_DIR = PROJ_ROOT / "runs"


def cache_dir() -> Path:
    """The kit's cache (converted models, labels): ``$HILS_CACHE`` or ``~/.cache/hils_kit``."""
    env = os.environ.get("HILS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hils_kit"


@contextlib.contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds.

    Works for files and folders, so a crash never leaves a half-written output behind.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)
