"""Metrics of a scored test set: accuracy with bootstrap intervals, letter bias, baselines, F1, categories.

A predictions table has one row per question with ``answer`` (gold letter), ``pred``, ``category`` and
``p_A``, ``p_B``, … (the scorer's probabilities over the question's option letters; NaN past its options).

Small models answer mostly one letter, so raw accuracy is read against two references:

* the **majority baseline**: the accuracy of always answering the most common gold letter of the set;
* the **debiased accuracy**: each letter's mean log-probability over the whole test set is subtracted
  from that letter's log-probability before the argmax (transductive calibration: it uses the test
  questions themselves, no labels). It removes a constant preference for one letter, nothing else.
  It assumes the gold letters are about equally common in the test set: where one letter is gold more
  often, a model that knows the answers also gives it a higher mean, and subtracting that mean costs
  right answers (on a 55/15/15/15 set, an unbiased model at 56 % accuracy loses about 5 points).
  ``gold_letter_shares`` shows each set's mix.

Accuracy on a few dozen questions moves in steps of several points, so every question also gets
continuous scores of how much probability the model puts on the right letter (:func:`gold_scores`):
``p_gold``, ``gold_logprob`` (natural log, nats), ``gold_logprob_debiased`` (after the same letter-mean
subtraction, so under the same assumption, renormalised over the question's letters) and ``brier`` (the
multi-class Brier score over the question's letters: 0 is perfect, 2 is all mass on one wrong letter).

Intervals are percentile bootstraps over questions (seeded; 1000 resamples by default); the debiased
scores recompute the letter means inside every resample.

>>> import pandas as pd
>>> table = pd.DataFrame({"answer": list("ABAB"), "pred": list("AAAA"), "category": list("xxyy"),
...                       "p_A": [0.9, 0.6, 0.8, 0.7], "p_B": [0.1, 0.4, 0.2, 0.3]})
>>> s = summarize(table)
>>> s["accuracy"], s["debiased_accuracy"], s["majority_baseline"], s["predicted_letters"]
(0.5, 1.0, 0.5, {'A': 4, 'B': 0})
>>> round(s["mean_brier"], 3), round(s["mean_gold_logprob"], 3)
(0.45, -0.612)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from hils_kit.data.questions import LETTERS


def probability_columns(table: pd.DataFrame) -> list[str]:
    """The ``p_A``, ``p_B``, … columns present, in letter order."""
    return [f"p_{letter}" for letter in LETTERS if f"p_{letter}" in table.columns]


def log_probabilities(probs) -> np.ndarray:
    """Natural-log probabilities (NaN stays NaN = no such option; 0 is clipped to 1e-300, about -690.8)."""
    probs = np.asarray(probs, dtype=float)
    return np.log(np.clip(probs, 1e-300, None))


def _letter_shifted(probs) -> np.ndarray:
    """Log-probabilities minus each letter's mean over the rows that have it; -inf where no option."""
    logp = log_probabilities(probs)
    valid = ~np.isnan(logp)
    if not valid.any(axis=1).all():
        raise ValueError(f"row {int((~valid.any(axis=1)).argmax())} has no option probabilities")
    letter_mean = np.where(valid, logp, 0).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)
    return np.where(valid, logp - letter_mean, -np.inf)


def debiased_log_probabilities(probs) -> np.ndarray:
    """Log-probabilities after subtracting each letter's mean log-probability over all rows, renormalised
    over each row's letters (a log-softmax; NaN = no option).

    A letter's mean is taken over the rows that have that letter. The rows are the test set, so the result
    of one row depends on the others (transductive, as :func:`debiased_predictions`). This assumes the gold
    letters are about uniform over the rows: a letter that is gold more often also has a higher mean under a
    model with no letter preference, so skewed gold letters make the debiased scores unfair to it.

    >>> np.exp(debiased_log_probabilities(np.array([[0.9, 0.1], [0.6, 0.4]]))).round(3).tolist()
    [[0.71, 0.29], [0.29, 0.71]]
    """
    shifted = _letter_shifted(probs)
    shifted -= shifted.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return np.where(np.isinf(shifted), np.nan, shifted - log_norm)


def debiased_predictions(probs: np.ndarray) -> np.ndarray:
    """Letters chosen after subtracting each letter's mean log-probability over all rows (NaN = no option).

    >>> debiased_predictions(np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]])).tolist()
    ['A', 'B', 'A']
    """
    return np.array(list(LETTERS))[_letter_shifted(probs).argmax(axis=1)]


