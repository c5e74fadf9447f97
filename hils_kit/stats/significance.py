"""Paired tests of two systems scored on the same test questions, and bootstrap intervals over questions and runs.

Every test returns a dict (one tidy row) with ``test``, ``paired_over`` (what was paired: the questions by
default), ``n`` and ``p_value`` (two-sided):

* :func:`mcnemar_exact`: accuracy; an exact binomial test on the questions only one system got right.
* :func:`sign_flip_test`: a continuous per-question score (gold log-prob, Brier); under the null the sign of
  each question's difference is a coin flip. Exact (all 2^n sign patterns) for up to ``exact_up_to``
  non-zero differences, else a seeded Monte Carlo estimate with the valid (1 + hits) / (1 + resamples) rule.
* :func:`replicate_bootstrap_difference`: an interval (no p-value) for a mean difference when each system has
  several training replicates: questions are resampled jointly for both systems, replicates within each one,
  counting each answer's own (question × run) noise once.
  :func:`replicate_bootstrap_mean` is the same interval for one system's mean.

A family of these tests is corrected together by :func:`hils_kit.stats.family.adjust_family` (Holm and
Benjamini–Hochberg).

>>> a, b = [1] * 10 + [0] * 2 + [1] * 5, [0] * 10 + [1] * 2 + [1] * 5
>>> row = mcnemar_exact(a, b)
>>> row["test"], row["paired_over"], round(row["p_value"], 4)
('McNemar exact', 'questions', 0.0386)
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats


def _paired_vectors(a, b, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"{what}: need two equal-length, non-empty 1-D arrays over the same questions "
            f"(got shapes {a.shape} and {b.shape})"
        )
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError(
            f"{what}: NaN at question {int((np.isnan(a) | np.isnan(b)).argmax())}; "
            "drop that question from both systems first"
        )
    return a, b


def mcnemar_exact(correct_a, correct_b, paired_over: str = "questions") -> dict:
    """Exact McNemar test of two classifiers on the same questions (two-sided binomial test, p = 1/2, on the
    discordant pairs). ``a_only`` / ``b_only``: questions only A / only B got right; ``statistic`` the smaller.

    >>> out = mcnemar_exact([1, 1, 1, 0], [0, 0, 0, 0])
    >>> out["a_only"], out["b_only"], out["p_value"], out["difference"]
    (3, 0, 0.25, 0.75)
    """
    a, b = _paired_vectors(correct_a, correct_b, "mcnemar_exact")
    if not np.isin(a, (0, 1)).all() or not np.isin(b, (0, 1)).all():
        raise ValueError("mcnemar_exact: correctness must be True/False or 1/0")
    a, b = a.astype(bool), b.astype(bool)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    p = stats.binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {
        "test": "McNemar exact",
        "paired_over": paired_over,
        "n": len(a),
        "difference": float(a.mean() - b.mean()),
        "a_only": a_only,
        "b_only": b_only,
        "statistic": min(a_only, b_only),
        "p_value": float(p),
    }


def sign_flip_test(
    values_a, values_b, n_resamples: int = 10_000, seed: int = 0, exact_up_to: int = 16, paired_over: str = "questions"
) -> dict:
    """Paired sign-flip permutation test of mean(A - B) = 0 for a continuous per-question score.

    The statistic is |sum of differences|; zero differences do not change it and are left out of the
    enumeration. With at most ``exact_up_to`` non-zero differences every sign pattern is tried (``method``
    ``"exact"``); otherwise ``n_resamples`` seeded random patterns, p = (1 + hits) / (1 + n_resamples).

    >>> out = sign_flip_test([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0])
    >>> out["method"], out["p_value"], out["difference"]
    ('exact', 0.125, 2.5)
    """
    if not 0 <= exact_up_to <= 20:
        raise ValueError(f"sign_flip_test: exact_up_to must be in [0, 20] (2^20 sign patterns), got {exact_up_to}")
    a, b = _paired_vectors(values_a, values_b, "sign_flip_test")
    diff = a - b
    nonzero = diff[np.abs(diff) > 1e-12 * max(1.0, float(np.abs(diff).max()))]
    observed = abs(nonzero.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(nonzero).sum()))
    if len(nonzero) <= exact_up_to:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(nonzero))))
        p, method = float((np.abs(signs @ nonzero) >= observed - tolerance).mean()), "exact"
    else:
        rng = np.random.default_rng(seed)
        hits = 0
        for start in range(0, n_resamples, 1000):
            signs = rng.choice((-1.0, 1.0), size=(min(1000, n_resamples - start), len(nonzero)))
            hits += int((np.abs(signs @ nonzero) >= observed - tolerance).sum())
        p, method = (1 + hits) / (1 + n_resamples), f"Monte Carlo ({n_resamples} sign patterns, seed {seed})"
    return {
        "test": "sign-flip permutation",
        "paired_over": paired_over,
        "n": len(diff),
        "difference": float(diff.mean()),
        "statistic": float(diff.mean()),
        "p_value": min(1.0, p),
        "method": method,
    }


def _as_matrix(values, name: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=float)
    matrix = matrix[:, None] if matrix.ndim == 1 else matrix
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(
            f"{name}: need a questions × replicates matrix (or one value per question), got shape {np.shape(values)}"
        )
    if np.isnan(matrix).any():
        row, col = np.argwhere(np.isnan(matrix))[0]
        raise ValueError(f"{name}: NaN at question {row}, replicate {col}")
    return matrix


def replicate_bootstrap_difference(
    values_a, values_b, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict:
    """Mean of A minus mean of B with a percentile bootstrap interval over questions and replicates.

    ``values_a`` and ``values_b`` are questions × replicates matrices (rows: the same questions in the same
    order; the replicate counts may differ; a 1-D array is one replicate). Each resample draws the questions
    with replacement once for both systems (paired), and each system's replicates with replacement on their
    own, so the interval holds both question sampling and run-to-run noise. Drawing both from the raw matrix
    would count each answer's own (question × run) noise about three times instead of once (Owen's "pigeonhole"
    bootstrap, 2007) and widen a run-free interval about 1.5-fold, so a resample is the mean of the drawn
    questions' replicate means (which holds that noise once) plus the mean of the drawn replicates' centred
    means, shrunk so that their spread is the run effect's alone (:func:`_resampled_means`). Without a run
    effect the interval is thus about the question bootstrap of the replicate means; a run effect widens it.

    >>> a = np.array([[1, 1], [1, 0], [0, 1], [1, 1]] * 10)
    >>> b = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]] * 10)
    >>> out = replicate_bootstrap_difference(a, b)
    >>> round(out["difference"], 3), out["replicates_a"], out["replicates_b"], out["ci"][0] > 0
    (0.417, 2, 3, True)
    """
    a, b = _as_matrix(values_a, "values_a"), _as_matrix(values_b, "values_b")
    if len(a) != len(b):
        raise ValueError(f"values_a has {len(a)} questions and values_b {len(b)}: they must be the same questions")
    rng = np.random.default_rng(seed)
    question_counts = _question_counts(len(a), n_resamples, rng)
    resampled = _resampled_means(a, question_counts, rng) - _resampled_means(b, question_counts, rng)
    return {
        "test": "bootstrap interval",
        "paired_over": "questions (resampled jointly), replicates (resampled within each system)",
        "n": len(a),
        "replicates_a": a.shape[1],
        "replicates_b": b.shape[1],
        "difference": float(a.mean() - b.mean()),
        "ci": _percentiles(resampled, level),
        "level": level,
        "resamples": n_resamples,
        "seed": seed,
    }


def replicate_bootstrap_mean(values, n_resamples: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """One system's mean with a percentile bootstrap interval over questions and replicates.

    ``values`` is a questions × replicates matrix (a 1-D array is one replicate); each resample draws the
    questions and the replicates with replacement, so the interval holds both question sampling and run-to-run
    noise, as in :func:`replicate_bootstrap_difference` (:func:`_resampled_means`).

    >>> out = replicate_bootstrap_mean(np.array([[1, 1], [1, 0], [0, 1], [1, 1]] * 10))
    >>> out["mean"], out["replicates"], out["ci"][0] < 0.75 < out["ci"][1]
    (0.75, 2, True)
    """
    y = _as_matrix(values, "values")
    rng = np.random.default_rng(seed)
    resampled = _resampled_means(y, _question_counts(len(y), n_resamples, rng), rng)
    return {
        "n": len(y),
        "replicates": y.shape[1],
        "mean": float(y.mean()),
        "ci": _percentiles(resampled, level),
        "level": level,
        "resamples": n_resamples,
        "seed": seed,
    }


def _question_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` questions is drawn in each resample (resamples × questions)."""
    return rng.multinomial(n, np.full(n, 1 / n), size=n_resamples)


