"""What a paired comparison on the same test questions could have detected: minimal detectable differences.

Two systems (say a strategy and Random Shuffle) are scored on the same ``n`` test questions, each trained
``R`` times (replicates). At two-sided level ``alpha`` and the given ``power`` (0.05 and 0.8 by default):

* **accuracy** (:func:`mde_accuracy_points`, in accuracy points): the McNemar normal approximation of
  Connor (1987). With ψ the discordance rate (share of questions exactly one system gets right) and δ the
  accuracy difference, δ is detectable when ``z(1-alpha/2)·sqrt(V0) + z(power)·sqrt(V1) <= δ`` with
  ``V0 = ψ/n + 2τ²/R`` and ``V1 = (ψ - δ²)/n + 2τ²/R``; τ² is the between-replicate variance component
  of one system's accuracy on fixed questions (:func:`replicate_variance`: how much a whole run shifts;
  0 gives Connor's formula). The question term is not divided by R: every replicate reuses the same
  questions, and the flips of single questions between runs are left in it (conservative).
* **gold log-prob** (:func:`mde_paired_mean`, in nats): the paired t-test (noncentral t) on the
  per-question differences (each question's mean over replicates).
* **questions and replicates needed** for a given difference (:func:`questions_needed`,
  :func:`replicates_needed`): the same accuracy condition solved for ``n`` or ``R``.

:func:`power_table` turns a long frame of per-question predictions (one row per question × system ×
replicate) into one row per test set with ``mde_accuracy_points``, ``mde_gold_logprob``,
``questions_needed_1pt`` and ``replicates_needed_1pt``.

>>> round(mde_accuracy_points(discordance=0.3, n_questions=50), 1)
21.2
>>> questions_needed(0.01, discordance=0.3)
23545
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

ACCURACY_METHOD = (
    "McNemar normal approximation (Connor 1987) on the discordance rate, plus 2·τ²/R for the "
    "between-replicate variance component τ² (two-way ANOVA)"
)
LOGPROB_METHOD = "paired t-test (noncentral t) on per-question differences, averaged over replicates"


def _z(alpha: float, power: float) -> tuple[float, float]:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie strictly between 0 and 1 (got {alpha} and {power})")
    return stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)


def _check_rate(discordance: float) -> None:
    if not 0 <= discordance <= 1:
        raise ValueError(f"discordance must be a share in [0, 1], got {discordance}")


def _margin(delta: float, discordance: float, n: float, replicate_term: float, alpha: float, power: float) -> float:
    """δ minus the smallest difference the test detects at this δ (>= 0: detectable)."""
    z_alpha, z_power = _z(alpha, power)
    v0 = discordance / n + replicate_term
    v1 = max(discordance - delta**2, 0.0) / n + replicate_term
    return delta - z_alpha * math.sqrt(v0) - z_power * math.sqrt(v1)


def mde_accuracy_points(
    discordance: float,
    n_questions: int,
    replicates: float = 1,
    replicate_variance: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Smallest accuracy difference (in points) detectable at ``power`` (see the module docstring).

    ``discordance``: share of questions exactly one system gets right; ``replicate_variance``: τ², in
    accuracy share². ``inf`` when no difference up to the discordance itself is detectable; NaN when the
    systems never disagree (ψ = 0: nothing to measure).

    >>> round(mde_accuracy_points(0.2, 400), 2)
    6.25
    """
    _check_rate(discordance)
    if discordance == 0:
        return math.nan
    term = 2 * replicate_variance / replicates
    if _margin(discordance, discordance, n_questions, term, alpha, power) < 0:
        return math.inf
    delta = optimize.brentq(_margin, 0.0, discordance, args=(discordance, n_questions, term, alpha, power), xtol=1e-12)
    return 100 * delta