def gold_indices(gold, probs) -> np.ndarray:
    """Column index of each row's gold letter; an error names the row whose gold letter is not an option."""
    probs = np.asarray(probs, dtype=float)
    gold = np.asarray(gold).astype(str)
    if len(gold) != len(probs):
        raise ValueError(f"{len(gold)} gold letters for {len(probs)} rows of probabilities")
    index = np.array([LETTERS.index(g) if len(g) == 1 and g in LETTERS else -1 for g in gold], dtype=int)
    ok = (index >= 0) & (index < probs.shape[1])
    ok[ok] = ~np.isnan(probs[np.flatnonzero(ok), index[ok]])
    if not ok.all():
        row = int((~ok).argmax())
        raise ValueError(f"row {row}: gold letter {str(gold[row])!r} is not one of the question's options")
    return index


def gold_scores(probs, gold) -> pd.DataFrame:
    """Per-question ``p_gold``, ``gold_logprob``, ``gold_logprob_debiased`` and ``brier`` (see module doc).

    ``brier`` is the sum over the question's letters of (p - 1[letter is gold])², with the probabilities
    as given (the scorer's are normalised over the question's letters).

    >>> gold_scores(np.array([[0.9, 0.1], [0.6, 0.4]]), ["A", "B"]).round(3).iloc[1].to_dict()
    {'p_gold': 0.4, 'gold_logprob': -0.916, 'gold_logprob_debiased': -0.342, 'brier': 0.72}
    """
    probs = np.asarray(probs, dtype=float)
    index = gold_indices(gold, probs)
    rows = np.arange(len(probs))
    onehot = np.zeros_like(probs)
    onehot[rows, index] = 1.0
    p_gold = probs[rows, index]
    return pd.DataFrame(
        {
            "p_gold": p_gold,
            "gold_logprob": log_probabilities(p_gold),
            "gold_logprob_debiased": debiased_log_probabilities(probs)[rows, index] if len(probs) else [],
            "brier": np.nansum((probs - onehot) ** 2, axis=1),
        }
    )


def majority_baseline(gold) -> tuple[str, float]:
    """The most common gold letter and the accuracy of always answering it (ties: the earlier letter)."""
    counts = pd.Series(np.asarray(gold)).value_counts()
    letter = min(counts.index[counts == counts.max()])
    return str(letter), float(counts.max() / counts.sum())


def bootstrap_distribution(
    statistic: Callable[[np.ndarray], float], n: int, n_resamples: int = 1000, seed: int = 0
) -> np.ndarray:
    """``statistic(indices)`` for ``n_resamples`` seeded resamples of ``range(n)`` with replacement."""
    rng = np.random.default_rng(seed)
    return np.array([statistic(rng.integers(0, n, n)) for _ in range(n_resamples)], dtype=float)


