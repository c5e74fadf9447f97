"""A model's matrix shapes: what ``auto`` precision is timed on (:mod:`hils_kit.core.precision_timing`).

>>> model_shapes("tiny")
((256, 32, 64), (256, 64, 32), (256, 32, 32))
"""

from __future__ import annotations

import json
from pathlib import Path

from hils_kit.core.precision_timing import SHAPES, config_shapes
from hils_kit.models.loading import EMBEDDED, model_path


def model_shapes(*models) -> tuple:
    """The shapes to time for ``models`` (names, folders, hub ids, loaded models or their configs): those of the
    largest, read from its ``config.json`` when it is a local model; :data:`SHAPES` when none is known."""
    found = []
    for model in models:
        config = getattr(model, "config", model)
        if isinstance(model, (str, Path)):
            config = _local_config(str(model))
        shapes = config_shapes(config) if config is not None else None
        if shapes is not None:
            found.append(shapes)
    return max(found, key=lambda shapes: shapes[0][1] * shapes[0][2]) if found else SHAPES


def _local_config(name: str) -> dict | None:
    """The ``config.json`` of a kit model name or a local folder (built or converted once); ``None`` for a hub
    id, whose files may not be here."""
    if name.lower() not in EMBEDDED and not Path(name).expanduser().is_dir():
        return None
    path = Path(model_path(name)) / "config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