def _smallest_count(margin, what: str) -> float:
    """Smallest integer x >= 1 with margin(x) >= 0, margin increasing; inf if never."""
    if margin(1.0) >= 0:
        return 1
    high = 2.0
    while margin(high) < 0:
        high *= 2
        if high > 1e15:
            raise ValueError(f"{what}: no finite solution found")
    root = optimize.brentq(margin, high / 2, high, xtol=1e-9)
    return int(math.ceil(root - 1e-7))


def questions_needed(
    difference: float,
    discordance: float,
    replicates: float = 1,
    replicate_variance: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Test questions needed to detect an accuracy ``difference`` (a share: 0.01 = one point).

    With τ² = 0 this is Connor's n = (z_a·sqrt(ψ) + z_b·sqrt(ψ - δ²))² / δ², rounded up. ``inf`` when
    run-to-run noise alone (2·τ²/R) hides the difference at any number of questions; NaN when ``difference``
    exceeds the discordance (impossible) or is not positive.

    >>> questions_needed(0.05, discordance=0.2)
    626
    """
    _check_rate(discordance)
    if not 0 < difference <= discordance:
        return math.nan
    term = 2 * replicate_variance / replicates
    z_alpha, z_power = _z(alpha, power)
    if difference <= (z_alpha + z_power) * math.sqrt(term):
        return math.inf
    return _smallest_count(lambda n: _margin(difference, discordance, n, term, alpha, power), "questions_needed")


def replicates_needed(
    difference: float,
    discordance: float,
    n_questions: int,
    replicate_variance: float,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Replicates per system needed on ``n_questions`` questions to detect ``difference`` (a share).

    ``inf`` when the question term alone hides the difference (more runs on the same questions cannot help);
    NaN when ``difference`` is not in (0, discordance].

    >>> replicates_needed(0.05, discordance=0.2, n_questions=1000, replicate_variance=0.0002)
    4
    """
    _check_rate(discordance)
    if not 0 < difference <= discordance:
        return math.nan
    if _margin(difference, discordance, n_questions, 0.0, alpha, power) <= 0:
        return math.inf
    return _smallest_count(
        lambda r: _margin(difference, discordance, n_questions, 2 * replicate_variance / r, alpha, power),
        "replicates_needed",
    )


def mde_paired_mean(differences, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean of paired differences detectable by a two-sided paired t-test, in their units.

    ``differences``: one value per question (e.g. gold log-prob of A minus B). NaN with fewer than 2
    questions or differences that do not vary.

    >>> round(mde_paired_mean([0.5, -0.5] * 25), 3)
    0.204
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or np.isnan(d).any():
        raise ValueError("mde_paired_mean: need a 1-D array of per-question differences without NaN")
    return _t_mde(float(d.std(ddof=1)) if len(d) >= 2 else 0.0, len(d), alpha, power)


def _t_mde(sd: float, n: int, alpha: float, power: float) -> float:
    """Smallest mean difference a two-sided paired t-test on ``n`` pairs of spread ``sd`` detects at ``power``."""
    z_alpha, z_power = _z(alpha, power)
    if n < 2 or not sd > 0:
        return math.nan
    df, t_crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

    def shortfall(effect: float) -> float:
        nc = effect * math.sqrt(n)
        return stats.nct.sf(t_crit, df, nc) + stats.nct.cdf(-t_crit, df, nc) - power

    high = (z_alpha + z_power) / math.sqrt(n)  # the normal approximation; the t-test needs a little more
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-12) * sd)


def _replicate_matrix(values, name: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=float)
    matrix = matrix[:, None] if matrix.ndim == 1 else matrix
    if matrix.ndim != 2 or matrix.size == 0 or np.isnan(matrix).any():
        raise ValueError(
            f"{name}: need a questions × replicates matrix (or one value per question) without NaN, "
            f"got shape {np.shape(values)}"
        )
    return matrix


