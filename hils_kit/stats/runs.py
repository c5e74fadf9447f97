"""Two strategies compared with the training run as the unit, on the same test questions.

Each strategy is trained several times (runs); every run answers the same ``n`` questions. One score per
question and run (correct 0/1, gold log-prob, Brier) follows the crossed model

    y[q, r] = mu_s(r) + u_q + w_{q,s(r)} + v_r + e_{q,r}

with question effects ``u`` (crossed with runs, so they cancel in a difference), a question × strategy
interaction ``w`` (the question-sampling part of a strategy difference), run effects ``v`` nested in strategy
(LoRA initialisation, dropout, order, a favourite answer letter) and a residual ``e``. The estimate is the
difference of the two strategies' mean scores, and its variance has both sources:

    Var = (sigma2_run + sigma2_e / n) (1/k_a + 1/k_b) + 2 sigma2_qs / n

:func:`compare_runs` estimates the first term from the spread of the run means within each strategy (pooled,
``k_a + k_b - 2`` degrees of freedom: a t-test on per-run means), the second from the per-question differences
minus their residual part, and combines the degrees of freedom with Welch–Satterthwaite. With one run per
strategy the run variance cannot be estimated: strategy and run are confounded, and no p-value is given.
:func:`variance_components` gives the components (two-way ANOVA, method of moments), :func:`run_power`,
:func:`run_mde`, :func:`runs_needed` and :func:`questions_needed` the power of the same test for a design.

>>> rng = np.random.default_rng(0)
>>> a = (rng.random((150, 3)) < 0.55).astype(float)
>>> b = (rng.random((150, 3)) < 0.50).astype(float)
>>> out = compare_runs(a, b)
>>> out["runs_a"], out["runs_b"], out["n_questions"], out["confounded"], 0 < out["p_value"] < 1
(3, 3, 150, False, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

METHOD = "t-test on run means (runs nested in strategy, questions paired), Welch–Satterthwaite df"


@dataclass(frozen=True)
class Components:
    """Variance components of one score on one test set (score units²): ``question`` (between questions),
    ``run`` (between runs of one strategy), ``question_by_strategy`` (2·σ²_qs, the variance of a question's
    strategy difference beyond noise), ``residual`` (question × run), and the runs' degrees of freedom."""

    question: float
    run: float
    question_by_strategy: float
    residual: float
    run_df: int

    def as_dict(self, prefix: str = "var_") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items() if k != "run_df"}


def _matrix(values, name: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=float)
    matrix = matrix[:, None] if matrix.ndim == 1 else matrix
    if matrix.ndim != 2 or matrix.shape[0] < 2:
        raise ValueError(f"{name}: need a questions × runs matrix with at least 2 questions, got shape {matrix.shape}")
    if np.isnan(matrix).any():
        question, run = np.argwhere(np.isnan(matrix))[0]
        raise ValueError(f"{name}: no score for question {question}, run {run}")
    return matrix


def _anova(y: np.ndarray) -> tuple[float, float, float]:
    """Mean squares of a questions × runs matrix: (questions, runs, residual); runs and residual NaN for 1 run."""
    n, k = y.shape
    rows, cols, grand = y.mean(axis=1), y.mean(axis=0), y.mean()
    ms_q = k * ((rows - grand) ** 2).sum() / (n - 1)
    if k < 2:
        return ms_q, math.nan, math.nan
    ms_run = n * ((cols - grand) ** 2).sum() / (k - 1)
    residual = y - rows[:, None] - cols[None, :] + grand
    return ms_q, ms_run, (residual**2).sum() / ((n - 1) * (k - 1))


def _pooled(values: list[tuple[float, int]]) -> float:
    """A df-weighted mean of (value, df) pairs; NaN with no degrees of freedom."""
    df = sum(d for v, d in values if d > 0)
    return sum(v * d for v, d in values if d > 0) / df if df else math.nan


