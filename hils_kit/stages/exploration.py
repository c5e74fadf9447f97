"""Stage 01, ``01_data_exploration``: what a study trains and tests on. Owns the notebook's parameters
(:class:`ExplorationParams`); its steps are in :mod:`hils_kit.data.explore`, its summary file is
:data:`hils_kit.core.layout.EXPLORATION_SUMMARY`.

>>> ExplorationParams().compare_with
['medqa', 'mmlu_medical']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hils_kit.core.params import param, same_as
from hils_kit.stages.prepare import PrepareParams


@dataclass
class ExplorationParams:
    """``01_data_exploration``."""

    study: str = same_as(PrepareParams, "study")
    train_data: str = same_as(PrepareParams, "train_data", derived=True)
    train_format: Optional[str] = same_as(PrepareParams, "train_format", derived=True)
    compare_with: list[str] = param(["medqa", "mmlu_medical"], "other data sets to compare with", derived=True)
    tokenizer_model: str = param("smollm2", "tokenizer that counts prompt tokens, empty: skip", derived=True)
    out_dir: str = param("runs/explore/exploration", "where summary.json goes", derived=True)