def discordance_rate(correct_a, correct_b) -> float:
    """Share of questions exactly one system gets right, averaged over every pair of their replicates.

    ``correct_a`` / ``correct_b``: questions × replicates (or 1-D), rows the same questions.

    >>> discordance_rate([[1, 1], [0, 1], [0, 0]], [1, 0, 0])
    0.16666666666666666
    """
    a, b = _replicate_matrix(correct_a, "correct_a"), _replicate_matrix(correct_b, "correct_b")
    if len(a) != len(b):
        raise ValueError(f"correct_a has {len(a)} questions and correct_b {len(b)}: they must be the same questions")
    a, b = a.astype(bool), b.astype(bool)
    return float((a[:, :, None] != b[:, None, :]).mean())


def replicate_variance(correct) -> float:
    """Between-replicate variance component of a system's accuracy on fixed questions (share²); NaN for one
    replicate.

    Two-way ANOVA of the questions × replicates matrix (one value per cell): (MS_replicates - MS_residual) / n,
    floored at 0. It is the variance of a whole run's shift in accuracy, without the question-level flips
    between runs that average out over many questions (those stay in the discordance term).

    >>> round(replicate_variance([[1, 0], [1, 0], [1, 1], [0, 0]]), 4)
    0.0833
    """
    y = _replicate_matrix(correct, "correct")
    n, reps = y.shape
    if reps < 2:
        return math.nan
    if n < 2:
        raise ValueError("replicate_variance: need at least 2 questions")
    residual = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    ms_residual = (residual**2).sum() / ((n - 1) * (reps - 1))
    return float(max(0.0, y.mean(axis=0).var(ddof=1) - ms_residual / n))


def _power_row(
    n: int,
    replicates: float,
    discordance: float,
    tau2: float,
    sd_logprob: float,
    target: float,
    alpha: float,
    power: float,
) -> dict:
    """The power columns from pooled inputs; τ² NaN (no replicates) is used as 0 and said so."""
    tau2_used = 0.0 if math.isnan(tau2) else tau2
    label = f"{target * 100:g}pt"
    return {
        "n_questions": n,
        "replicates": replicates,
        "discordance": discordance,
        "replicate_variance": tau2_used,
        "replicate_variance_from": "none (one replicate per system): assumed 0" if math.isnan(tau2) else "replicates",
        "mde_accuracy_points": mde_accuracy_points(discordance, n, replicates, tau2_used, alpha, power),
        "sd_gold_logprob_diff": sd_logprob,
        "mde_gold_logprob": _t_mde(sd_logprob, n, alpha, power),
        f"questions_needed_{label}": questions_needed(target, discordance, replicates, tau2_used, alpha, power),
        f"replicates_needed_{label}": replicates_needed(target, discordance, n, tau2_used, alpha, power),
        "alpha": alpha,
        "power": power,
        "accuracy_method": ACCURACY_METHOD,
        "gold_logprob_method": LOGPROB_METHOD,
    }


def _comparison_inputs(correct_a, correct_b, logprob_a, logprob_b) -> dict:
    a, b = _replicate_matrix(correct_a, "correct_a"), _replicate_matrix(correct_b, "correct_b")
    variances = [replicate_variance(a), replicate_variance(b)]
    known = [v for v in variances if not math.isnan(v)]
    sd = math.nan
    if logprob_a is not None and logprob_b is not None:
        la, lb = _replicate_matrix(logprob_a, "gold_logprob_a"), _replicate_matrix(logprob_b, "gold_logprob_b")
        if len(la) != len(a) or len(lb) != len(a):
            raise ValueError("the gold log-probs must be for the same questions as the correctness")
        diff = la.mean(axis=1) - lb.mean(axis=1)
        sd = float(diff.std(ddof=1)) if len(diff) >= 2 else math.nan
    return {
        "n": len(a),
        "replicates": 2 / (1 / a.shape[1] + 1 / b.shape[1]),
        "discordance": discordance_rate(a, b),
        "tau2": float(np.mean(known)) if known else math.nan,
        "sd": sd,
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
    }


