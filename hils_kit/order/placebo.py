"""Placebo labels: the labels a strategy orders by, shuffled among the questions so they mean nothing.

A placebo twin (``curriculum_placebo``, ...) orders exactly as its strategy does, on these labels. One permutation
moves each question's labels (difficulty and category together) to another question, so the category sizes and the
multiset of difficulties stay the same: block lengths, tier sizes and rounds keep their shape.

A permutation is kept when it carries nothing of the real labels: Spearman's rank r between the real and the
shuffled difficulty, and Cohen's kappa between the real and the shuffled category (agreement beyond the chance
level ``sum (n_c / n)^2`` a shuffle keeps anyway; Cramér's V would not do, it grows with the number of categories
even for a random shuffle), both below :data:`MAX_ASSOCIATION` in absolute value (0.2: "slight" agreement, a
negligible rank correlation). Permutations are drawn from ``(seed, attempt)`` for attempt 0, 1, ... up to
:data:`MAX_ATTEMPTS`; when none passes (a handful of questions) the least associated one is kept, flagged
``uncorrelated: False``.

>>> labels = draw_placebo(np.arange(200.0), np.array(list("ab") * 100), seed=0)
>>> sorted(labels.record()), labels.uncorrelated
(['attempt', 'category_kappa', 'difficulty_rank_r', 'uncorrelated'], True)
>>> abs(labels.difficulty_rank_r) < MAX_ASSOCIATION and abs(labels.category_kappa) < MAX_ASSOCIATION
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MAX_ASSOCIATION = 0.2
MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class PlaceboLabels:
    """A drawn permutation (question i takes the labels of question ``permutation[i]``) and how it was checked."""

    permutation: np.ndarray
    attempt: int
    difficulty_rank_r: float | None  # None: the strategy uses no difficulty, or every question has the same
    category_kappa: float | None  # None: the strategy uses no categories, or there is only one
    uncorrelated: bool

    def record(self) -> dict:
        """What a cell records: the attempt, both associations and whether they passed."""
        return {
            "attempt": self.attempt,
            "difficulty_rank_r": self.difficulty_rank_r,
            "category_kappa": self.category_kappa,
            "uncorrelated": self.uncorrelated,
        }


def rank_r(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (ties share their mean rank); None when either side is constant.

    >>> rank_r(np.array([1.0, 2, 3]), np.array([30.0, 20, 10]))
    -1.0
    """
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if len(a) < 2 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two labellings with the same label counts; None when there is a single label.

    >>> kappa(np.array(list("aabb")), np.array(list("abab")))
    0.0
    """
    _, counts = np.unique(a, return_counts=True)
    chance = float(np.sum((counts / len(a)) ** 2))
    if chance >= 1:
        return None
    return (float(np.mean(a == b)) - chance) / (1 - chance)


def draw_placebo(difficulty: np.ndarray | None, category: np.ndarray | None, seed: int) -> PlaceboLabels:
    """The first permutation from ``(seed, 0)``, ``(seed, 1)``, ... whose shuffled labels are uncorrelated with
    ``difficulty`` and ``category`` (either may be None: the strategy does not use it)."""
    n = len(difficulty if difficulty is not None else category)
    best = None
    for attempt in range(MAX_ATTEMPTS):
        permutation = np.random.default_rng([seed, attempt]).permutation(n)
        r = None if difficulty is None else rank_r(difficulty, difficulty[permutation])
        k = None if category is None else kappa(category, category[permutation])
        worst = max(abs(v) for v in (r, k, 0.0) if v is not None)
        labels = PlaceboLabels(permutation, attempt, r, k, worst < MAX_ASSOCIATION)
        if labels.uncorrelated:
            return labels
        if best is None or worst < best[0]:
            best = (worst, labels)
    return best[1]


def placebo_text(record: dict) -> str:
    """One line on a recorded check (:meth:`PlaceboLabels.record`).

    >>> placebo_text({"difficulty_rank_r": 0.031, "category_kappa": None, "uncorrelated": True})
    'rank r with the real difficulty 0.031; uncorrelated'
    """
    parts = [
        f"{label} {record[key]:.3f}"
        for key, label in (
            ("difficulty_rank_r", "rank r with the real difficulty"),
            ("category_kappa", "kappa with the real category"),
        )
        if record.get(key) is not None
    ]
    verdict = (
        "uncorrelated"
        if record["uncorrelated"]
        else f"NOT uncorrelated (|value| >= {MAX_ASSOCIATION}: too few questions)"
    )
    return "; ".join([*parts, verdict])
