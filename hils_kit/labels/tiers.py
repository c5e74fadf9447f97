"""Difficulty tiers: easy / medium / hard by two cut points on a difficulty scale where higher is harder.

``easy: d < lo``, ``medium: lo <= d < hi``, ``hard: d >= hi``. For human difficulty (examinee error rate)
this is exactly the paper code's rule on the share correct (easy > 0.94, hard <= 0.85); for LLM difficulty
it differs from the code (easy <= 0.66, hard > 0.80) only at exact ties. Without cut points the tiers are
the terciles of the values. The labelling step (:mod:`hils_kit.labels.difficulty`) and the orderings
(:mod:`hils_kit.order.orderings`) both use this one rule.

>>> tier_codes([0.1, 0.7, 0.66, 0.8, 0.9], "llm").tolist()
[0, 1, 1, 2, 2]
>>> tier_names(pd.Series([0.02, 0.10, 0.40]), HUMAN_THRESHOLDS).tolist()
['easy', 'medium', 'hard']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIERS = ("easy", "medium", "hard")
# Paper code cut points (not reported in the paper), on a difficulty scale where higher is harder.
HUMAN_THRESHOLDS = (0.06, 0.15)  # examinee error rate, 1 - share correct (LEK)
LLM_THRESHOLDS = (0.66, 0.80)  # LLM difficulty, 1 - mean p(correct) over four LLMs (MedQA train)
THRESHOLDS = {"human": HUMAN_THRESHOLDS, "llm": LLM_THRESHOLDS}


def resolve_thresholds(thresholds, values) -> tuple[float, float]:
    """``(lo, hi)`` from a pair, a name in :data:`THRESHOLDS`, or the terciles of ``values`` when None."""
    if thresholds is None:
        values = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float)
        if values.size == 0:
            raise ValueError("cannot take terciles of an empty or all-NaN difficulty")
        lo, hi = np.quantile(values, [1 / 3, 2 / 3])
        return float(lo), float(hi)
    if isinstance(thresholds, str):
        if thresholds not in THRESHOLDS:
            raise ValueError(f"thresholds '{thresholds}' is not one of {', '.join(THRESHOLDS)} (or a pair lo,hi)")
        return THRESHOLDS[thresholds]
    lo, hi = (float(t) for t in thresholds)
    if not lo <= hi:
        raise ValueError(f"thresholds ({lo}, {hi}): the easy cut point must not exceed the hard one")
    return lo, hi


def tier_codes(values, thresholds=None) -> np.ndarray:
    """Tier codes 0 (easy), 1 (medium), 2 (hard) of each value; names in :data:`TIERS`."""
    values = np.asarray(values, dtype=float)
    lo, hi = resolve_thresholds(thresholds, values)
    return np.searchsorted([lo, hi], values, side="right")


def tier_names(difficulty: pd.Series, thresholds=None) -> pd.Series:
    """ "easy"/"medium"/"hard" per question (the labelled :func:`tier_codes`); NaN difficulty gives NaN."""
    d = pd.to_numeric(pd.Series(difficulty), errors="coerce")
    cuts = resolve_thresholds(thresholds, d)
    known = d.dropna()
    labels = np.array(TIERS, dtype=object)[tier_codes(known.to_numpy(), cuts)]
    return pd.Series(labels, index=known.index, name="tier").reindex(d.index)
