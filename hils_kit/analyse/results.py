"""A cell's results: what ``03_train_evaluate`` writes into ``results.json`` and the analysis reads.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> path = CellResults({"cell_id": "c", "model": "tiny", "strategy": "random", "scenario": "none", "replicate": 0},
...                    {"medqa": {"accuracy": 0.25}}).write(folder)
>>> CellResults.read(path).metrics
{'medqa': {'accuracy': 0.25}}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hils_kit.core.layout import CellFiles
from hils_kit.core.paths import write_text_atomic


@dataclass
class CellResults:
    """A cell's ``results.json``: its parameters, metrics per test set, the training summary, and per test set the
    number of questions the leakage guard dropped because they overlap the training or labelling questions."""

    cell: dict
    metrics: dict
    train: dict = field(default_factory=dict)
    test_overlap_dropped: dict = field(default_factory=dict)

    def write(self, cell_dir: str | Path) -> Path:
        """Write ``results.json`` atomically into ``cell_dir``."""
        return write_text_atomic(CellFiles(cell_dir).results, json.dumps(asdict(self), indent=1, default=str))

    @classmethod
    def read(cls, path: str | Path) -> CellResults:
        """Read and check a ``results.json``; a clear error names the file and the field."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        for part in ("cell", "metrics"):
            if not isinstance(data, dict) or not isinstance(data.get(part), dict):
                raise ValueError(f"{path}: field '{part}' is missing or not an object")
        cell = data["cell"]
        for key in ("cell_id", "model", "strategy", "scenario", "replicate"):
            if key not in cell:
                raise ValueError(f"{path}: field 'cell.{key}' is missing")
            if key != "replicate" and not (isinstance(cell[key], str) and cell[key]):
                raise ValueError(f"{path}: field 'cell.{key}' must be a non-empty string, got {cell[key]!r}")
        if not data["metrics"]:
            raise ValueError(f"{path}: field 'metrics' has no test sets")
        for name, scores in data["metrics"].items():
            accuracy = scores.get("accuracy") if isinstance(scores, dict) else None
            if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
                raise ValueError(
                    f"{path}: field 'metrics.{name}.accuracy' is missing or not a share in [0, 1] (got {accuracy!r})"
                )
        return cls(cell, data["metrics"], data.get("train") or {}, data.get("test_overlap_dropped") or {})


def read_manifest(path: str | Path, required=("study", "steps", "cells")) -> dict:
    """A ``manifest.json`` written by :func:`write_manifest`; a clear error when it is missing or unreadable."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no manifest (run `hils study` first)") from None
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); rerun `hils study` to rewrite it") from None
    for key in required:
        if key not in manifest:
            raise ValueError(f"{path}: field '{key}' is missing; rerun `hils study` to rewrite it")
    return manifest
