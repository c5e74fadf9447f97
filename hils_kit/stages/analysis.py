"""Stage 04, ``04_analysis``: the study's tables, figures and tests. Owns the notebook's parameters
(:class:`AnalysisParams`); its steps are :func:`hils_kit.analyse.report.analyse_study`, its files
:data:`hils_kit.core.layout.ARTEFACTS`.

>>> AnalysisParams(run_dir="runs/demo").out_dir
'runs/explore/analysis'
"""

from __future__ import annotations

from dataclasses import dataclass

from hils_kit.analyse.comparisons import RUN_SD_POINTS
from hils_kit.core.params import param, same_as
from hils_kit.stages.prepare import PrepareParams


@dataclass
class AnalysisParams:
    """``04_analysis``."""

    study: str = same_as(PrepareParams, "study")
    run_dir: str = param("runs/explore", "the study's run folder (holds manifest.json, cells/)", derived=True)
    difficulty_models: list[str] = param(
        [], "models that scored the LLM difficulty (the report says when they are also fine-tuned)", derived=True
    )
    out_dir: str = param("runs/explore/analysis", "where tables (CSV) and figures (PNG) go", derived=True)
    alpha: float = param(0.05, "family-wise error rate of the strategy claims (Holm; Benjamini–Hochberg beside it)")
    run_sd_points: float = param(
        RUN_SD_POINTS, "run-to-run sd of accuracy (points) assumed for power where a strategy has one run"
    )
    target_points: float = param(2.0, "the accuracy difference (points) the runs and questions needed are planned for")