def bootstrap_means(values, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Means of ``values`` over the same seeded resamples as :func:`bootstrap_distribution` (vectorised).

    >>> values = np.array([0.0, 1.0, 1.0, 0.5])
    >>> bool(np.allclose(bootstrap_means(values, 50, seed=2),
    ...                  bootstrap_distribution(lambda idx: values[idx].mean(), len(values), 50, seed=2)))
    True
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    return values[np.random.default_rng(seed).integers(0, n, (n_resamples, n))].mean(axis=1)


def debiased_bootstrap(
    probs, gold_index, n_resamples: int = 1000, seed: int = 0, chunk: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Debiased accuracy and mean debiased gold log-prob in each seeded resample of the rows (the resamples of
    :func:`bootstrap_distribution`), the letter means recomputed inside each resample; vectorised in chunks.

    >>> probs, gold = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]]), np.array([0, 1, 0])
    >>> accuracy, _ = debiased_bootstrap(probs, gold, 20, seed=1)
    >>> slow = bootstrap_distribution(lambda i: (debiased_predictions(probs[i]) == np.array(list("ABA"))[i]).mean(),
    ...                               3, 20, seed=1)
    >>> bool((accuracy == slow).all())
    True
    """
    logp = log_probabilities(probs)
    valid = ~np.isnan(logp)
    filled = np.where(valid, logp, 0.0)
    n, width = logp.shape
    gold_index = np.asarray(gold_index)
    idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n))
    accuracy, gold_logprob = np.empty(n_resamples), np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        block = idx[start : start + chunk]
        rows = len(block)
        weights = np.bincount((block + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n)
        weights = weights.reshape(rows, n).astype(float)
        letter_mean = (weights @ filled) / np.maximum(weights @ valid, 1)
        shifted = np.where(valid[None], logp[None] - letter_mean[:, None, :], -np.inf)
        top = shifted.max(axis=2)
        log_norm = top + np.log(np.exp(shifted - top[..., None]).sum(axis=2))
        gold_shifted = np.take_along_axis(shifted, np.broadcast_to(gold_index[None, :, None], (rows, n, 1)), 2)[..., 0]
        accuracy[start : start + rows] = (weights * (shifted.argmax(axis=2) == gold_index[None])).sum(axis=1) / n
        gold_logprob[start : start + rows] = (weights * (gold_shifted - log_norm)).sum(axis=1) / n
    return accuracy, gold_logprob


def percentile_interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    """The central ``level`` interval of ``values``."""
    tail = (1 - level) / 2 * 100
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float], n: int, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> list[float]:
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

    def mean_with_interval(name: str, values: np.ndarray) -> dict:
        interval = percentile_interval(bootstrap_means(values, n_resamples, seed), level)
        return {name: float(values.mean()), f"{name}_ci": interval}

    per_category = {
        str(cat): {"n": int(len(rows)), "accuracy": float(correct[rows].mean())}
        for cat, rows in sorted(predictions.groupby("category", sort=False).indices.items(), key=lambda kv: str(kv[0]))
    }
    gold_index = gold_indices(gold, probs)
    scores = gold_scores(probs, gold)
    resampled_accuracy, resampled_gold_logprob = debiased_bootstrap(probs, gold_index, n_resamples, seed)
    gold_counts = letter_counts(gold, width)
    return {
        "n": n,
        **mean_with_interval("accuracy", correct.astype(float)),
        "debiased_accuracy": float((debiased_predictions(probs) == gold).mean()),
        "debiased_accuracy_ci": percentile_interval(resampled_accuracy, level),
        "majority_letter": majority_letter,
        "majority_baseline": majority_acc,
        "chance": float(np.mean(1 / (~np.isnan(probs)).sum(axis=1))),
        "f1_weighted": float(f1_score(gold, pred, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(gold, pred, average="macro", zero_division=0)),
        **mean_with_interval("mean_p_gold", scores["p_gold"].to_numpy()),
        **mean_with_interval("mean_gold_logprob", scores["gold_logprob"].to_numpy()),
        "mean_gold_logprob_debiased": float(scores["gold_logprob_debiased"].mean()),
        "mean_gold_logprob_debiased_ci": percentile_interval(resampled_gold_logprob, level),
        **mean_with_interval("mean_brier", scores["brier"].to_numpy()),
        "predicted_letters": letter_counts(pred, width),
        "gold_letters": gold_counts,
        "gold_letter_shares": {letter: round(count / n, 4) for letter, count in gold_counts.items()},
        "per_category": per_category,
        "bootstrap": {"resamples": n_resamples, "seed": seed, "level": level, "method": "percentile"},
    }


def paired_bootstrap_difference(
    correct_a, correct_b, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Accuracy of system A minus system B on the same questions: a paired bootstrap interval and the exact
    McNemar p-value (:func:`hils_kit.stats.significance.mcnemar_exact`).

    Questions are resampled together for both systems, so the interval reflects only their disagreements.
    The bootstrap gives only the interval: the p-value is the two-sided exact McNemar test of the same pairs.

    >>> a = np.array([1, 1, 1, 0, 1, 1, 0, 1] * 10)
    >>> b = np.array([1, 0, 1, 0, 0, 1, 0, 0] * 10)
    >>> d = paired_bootstrap_difference(a, b)
    >>> round(d["difference"], 3), d["ci"][0] > 0, d["p_value"] < 0.05, d["test"], d["paired_over"]
    (0.375, True, True, 'McNemar exact', 'questions')
    """
    from hils_kit.stats.significance import mcnemar_exact

    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"correct_a and correct_b must be equal-length 1-D arrays (got {a.shape} and {b.shape})")
    test = mcnemar_exact(a, b)
    diff = a - b
    resampled = bootstrap_means(diff, n_resamples, seed)
    return {
        "n": int(len(diff)),
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "difference": float(diff.mean()),
        "ci": percentile_interval(resampled, level),
        "p_value": test["p_value"],
        "test": test["test"],
        "paired_over": test["paired_over"],
        "a_only": test["a_only"],
        "b_only": test["b_only"],
        "resamples": n_resamples,
        "seed": seed,
    }