def variance_components(a, b) -> Components:
    """The variance components of two strategies' questions × runs matrices (same questions, rows aligned).

    Within each strategy a two-way ANOVA without replication gives the residual (MS_e), the run component
    ((MS_runs − MS_e) / n) and the question component ((MS_questions − MS_e) / k), each floored at 0 and pooled
    over the two strategies by degrees of freedom. The question × strategy term is the variance of the
    per-question difference of the strategy means minus its residual part. A strategy with one run adds no
    run or residual information; with one run each they are NaN.

    >>> c = variance_components([[1, 1], [0, 0], [1, 0], [0, 1]], [[1, 1], [0, 0], [0, 0], [1, 1]])
    >>> round(c.run, 3), round(c.residual, 3), c.run_df
    (0.0, 0.167, 2)
    """
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} questions and b {len(b)}: the runs must answer the same questions")
    n = len(a)
    parts = [(y.shape[1], *_anova(y)) for y in (a, b)]
    residual = _pooled([(ms_e, (n - 1) * (k - 1)) for k, _, _, ms_e in parts])
    run = _pooled([(max(0.0, (ms_run - ms_e) / n), k - 1) for k, _, ms_run, ms_e in parts])
    noise = 0.0 if math.isnan(residual) else residual
    question = float(np.mean([max(0.0, (ms_q - noise) / k) for k, ms_q, _, _ in parts]))
    spread = float(np.var(a.mean(axis=1) - b.mean(axis=1), ddof=1))
    k_a, k_b = a.shape[1], b.shape[1]
    qxs = max(0.0, spread - residual * (1 / k_a + 1 / k_b)) if not math.isnan(residual) else math.nan
    return Components(question, float(run), float(qxs), float(residual), k_a + k_b - 2)


def compare_runs(a, b, level: float = 0.95) -> dict:
    """Strategy A minus strategy B with the run as the unit (see the module docstring).

    ``a``, ``b``: questions × runs score matrices of the two strategies (a 1-D array is one run); rows are the
    same questions in the same order. Returns the ``estimate`` (mean of A − mean of B), its ``se``, ``df``,
    ``ci_low`` / ``ci_high``, ``t`` and two-sided ``p_value``, the variance components (``var_*``), the pooled
    variance of the run means within a strategy (``run_means_var``, unbiased for σ²_run + σ²_e / n), the run and
    question counts and ``confounded`` (one run per strategy: strategy and run cannot be told apart, so
    ``se``, the interval and ``p_value`` are NaN).

    >>> out = compare_runs([1, 0, 1, 1], [0, 0, 1, 0])
    >>> out["estimate"], out["confounded"], math.isnan(out["p_value"])
    (0.5, True, True)
    """
    a, b = _matrix(a, "a"), _matrix(b, "b")
    components = variance_components(a, b)
    k_a, k_b, n = a.shape[1], b.shape[1], len(a)
    run_means_a, run_means_b = a.mean(axis=0), b.mean(axis=0)
    out = {
        "estimate": float(run_means_a.mean() - run_means_b.mean()),
        "runs_a": k_a,
        "runs_b": k_b,
        "n_questions": n,
        **components.as_dict(),
        "run_sd_a": float(run_means_a.std(ddof=1)) if k_a > 1 else math.nan,
        "run_sd_b": float(run_means_b.std(ddof=1)) if k_b > 1 else math.nan,
        "confounded": components.run_df == 0,
        "method": METHOD,
    }
    if out["confounded"]:
        return out | {
            "se": math.nan,
            "df": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "t": math.nan,
            "p_value": math.nan,
        }
    run_means_var = _pooled(
        [(float(m.var(ddof=1)) if len(m) > 1 else 0.0, len(m) - 1) for m in (run_means_a, run_means_b)]
    )
    run_part = run_means_var * (1 / k_a + 1 / k_b)
    question_part = components.question_by_strategy / n
    se, df = _combined(run_part, components.run_df, question_part, n - 1)
    t = out["estimate"] / se if se > 0 else (0.0 if out["estimate"] == 0 else math.copysign(math.inf, out["estimate"]))
    half = stats.t.ppf(0.5 + level / 2, df) * se
    return out | {
        "se": se,
        "df": df,
        "ci_low": out["estimate"] - half,
        "ci_high": out["estimate"] + half,
        "t": t,
        "p_value": float(2 * stats.t.sf(abs(t), df)) if se > 0 else float(out["estimate"] == 0),
        "run_means_var": run_means_var,
    }


def _combined(run_part: float, run_df: float, question_part: float, question_df: float) -> tuple[float, float]:
    """Standard error and Welch–Satterthwaite df of a sum of two variance estimates."""
    total = run_part + question_part
    if total <= 0:
        return 0.0, float(run_df)
    denominator = run_part**2 / run_df + (question_part**2 / question_df if question_df > 0 else 0.0)
    return math.sqrt(total), float(total**2 / denominator) if denominator > 0 else float(run_df)


def design_se(components: Components, runs: int, n_questions: int) -> tuple[float, float]:
    """The standard error and degrees of freedom of :func:`compare_runs` for ``runs`` per strategy on
    ``n_questions`` questions, from known variance components (the run means' spread is σ²_run + σ²_e / n).

    >>> se, df = design_se(Components(0.04, 0.0009, 0.0, 0.15, 4), runs=3, n_questions=150)
    >>> round(se, 4), df
    (0.0356, 4.0)
    """
    if runs < 1 or n_questions < 2:
        raise ValueError(f"need at least 1 run and 2 questions (got {runs} and {n_questions})")
    if runs < 2:
        return math.nan, math.nan
    residual = 0.0 if math.isnan(components.residual) else components.residual
    qxs = 0.0 if math.isnan(components.question_by_strategy) else components.question_by_strategy
    run_part = (components.run + residual / n_questions) * 2 / runs
    return _combined(run_part, 2 * runs - 2, qxs / n_questions, n_questions - 1)


