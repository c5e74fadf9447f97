"""Metrics of a scored test set: accuracy with bootstrap intervals, letter bias, baselines, F1, categories.

A predictions table has one row per question with ``answer`` (gold letter), ``pred``, ``category`` and
``p_A``, ``p_B``, … (the scorer's probabilities over the question's option letters; NaN past its options).

Small models answer mostly one letter, so raw accuracy is read against two references:

* the **majority baseline**: the accuracy of always answering the most common gold letter of the set;
* the **debiased accuracy**: each letter's mean log-probability over the whole test set is subtracted
  from that letter's log-probability before the argmax (transductive calibration: it uses the test
  questions themselves, no labels). It removes a constant preference for one letter, nothing else.

Intervals are percentile bootstraps over questions (seeded; 1000 resamples by default); the debiased
accuracy recomputes the letter means inside every resample.

>>> import pandas as pd
>>> table = pd.DataFrame({"answer": list("ABAB"), "pred": list("AAAA"), "category": list("xxyy"),
...                       "p_A": [0.9, 0.6, 0.8, 0.7], "p_B": [0.1, 0.4, 0.2, 0.3]})
>>> s = summarize(table)
>>> s["accuracy"], s["debiased_accuracy"], s["majority_baseline"], s["predicted_letters"]
(0.5, 1.0, 0.5, {'A': 4, 'B': 0})
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from hils_kit.questions import LETTERS


def probability_columns(table: pd.DataFrame) -> list[str]:
    """The ``p_A``, ``p_B``, … columns present, in letter order."""
    return [f"p_{letter}" for letter in LETTERS if f"p_{letter}" in table.columns]


def debiased_predictions(probs: np.ndarray) -> np.ndarray:
    """Letters chosen after subtracting each letter's mean log-probability over all rows (NaN = no option).

    >>> debiased_predictions(np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]])).tolist()
    ['A', 'B', 'A']
    """
    logp = np.log(np.clip(np.asarray(probs, dtype=float), 1e-300, None))
    valid = ~np.isnan(logp)
    letter_mean = np.where(valid, logp, 0).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)
    return np.array(list(LETTERS))[np.where(valid, logp - letter_mean, -np.inf).argmax(axis=1)]


def majority_baseline(gold) -> tuple[str, float]:
    """The most common gold letter and the accuracy of always answering it (ties: the earlier letter)."""
    counts = pd.Series(np.asarray(gold)).value_counts()
    letter = min(counts.index[counts == counts.max()])
    return str(letter), float(counts.max() / counts.sum())


def bootstrap_distribution(statistic: Callable[[np.ndarray], float], n: int, n_resamples: int = 1000,
                           seed: int = 0) -> np.ndarray:
    """``statistic(indices)`` for ``n_resamples`` seeded resamples of ``range(n)`` with replacement."""
    rng = np.random.default_rng(seed)
    return np.array([statistic(rng.integers(0, n, n)) for _ in range(n_resamples)], dtype=float)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    """The central ``level`` interval of ``values``."""
    tail = (1 - level) / 2 * 100
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, n_resamples: int = 1000,
                       seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over questions ``range(n)``.

    >>> correct = np.array([1, 0, 1, 1, 0, 1, 1, 0])
    >>> lo, hi = bootstrap_interval(lambda idx: correct[idx].mean(), len(correct))
    >>> bool(lo <= correct.mean() <= hi)
    True
    """
    return percentile_interval(bootstrap_distribution(statistic, n, n_resamples, seed), level)


def letter_counts(letters, width: int) -> dict[str, int]:
    """How often each of the first ``width`` letters occurs (zeros included)."""
    counts = pd.Series(np.asarray(letters)).value_counts()
    return {letter: int(counts.get(letter, 0)) for letter in LETTERS[:width]}


def summarize(predictions: pd.DataFrame, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """All metrics of one predictions table, as a JSON-serialisable dict (see the module docstring)."""
    from sklearn.metrics import f1_score

    if len(predictions) == 0:
        raise ValueError("cannot summarise an empty predictions table")
    gold = predictions["answer"].astype(str).to_numpy()
    pred = predictions["pred"].astype(str).to_numpy()
    probs = predictions[probability_columns(predictions)].to_numpy(dtype=float)
    correct = gold == pred
    n, width = len(gold), probs.shape[1]
    majority_letter, majority_acc = majority_baseline(gold)

    def debiased_accuracy(idx: np.ndarray) -> float:
        return float((debiased_predictions(probs[idx]) == gold[idx]).mean())

    per_category = {
        str(cat): {"n": int(len(rows)), "accuracy": float(correct[rows].mean())}
        for cat, rows in sorted(predictions.groupby("category", sort=False).indices.items(), key=lambda kv: str(kv[0]))
    }
    gold_index = np.array([LETTERS.index(letter) for letter in gold])
    return {
        "n": n,
        "accuracy": float(correct.mean()),
        "accuracy_ci": bootstrap_interval(lambda idx: correct[idx].mean(), n, n_resamples, seed, level),
        "debiased_accuracy": debiased_accuracy(np.arange(n)),
        "debiased_accuracy_ci": bootstrap_interval(debiased_accuracy, n, n_resamples, seed, level),
        "majority_letter": majority_letter,
        "majority_baseline": majority_acc,
        "chance": float(np.mean(1 / (~np.isnan(probs)).sum(axis=1))),
        "f1_weighted": float(f1_score(gold, pred, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "mean_p_gold": float(probs[np.arange(n), gold_index].mean()),
        "predicted_letters": letter_counts(pred, width),
        "gold_letters": letter_counts(gold, width),
        "per_category": per_category,
        "bootstrap": {"resamples": n_resamples, "seed": seed, "level": level, "method": "percentile"},
    }


def paired_bootstrap_difference(correct_a, correct_b, n_resamples: int = 1000, seed: int = 0,
                                level: float = 0.95) -> dict:
    """Accuracy of system A minus system B on the same questions, with a paired bootstrap interval.

    Questions are resampled together for both systems, so the interval reflects only their disagreements.
    ``p_value`` is two-sided: twice the share of resampled differences on the far side of zero (capped at
    1); it is below ``1 - level`` roughly when the interval excludes zero.

    >>> a = np.array([1, 1, 1, 0, 1, 1, 0, 1] * 10)
    >>> b = np.array([1, 0, 1, 0, 0, 1, 0, 0] * 10)
    >>> d = paired_bootstrap_difference(a, b)
    >>> round(d["difference"], 3), d["ci"][0] > 0, d["p_value"] < 0.05
    (0.375, True, True)
    """
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"correct_a and correct_b must be equal-length 1-D arrays (got {a.shape} and {b.shape})")
    diff = a - b
    resampled = bootstrap_distribution(lambda idx: diff[idx].mean(), len(diff), n_resamples, seed)
    p_value = min(1.0, 2 * min((resampled <= 0).mean(), (resampled >= 0).mean()))
    return {
        "n": int(len(diff)),
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "difference": float(diff.mean()),
        "ci": percentile_interval(resampled, level),
        "p_value": float(p_value),
        "resamples": n_resamples,
        "seed": seed,
    }