def power_summary(
    correct_a,
    correct_b,
    gold_logprob_a=None,
    gold_logprob_b=None,
    target: float = 0.01,
    alpha: float = 0.05,
    power: float = 0.8,
) -> dict:
    """Minimal detectable differences and the questions / replicates needed for ``target`` (0.01 = one point)
    of one paired comparison: questions × replicates matrices (or 1-D) of correctness and, optionally, of
    gold log-probs, rows the same questions. Replicate counts may differ (their harmonic mean is used);
    τ² is the mean of the two systems' between-replicate variances.

    >>> rng = np.random.default_rng(0)
    >>> row = power_summary(rng.random(200) < 0.4, rng.random(200) < 0.4)
    >>> round(row["discordance"], 2), round(row["mde_accuracy_points"], 1), row["questions_needed_1pt"]
    (0.47, 13.4, 36495)
    >>> row["replicate_variance_from"]
    'none (one replicate per system): assumed 0'

    """
    inputs = _comparison_inputs(correct_a, correct_b, gold_logprob_a, gold_logprob_b)
    row = {"accuracy_a": inputs["accuracy_a"], "accuracy_b": inputs["accuracy_b"]}
    row.update(
        _power_row(
            inputs["n"], inputs["replicates"], inputs["discordance"], inputs["tau2"], inputs["sd"], target, alpha, power
        )
    )
    return row


def power_table(
    predictions: pd.DataFrame,
    baseline: str,
    arm: str = "strategy",
    by: Sequence[str] = ("dataset",),
    question: str = "id",
    replicate: str = "replicate",
    correct: str = "correct",
    gold_logprob: str | None = "gold_logprob",
    target: float = 0.01,
    alpha: float = 0.05,
    power: float = 0.8,
) -> pd.DataFrame:
    """One row per ``by`` group (a test set) with the power of comparing each other ``arm`` with ``baseline``.

    ``predictions`` is long: one row per question × arm × replicate (the ``predictions_<set>.csv`` rows of
    every cell, with ``dataset``, ``strategy`` and ``replicate`` added). In each group the inputs of every
    comparison with the baseline are pooled: mean discordance, mean between-replicate variance over the arms
    that have replicates, root-mean-square of the log-prob difference spreads. ``compared`` lists the arms.

    >>> long = pd.DataFrame({"dataset": "medqa", "id": list("abcdabcd"), "replicate": 0,
    ...                      "strategy": ["random"] * 4 + ["curriculum"] * 4,
    ...                      "correct": [1, 0, 0, 1, 1, 1, 0, 0], "gold_logprob": [-1, -2, -2, -1, -1, -1, -2, -3]})
    >>> power_table(long, "random")[["dataset", "compared", "discordance", "mde_accuracy_points"]].to_dict("records")
    [{'dataset': 'medqa', 'compared': 'curriculum', 'discordance': 0.5, 'mde_accuracy_points': inf}]
    """
    by = [by] if isinstance(by, str) else list(by)
    columns = [*by, arm, question, replicate, correct] + ([gold_logprob] if gold_logprob else [])
    lacking = [c for c in columns if c not in predictions]
    if lacking:
        raise KeyError(f"power_table: predictions lack column(s) {lacking}")
    rows = []
    for key, group in predictions.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(f"{k}={v}" for k, v in zip(by, key))
        dup = group.duplicated([arm, replicate, question])
        if dup.any():
            first = group[dup].iloc[0]
            raise ValueError(
                f"power_table ({where}): {arm}={first[arm]}, {replicate}={first[replicate]} has question "
                f"{first[question]!r} twice; add the column that tells them apart (e.g. 'model') to by"
            )
        matrices = {}
        for name, rows_of_arm in group.groupby(arm, sort=False):
            values = [gold_logprob] if gold_logprob else []
            wide = rows_of_arm.pivot(index=question, columns=replicate, values=[correct, *values]).sort_index()
            if wide.isna().any().any():
                raise ValueError(f"power_table ({where}): {arm}={name} lacks some questions in some replicates")
            matrices[name] = wide
        if baseline not in matrices:
            raise ValueError(f"power_table ({where}): no rows of the baseline {arm}={baseline!r}")
        others = [name for name in matrices if name != baseline]
        if not others:
            raise ValueError(f"power_table ({where}): nothing to compare with {baseline!r}")
        base = matrices[baseline]
        inputs = []
        for name in others:
            if not matrices[name].index.equals(base.index):
                raise ValueError(
                    f"power_table ({where}): {arm}={name} and {baseline} were scored on different questions"
                )
            mine = matrices[name]
            inputs.append(
                _comparison_inputs(
                    mine[correct].to_numpy(dtype=float),
                    base[correct].to_numpy(dtype=float),
                    mine[gold_logprob].to_numpy(dtype=float) if gold_logprob else None,
                    base[gold_logprob].to_numpy(dtype=float) if gold_logprob else None,
                )
            )
        tau2 = [i["tau2"] for i in inputs if not math.isnan(i["tau2"])]
        sds = [i["sd"] for i in inputs]
        row = dict(zip(by, key))
        row.update({"baseline": baseline, "compared": ", ".join(map(str, others))})
        row.update(
            _power_row(
                len(base),
                float(np.mean([i["replicates"] for i in inputs])),
                float(np.mean([i["discordance"] for i in inputs])),
                float(np.mean(tau2)) if tau2 else math.nan,
                float(np.sqrt(np.mean(np.square(sds)))),
                target,
                alpha,
                power,
            )
        )
        rows.append(row)
    return pd.DataFrame(rows)