def run_power(effect: float, components: Components, runs: int, n_questions: int, alpha: float = 0.05) -> float:
    """Power of the two-sided run-unit t-test to detect ``effect`` (score units) at level ``alpha`` (already
    divided by the family size if the test is corrected): noncentral t with the design's df.

    >>> c = Components(0.04, 0.0009, 0.0, 0.15, 4)
    >>> round(run_power(0.10, c, runs=3, n_questions=150), 2)
    0.57
    """
    se, df = design_se(components, runs, n_questions)
    if math.isnan(se):
        return math.nan
    if se == 0:
        return 1.0 if effect else alpha
    critical, noncentrality = stats.t.ppf(1 - alpha / 2, df), abs(effect) / se
    wrong_side = stats.nct.cdf(-critical, df, noncentrality)  # scipy gives NaN where it is vanishingly small
    return float(stats.nct.sf(critical, df, noncentrality) + np.nan_to_num(wrong_side))


def run_mde(components: Components, runs: int, n_questions: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest effect (score units) the run-unit test detects with ``power``; NaN for one run.

    >>> round(run_mde(Components(0.04, 0.0009, 0.0, 0.15, 4), runs=3, n_questions=150), 3)
    0.134
    """
    se, _ = design_se(components, runs, n_questions)
    if math.isnan(se) or se == 0:
        return math.nan if math.isnan(se) else 0.0
    high = se
    while run_power(high, components, runs, n_questions, alpha) < power:
        high *= 2
    return float(optimize.brentq(lambda e: run_power(e, components, runs, n_questions, alpha) - power, 0, high))


def _smallest(meets, what: str, start: int, limit: int) -> float:
    """The smallest integer x in [start, limit] with meets(x), by doubling then bisection; inf if none."""
    if meets(start):
        return start
    low, high = start, start * 2
    while not meets(high):
        if high >= limit:
            return math.inf
        low, high = high, min(high * 2, limit)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if meets(middle) else (middle, high)
    return high


def runs_needed(
    effect: float, components: Components, n_questions: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Runs per strategy the run-unit test needs to detect ``effect`` on ``n_questions`` questions (inf when
    the question term alone hides it, at any number of runs).

    >>> runs_needed(0.05, Components(0.04, 0.0004, 0.0, 0.15, 4), n_questions=150)
    10
    """
    return _smallest(lambda k: run_power(effect, components, k, n_questions, alpha) >= power, "runs", 2, 10_000)


def questions_needed(
    effect: float, components: Components, runs: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Questions the run-unit test needs to detect ``effect`` with ``runs`` per strategy (inf when run-to-run
    variance alone hides it, at any number of questions; NaN for one run).

    >>> questions_needed(0.05, Components(0.04, 0.0004, 0.0, 0.15, 4), runs=5)
    715
    """
    if runs < 2:
        return math.nan
    return _smallest(lambda n: run_power(effect, components, runs, n, alpha) >= power, "questions", 2, 10**7)


def seed_components(run_scores) -> dict:
    """How much of one strategy's run-to-run spread comes from the order seed and how much from the training seed.

    ``run_scores``: order seeds × training seeds, one run's mean score per entry (a crossed design). A two-way
    ANOVA without replication gives the order component ((MS_order − MS_e) / training seeds), the training
    component ((MS_train − MS_e) / order seeds), each floored at 0, and the residual (their interaction plus the
    scoring noise of a run's mean); ``order_share`` is the order's part of the three.

    >>> out = seed_components([[60.0, 62.0], [70.0, 72.0]])
    >>> out["order"], out["train"], out["order_share"]
    (50.0, 2.0, 0.962)
    """
    y = np.asarray(run_scores, dtype=float)
    if y.ndim != 2 or min(y.shape) < 2 or np.isnan(y).any():
        raise ValueError(f"need an order seeds × training seeds table of at least 2 × 2 without gaps, got {y.shape}")
    orders, trains = y.shape
    ms_order, ms_train, ms_e = _anova(y)
    order, train = max(0.0, (ms_order - ms_e) / trains), max(0.0, (ms_train - ms_e) / orders)
    total = order + train + ms_e
    return {
        "order_seeds": orders,
        "train_seeds": trains,
        "order": float(order),
        "train": float(train),
        "residual": float(ms_e),
        "order_share": round(float(order / total), 3) if total > 0 else math.nan,
    }
