"""What a paired comparison of two systems on the same test questions could detect: minimal detectable
differences for the question-level tests.

Two systems (say a strategy and Random Shuffle, or two trained models) are scored on the same ``n`` test
questions. At two-sided level ``alpha`` and the given ``power`` (0.05 and 0.8 by default):

* **accuracy, normal approximation** (:func:`mde_accuracy_points`, in accuracy points; :func:`questions_needed`
  solves the same condition for ``n``): McNemar's test as approximated by Connor (1987). With ψ the discordance
  rate (share of questions exactly one system gets right) and δ the accuracy difference, δ is detectable when
  ``z(1-alpha/2)·sqrt(V0) + z(power)·sqrt(V1) <= δ`` with ``V0 = ψ/n + 2τ²/R`` and
  ``V1 = (ψ - δ²)/n + 2τ²/R``. τ² is the between-run variance of one system's accuracy on fixed questions (the
  ``run`` component of :func:`hils_kit.stats.runs.variance_components` on 0/1 scores) and ``R`` the runs per
  system; τ² = 0 gives Connor's formula.
* **accuracy, exact** (:func:`mcnemar_exact_power`, :func:`mde_mcnemar_exact`): the power of the exact McNemar
  test summed over the binomial distributions; a little below Connor's approximation at small counts.
* **a continuous score** (:func:`mde_paired_mean`, e.g. gold log-prob in nats): the paired t-test on the
  per-question differences, solved by statsmodels' ``TTestPower``.

The power of the test the kit runs between strategies, with the training run as the unit, is in
:mod:`hils_kit.stats.runs` (:func:`~hils_kit.stats.runs.run_mde`, :func:`~hils_kit.stats.runs.runs_needed`).

>>> round(mde_accuracy_points(discordance=0.3, n_questions=50), 1)
21.2
>>> questions_needed(0.01, discordance=0.3)
23545
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.power import TTestPower


def _check_levels(alpha: float, power: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie strictly between 0 and 1 (got {alpha} and {power})")


def _z(alpha: float, power: float) -> tuple[float, float]:
    _check_levels(alpha, power)
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

    ``discordance``: share of questions exactly one system gets right; ``replicates`` (R) and
    ``replicate_variance`` (τ², in accuracy share²): the run-to-run term, none by default. ``inf`` when no
    difference up to the discordance itself is detectable; NaN when the systems never disagree (ψ = 0: nothing
    to measure).

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


def mde_paired_mean(differences, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean of paired differences detectable by a two-sided paired t-test, in their units: the effect
    size statsmodels' ``TTestPower`` solves for ``n`` pairs, times the differences' standard deviation.

    ``differences``: one value per question (e.g. gold log-prob of A minus B). NaN with fewer than 2
    questions or differences that do not vary. A solution whose power is not ``power`` (statsmodels' solver
    can stop off the root for very few pairs at a strict ``alpha``) is refused.

    >>> round(mde_paired_mean([0.5, -0.5] * 25), 3)
    0.204
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or np.isnan(d).any():
        raise ValueError("mde_paired_mean: need a 1-D array of per-question differences without NaN")
    _check_levels(alpha, power)
    sd = float(d.std(ddof=1)) if len(d) >= 2 else 0.0
    if not sd > 0:
        return math.nan
    solver = TTestPower()
    effect = solver.solve_power(effect_size=None, nobs=len(d), alpha=alpha, power=power, alternative="two-sided")
    reached = solver.power(effect, len(d), alpha, alternative="two-sided")
    if not abs(reached - power) < 1e-3:
        raise ValueError(
            f"mde_paired_mean: statsmodels' TTestPower did not converge for {len(d)} pairs at alpha {alpha} "
            f"(effect size {effect} has power {reached:.3f}, not {power})"
        )
    return float(effect) * sd


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