def mcnemar_exact_power(difference: float, discordance: float, n_questions: int, alpha: float = 0.05) -> float:
    """Exact power of the two-sided exact McNemar test (:func:`hils_kit.stats.significance.mcnemar_exact`).

    The number of discordant questions is Binomial(n, ψ); given m of them, those A alone got right are
    Binomial(m, (ψ + δ) / 2ψ), and the test rejects where the exact two-sided binomial p is at most ``alpha``.
    Summed exactly over m, so it has none of the normal approximation's optimism at small counts.

    >>> round(mcnemar_exact_power(0.1, discordance=0.3, n_questions=200), 3)
    0.703
    """
    _check_rate(discordance)
    if not 0 <= abs(difference) <= discordance or discordance == 0:
        raise ValueError(f"the difference ({difference}) must lie within ±discordance ({discordance}), discordance > 0")
    m = np.arange(n_questions + 1)
    critical = stats.binom.ppf(alpha / 2, m, 0.5)
    critical = np.where(stats.binom.cdf(critical, m, 0.5) > alpha / 2, critical - 1, critical)
    favour_a = (discordance + difference) / (2 * discordance)
    rejects = np.where(
        critical >= 0,
        stats.binom.cdf(critical, m, favour_a) + stats.binom.sf(m - critical - 1, m, favour_a),
        0.0,
    )
    return float(np.sum(stats.binom.pmf(m, n_questions, discordance) * rejects))


def mde_mcnemar_exact(discordance: float, n_questions: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest accuracy difference (a share) the exact McNemar test detects with ``power`` (exact power, see
    :func:`mcnemar_exact_power`); inf when even a difference as large as the discordance is not detected, NaN
    when the models never disagree.

    >>> round(mde_mcnemar_exact(0.3, 200), 3), round(mde_accuracy_points(0.3, 200) / 100, 3)
    (0.111, 0.108)
    """
    _check_rate(discordance)
    if discordance == 0 or not np.isfinite(discordance):
        return math.nan
    shortfall = lambda delta: mcnemar_exact_power(delta, discordance, n_questions, alpha) - power  # noqa: E731
    if shortfall(discordance) < 0:
        return math.inf
    return float(optimize.brentq(shortfall, 0.0, discordance, xtol=1e-6))
