"""Paired tests and bootstrap intervals against hand values, scipy and (recorded) statsmodels values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hils_kit.stats.significance import (
    mcnemar_exact,
    replicate_bootstrap_difference,
    sign_flip_test,
)


def pairs_from_table(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = [1] * both + [1] * a_only + [0] * b_only + [0] * neither
    b = [1] * both + [0] * a_only + [1] * b_only + [0] * neither
    return np.array(a), np.array(b)


@pytest.mark.parametrize(
    "table, expected",
    [
        # statsmodels 0.14 mcnemar([[both, a_only], [b_only, neither]], exact=True).pvalue
        ((5, 10, 2, 3), 0.03857421875),
        ((50, 7, 19, 24), 0.028959274291992188),
    ],
)
def test_mcnemar_exact_matches_statsmodels(table, expected):
    out = mcnemar_exact(*pairs_from_table(*table))
    assert out["p_value"] == pytest.approx(expected, rel=1e-9)
    assert (out["a_only"], out["b_only"], out["n"]) == (table[1], table[2], sum(table))
    assert out["difference"] == pytest.approx((table[1] - table[2]) / sum(table))
    assert out["paired_over"] == "questions" and out["test"] == "McNemar exact"


def test_mcnemar_exact_without_disagreement_and_bad_input():
    assert mcnemar_exact([1, 0, 1], [1, 0, 1])["p_value"] == 1.0
    assert (
        mcnemar_exact([True, False], [False, True], paired_over="questions of medqa")["paired_over"]
        == "questions of medqa"
    )
    with pytest.raises(ValueError, match="equal-length"):
        mcnemar_exact([1, 0], [1])
    with pytest.raises(ValueError, match="True/False or 1/0"):
        mcnemar_exact([0.5, 1], [1, 1])


def test_sign_flip_exact_matches_scipy_permutation_test():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.3, 1, 11), rng.normal(0, 1, 11)
    b[4] = a[4]  # a zero difference changes nothing
    expected = stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples", n_resamples=np.inf
    ).pvalue
    out = sign_flip_test(a, b)
    assert out["method"] == "exact"
    assert out["p_value"] == pytest.approx(expected, rel=1e-9)
    assert out["difference"] == pytest.approx(np.mean(a - b)) and out["paired_over"] == "questions"


def test_sign_flip_monte_carlo_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.25, 1, 18), rng.normal(0, 1, 18)
    exact = sign_flip_test(a, b, exact_up_to=18)
    monte_carlo = sign_flip_test(a, b, n_resamples=20_000, seed=1, exact_up_to=0)
    assert exact["method"] == "exact" and monte_carlo["method"].startswith("Monte Carlo")
    assert monte_carlo["p_value"] == pytest.approx(exact["p_value"], abs=0.01)
    assert sign_flip_test(a, b, n_resamples=2000, seed=1, exact_up_to=0) == sign_flip_test(
        a, b, n_resamples=2000, seed=1, exact_up_to=0
    )


def test_sign_flip_extremes():
    assert sign_flip_test([0.2, 0.5], [0.2, 0.5])["p_value"] == 1.0
    strong = sign_flip_test(np.linspace(1, 2, 60), np.zeros(60), n_resamples=999)
    assert strong["p_value"] == pytest.approx(1 / 1000)  # never reached by a random pattern
    with pytest.raises(ValueError, match="exact_up_to"):
        sign_flip_test([1.0], [0.0], exact_up_to=40)
    with pytest.raises(ValueError, match="NaN at question 1"):
        sign_flip_test([0.0, np.nan], [0.0, 0.0])


def test_replicate_bootstrap_with_identical_questions_only_resamples_replicates():
    # every question alike: the interval comes from drawing 2 of the replicates (means 0, 1/2, 1)
    a = np.tile([0.0, 1.0], (30, 1))
    out = replicate_bootstrap_difference(a, np.zeros(30), n_resamples=4000)
    assert out["difference"] == 0.5 and out["ci"] == [0.0, 1.0]
    assert (out["n"], out["replicates_a"], out["replicates_b"]) == (30, 2, 1)
    assert "questions" in out["paired_over"] and "replicates" in out["paired_over"]


def test_replicate_bootstrap_widens_with_run_to_run_noise():
    rng = np.random.default_rng(0)
    quality = rng.normal(0, 1, 200)  # shared question difficulty: cancels in the paired difference
    a_still = np.repeat((quality + 0.2 + rng.normal(0, 0.5, 200))[:, None], 4, axis=1)
    b_still = np.repeat((quality + rng.normal(0, 0.5, 200))[:, None], 4, axis=1)
    calm = replicate_bootstrap_difference(a_still, b_still, seed=2)
    # with identical replicates this is the ordinary paired bootstrap over questions: ±1.96 sd/sqrt(n)
    half = 1.96 * np.std(a_still[:, 0] - b_still[:, 0]) / np.sqrt(200)
    assert calm["ci"][1] - calm["ci"][0] == pytest.approx(2 * half, rel=0.15)
    noisy = replicate_bootstrap_difference(a_still + rng.normal(0, 0.3, 4), b_still + rng.normal(0, 0.3, 4), seed=2)
    assert noisy["ci"][1] - noisy["ci"][0] > 1.5 * (calm["ci"][1] - calm["ci"][0])
    assert replicate_bootstrap_difference(a_still, b_still, seed=2) == calm


def simulated_answers(rng, run_shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """0/1 answers of two systems to 100 questions in 3 runs each: independent Bernoulli draws around a
    per-question probability (A: p, B: 0.8 p with p ~ Beta(2, 2): a true difference of 0.1), each run's
    probabilities moved by a shift ~ N(0, ``run_shift``)."""
    p = rng.beta(2, 2, (100, 1))
    runs = [np.clip(q + rng.normal(0, run_shift, (1, 3)), 0, 1) for q in (p, 0.8 * p)]
    return tuple((rng.random((100, 3)) < q).astype(float) for q in runs)


def test_replicate_bootstrap_without_run_effect_matches_the_question_bootstrap():
    rng = np.random.default_rng(11)
    ratios, covered = [], []
    for seed in range(200):
        a, b = simulated_answers(rng)
        both = replicate_bootstrap_difference(a, b, n_resamples=400, seed=seed)["ci"]
        questions = replicate_bootstrap_difference(a.mean(axis=1), b.mean(axis=1), n_resamples=400, seed=seed)["ci"]
        ratios.append((both[1] - both[0]) / (questions[1] - questions[0]))
        covered.append(both[0] <= 0.1 <= both[1])
    assert np.median(ratios) == pytest.approx(1, abs=0.1) and np.mean(ratios) == pytest.approx(1, abs=0.15)
    assert 0.9 <= np.mean(covered) <= 0.99


def test_replicate_bootstrap_widens_with_a_per_run_shift():
    rng = np.random.default_rng(12)
    ratios = []
    for seed in range(20):
        a, b = simulated_answers(rng, run_shift=0.1)
        both = replicate_bootstrap_difference(a, b, n_resamples=400, seed=seed)["ci"]
        questions = replicate_bootstrap_difference(a.mean(axis=1), b.mean(axis=1), n_resamples=400, seed=seed)["ci"]
        ratios.append((both[1] - both[0]) / (questions[1] - questions[0]))
    assert np.mean(ratios) > 1.5


def test_replicate_bootstrap_refuses_different_questions_and_nan():
    with pytest.raises(ValueError, match="same questions"):
        replicate_bootstrap_difference(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="question 2, replicate 1"):
        replicate_bootstrap_difference(np.array([[0, 0], [0, 0], [0, np.nan]]), np.zeros((3, 2)))
