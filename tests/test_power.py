"""Minimal detectable differences against closed forms, the exact McNemar power, the former noncentral-t solver
and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower

from hils_kit.stats.power import (
    mcnemar_exact_power,
    mde_accuracy_points,
    mde_mcnemar_exact,
    mde_paired_mean,
    questions_needed,
)

Z_ALPHA, Z_POWER = stats.norm.ppf(0.975), stats.norm.ppf(0.8)


@pytest.mark.parametrize("difference, discordance", [(0.01, 0.3), (0.05, 0.2), (0.1, 0.15), (0.02, 0.05)])
def test_questions_needed_is_connors_formula(difference, discordance):
    connor = (Z_ALPHA * math.sqrt(discordance) + Z_POWER * math.sqrt(discordance - difference**2)) ** 2 / difference**2
    assert questions_needed(difference, discordance) == math.ceil(connor)


@pytest.mark.parametrize("discordance, n", [(0.2, 400), (0.35, 50), (0.1, 1000)])
def test_mde_and_questions_needed_invert_each_other(discordance, n):
    mde = mde_accuracy_points(discordance, n) / 100
    assert questions_needed(mde, discordance) == n
    assert questions_needed(mde * 0.99, discordance) > n


def test_mde_accuracy_has_80_percent_power_in_simulation():
    discordance, n = 0.2, 500
    delta = mde_accuracy_points(discordance, n) / 100
    rng = np.random.default_rng(0)
    counts = rng.multinomial(n, [(discordance + delta) / 2, (discordance - delta) / 2, 1 - discordance], size=4000)
    a_only, b_only = counts[:, 0], counts[:, 1]
    z = (a_only - b_only) / np.sqrt(a_only + b_only)  # McNemar's test without continuity correction
    assert (np.abs(z) > Z_ALPHA).mean() == pytest.approx(0.8, abs=0.03)


def test_mde_accuracy_edge_cases():
    assert math.isnan(mde_accuracy_points(0.0, 100))  # the systems never disagree
    assert mde_accuracy_points(0.02, 10) == math.inf  # not even the largest possible difference
    assert mde_accuracy_points(0.2, 400, alpha=0.01) > mde_accuracy_points(0.2, 400)
    assert mde_accuracy_points(0.2, 400, power=0.9) > mde_accuracy_points(0.2, 400)
    with pytest.raises(ValueError, match="discordance"):
        mde_accuracy_points(1.5, 100)
    with pytest.raises(ValueError, match="alpha and power"):
        mde_accuracy_points(0.2, 100, power=80)
    assert math.isnan(questions_needed(0.3, discordance=0.2)) and math.isnan(questions_needed(0, 0.2))


def test_replicate_noise_raises_the_mde_and_replicates_lower_it():
    base = mde_accuracy_points(0.2, 400)
    noisy = mde_accuracy_points(0.2, 400, replicates=1, replicate_variance=0.0004)
    assert noisy > base
    assert base < mde_accuracy_points(0.2, 400, replicates=4, replicate_variance=0.0004) < noisy
    # with tau2: MDE² (in shares) solves the same condition; check one value by hand
    delta = noisy / 100
    v0, v1 = 0.2 / 400 + 0.0008, (0.2 - delta**2) / 400 + 0.0008
    assert Z_ALPHA * math.sqrt(v0) + Z_POWER * math.sqrt(v1) == pytest.approx(delta)


def test_questions_needed_with_run_noise():
    # 2.80 * sqrt(2 * 1e-4 / 2) = 0.028 > 0.01: run noise alone hides one point at 2 replicates
    assert questions_needed(0.01, 0.3, replicates=2, replicate_variance=1e-4) == math.inf
    n = questions_needed(0.05, 0.3, replicates=2, replicate_variance=1e-4)
    assert mde_accuracy_points(0.3, n, 2, 1e-4) <= 5 < mde_accuracy_points(0.3, n - 1, 2, 1e-4)


@pytest.mark.parametrize("discordance", [0.05, 0.1, 0.2, 0.3, 0.5])
@pytest.mark.parametrize("n", [200, 500, 1000, 5000])
def test_connors_mde_has_about_80_percent_exact_power(discordance, n):
    # the normal approximation is a little optimistic for the exact test: its power falls short of 0.8, less so
    # as the discordant questions grow in number
    delta = mde_accuracy_points(discordance, n) / 100
    exact = mcnemar_exact_power(delta, discordance, n)
    assert exact == pytest.approx(mcnemar_exact_power(-delta, discordance, n))
    assert 0.74 <= exact < 0.8
    if n * discordance >= 250:
        assert exact >= 0.775


def test_mcnemar_exact_power_matches_a_simulation_of_the_exact_test():
    discordance, difference, n = 0.2, 0.06, 300
    rng = np.random.default_rng(4)
    counts = rng.multinomial(
        n, [(discordance + difference) / 2, (discordance - difference) / 2, 1 - discordance], size=4000
    )
    pairs, times = np.unique(counts[:, :2], axis=0, return_counts=True)
    p = np.array([stats.binomtest(int(a), int(a + b)).pvalue if a + b else 1.0 for a, b in pairs])
    simulated = times[p <= 0.05].sum() / len(counts)
    assert mcnemar_exact_power(difference, discordance, n) == pytest.approx(simulated, abs=0.02)


def test_mde_mcnemar_exact_reaches_the_power_and_is_above_connors():
    delta = mde_mcnemar_exact(0.3, 200)
    assert mcnemar_exact_power(delta, 0.3, 200) == pytest.approx(0.8, abs=1e-4)
    assert delta > mde_accuracy_points(0.3, 200) / 100
    assert math.isnan(mde_mcnemar_exact(0.0, 200)) and mde_mcnemar_exact(0.02, 10) == math.inf


@pytest.mark.parametrize(
    "n, alpha, power, effect",
    [
        # the former hand-written solver (noncentral t, brentq): detectable d = mean / sd
        (3, 0.05, 0.8, 3.264043549699732),
        (10, 0.05, 0.8, 0.9960013714554693),
        (50, 0.05, 0.8, 0.40418300213604236),
        (200, 0.05, 0.8, 0.19906417540678795),
        (1000, 0.05, 0.8, 0.08867907559427378),
        (50, 0.01, 0.9, 0.5648318142510833),
        (30, 0.05 / 6, 0.8, 0.6763269870796675),
    ],
)
def test_mde_paired_mean_agrees_with_the_former_noncentral_t_solver(n, alpha, power, effect):
    differences = np.random.default_rng(n).normal(0.1, 0.7, n)
    sd = differences.std(ddof=1)
    mde = mde_paired_mean(differences, alpha, power)
    assert mde == pytest.approx(effect * sd, rel=1e-4)  # statsmodels solves the power to about 1e-5
    t_crit, nc = stats.t.ppf(1 - alpha / 2, n - 1), mde / sd * math.sqrt(n)
    assert stats.nct.sf(t_crit, n - 1, nc) + stats.nct.cdf(-t_crit, n - 1, nc) == pytest.approx(power, abs=1e-4)


def test_mde_paired_mean_undefined_cases():
    assert math.isnan(mde_paired_mean([0.3, 0.3, 0.3]))
    assert math.isnan(mde_paired_mean([0.3]))
    with pytest.raises(ValueError, match="without NaN"):
        mde_paired_mean([0.1, np.nan])
    with pytest.raises(ValueError, match="alpha and power"):
        mde_paired_mean([0.1, 0.3], power=80)


def test_mde_paired_mean_refuses_a_solution_off_the_root(monkeypatch):
    monkeypatch.setattr(TTestPower, "solve_power", lambda self, **kwargs: 10.0)
    with pytest.raises(ValueError, match="did not converge for 3 pairs"):
        mde_paired_mean([0.1, 0.3, 0.2], alpha=0.01, power=0.9)