def _resampled_means(matrix: np.ndarray, question_counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mean of a questions × replicates ``matrix`` in each resample (see
    :func:`replicate_bootstrap_difference`): the mean of the replicate means of the questions as
    ``question_counts`` draws them, plus the mean of the replicates' centred means drawn with replacement and
    scaled so that their variance is the run effect's: the replicate means' variance less the residual mean
    square of the two-way (question + run) fit over the number of questions, at least 0.
    """
    n_resamples, n = question_counts.shape
    reps = matrix.shape[1]
    question_part = question_counts @ matrix.mean(axis=1) / n
    if reps < 2:
        return question_part
    run_means = matrix.mean(axis=0)
    residual = matrix - matrix.mean(axis=1, keepdims=True) - run_means + matrix.mean()
    residual_variance = (residual**2).sum() / max((n - 1) * (reps - 1), 1)
    spread = run_means.var(ddof=1)
    shrink = np.sqrt(max(0.0, 1 - residual_variance / n / spread)) if spread > 0 else 0.0
    replicate_counts = rng.multinomial(reps, np.full(reps, 1 / reps), size=n_resamples)
    return question_part + shrink * replicate_counts @ (run_means - run_means.mean()) / reps


def _percentiles(resampled: np.ndarray, level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    return [float(v) for v in np.percentile(resampled, [tail, 100 - tail])]
