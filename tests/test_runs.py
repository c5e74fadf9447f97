"""The run-unit comparison: its estimate against scipy's t-test on run means, its variance components, its
calibration on simulated studies with run-to-run noise, and the power of the same test."""

import math

import numpy as np
import pytest
from scipy import stats

from hils_kit.stats.runs import (
    Components,
    compare_runs,
    design_se,
    questions_needed,
    run_mde,
    run_power,
    runs_needed,
    variance_components,
)
from hils_kit.stats.simulate import run_accuracy_sd, simulate_predictions


def _matrices(frame):
    return {
        strategy: rows.pivot(index="question", columns="run", values="correct").to_numpy(float)
        for strategy, rows in frame.groupby("strategy")
    }


def test_without_question_noise_it_is_the_two_sample_t_test_on_run_means():
    rng = np.random.default_rng(0)
    questions = rng.normal(size=(40, 1))
    a = questions + rng.normal(0.3, 0.2, size=(1, 3))  # every question moves with its run
    b = questions + rng.normal(0.0, 0.2, size=(1, 4))
    out = compare_runs(a, b)
    reference = stats.ttest_ind(a.mean(axis=0), b.mean(axis=0))
    assert out["var_question_by_strategy"] == pytest.approx(0, abs=1e-12)
    assert out["p_value"] == pytest.approx(reference.pvalue)
    assert out["df"] == pytest.approx(5)
    assert out["estimate"] == pytest.approx(a.mean() - b.mean())
    assert out["ci_low"] < out["estimate"] < out["ci_high"]


def test_question_by_strategy_noise_widens_the_interval():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(60, 1))
    shifts = rng.normal(0, 0.1, size=(1, 3))
    calm = compare_runs(base + shifts, base + rng.normal(0, 0.1, size=(1, 3)))
    wobble = rng.normal(0, 0.5, size=(60, 1))  # strategy A helps some questions and hurts others
    noisy = compare_runs(base + wobble + shifts, base + rng.normal(0, 0.1, size=(1, 3)))
    assert noisy["var_question_by_strategy"] > 0.1
    assert noisy["se"] > 1.5 * calm["se"]
    assert noisy["df"] > calm["df"]  # the question term brings its own degrees of freedom


def test_one_run_each_is_confounded_and_gets_no_p_value():
    out = compare_runs([1, 0, 1, 1, 0], [0, 0, 1, 0, 0])
    assert out["confounded"] and out["runs_a"] == out["runs_b"] == 1
    assert all(math.isnan(out[k]) for k in ("se", "df", "ci_low", "ci_high", "p_value", "var_run"))
    # one run beside several is not confounded: the baseline's runs measure the run variance
    assert not compare_runs([[1, 1], [0, 1], [1, 0]], [1, 0, 0])["confounded"]


def test_variance_components_recover_those_simulated():
    rng = np.random.default_rng(2)
    n, k = 400, 30

    def strategy():
        return rng.normal(0, 1.0, (n, 1)) * 0 + question + rng.normal(0, 0.3, (1, k)) + rng.normal(0, 0.5, (n, k))

    question = rng.normal(0, 1.0, (n, 1))
    c = variance_components(strategy(), strategy())
    assert c.run == pytest.approx(0.09, rel=0.3)
    assert c.residual == pytest.approx(0.25, rel=0.05)
    assert c.question == pytest.approx(question.var(), rel=0.1)
    assert c.question_by_strategy == pytest.approx(0, abs=0.01)
    assert c.run_df == 2 * k - 2


def test_bad_matrices_are_refused():
    with pytest.raises(ValueError, match="same questions"):
        compare_runs(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="question 1, run 0"):
        compare_runs([[1, 1], [np.nan, 0]], [[1, 1], [0, 0]])


def test_null_calibration_with_run_shifts_and_favourite_letters():
    """The suite's small calibration (the benchmark runs 1,000+): 3 strategies' worth of pairs, 3 runs each,
    150 questions, a per-run shift and a per-run favourite letter, no strategy effect."""
    rejections, old = [], []
    for seed in range(400):
        m = _matrices(simulate_predictions(["a", "b"], runs=3, questions=150, letter_bias=0.4, seed=seed))
        rejections.append(compare_runs(m["a"], m["b"])["p_value"] <= 0.05)
        old.append(stats.ttest_rel(m["a"].mean(axis=1), m["b"].mean(axis=1)).pvalue <= 0.05)  # questions only
    assert 0.02 <= np.mean(rejections) <= 0.08
    assert np.mean(old) > 0.08  # treating the questions as the only chance rejects too often


def test_the_simulated_run_spread_is_realistic():
    frame = simulate_predictions(["a"], runs=40, questions=300, letter_bias=0.4, seed=3)
    assert 2 <= run_accuracy_sd(frame) <= 5


def test_design_se_matches_the_se_compare_runs_estimates_on_average():
    rng = np.random.default_rng(4)
    ses = []
    for _ in range(200):
        question = rng.normal(0, 1, (100, 1))
        a = question + rng.normal(0, 0.2, (1, 3)) + rng.normal(0, 0.6, (100, 3))
        b = question + rng.normal(0, 0.2, (1, 3)) + rng.normal(0, 0.6, (100, 3))
        out = compare_runs(a, b)
        ses.append(out["se"] ** 2)
    se, df = design_se(Components(1.0, 0.04, 0.0, 0.36, 4), runs=3, n_questions=100)
    assert np.mean(ses) == pytest.approx(se**2, rel=0.1)
    assert df == 4


def test_power_grows_with_runs_and_effect_and_needs_are_consistent():
    c = Components(0.04, 0.0009, 0.0, 0.15, 4)
    assert run_power(0.05, c, 3, 150) < run_power(0.05, c, 6, 150) < run_power(0.05, c, 12, 150)
    assert run_power(0.02, c, 3, 150) < run_power(0.08, c, 3, 150)
    mde = run_mde(c, 3, 150)
    assert run_power(mde, c, 3, 150) == pytest.approx(0.8, abs=1e-6)
    k = runs_needed(0.05, c, 150)
    assert run_power(0.05, c, k, 150) >= 0.8 > run_power(0.05, c, k - 1, 150)
    n = questions_needed(0.05, c, runs=10)
    assert run_power(0.05, c, 10, n) >= 0.8 > run_power(0.05, c, 10, n - 1)
    assert questions_needed(0.01, c, runs=2) == math.inf  # the run variance alone hides one point
    assert math.isnan(run_mde(c, 1, 150)) and math.isnan(questions_needed(0.05, c, runs=1))
    assert run_power(0.1, c, 3, 150, alpha=0.05 / 6) < run_power(0.1, c, 3, 150)


def test_seed_components_split_the_run_spread_into_order_and_training_seed():
    from hils_kit.stats.runs import seed_components

    rng = np.random.default_rng(5)
    orders, trains = 40, 40
    y = rng.normal(0, 3.0, (orders, 1)) + rng.normal(0, 1.0, (1, trains)) + rng.normal(0, 0.5, (orders, trains))
    out = seed_components(y)
    assert out["order"] == pytest.approx(9.0, rel=0.5)
    assert out["train"] == pytest.approx(1.0, rel=0.5)
    assert out["residual"] == pytest.approx(0.25, rel=0.2)
    assert 0.8 < out["order_share"] < 0.95
    with pytest.raises(ValueError, match="2 × 2"):
        seed_components([[1.0, 2.0]])


def test_seed_spread_reports_crossed_runs_only():
    from hils_kit.analyse.comparisons import seed_spread
    from hils_kit.analyse.predictions import check_predictions

    frame = check_predictions(simulate_predictions(["random", "curriculum"], runs=4, questions=60, seed=6))
    assert seed_spread(frame).empty  # no seed columns: nothing to split
    index = frame["run"].str[-1].astype(int)
    crossed = frame.assign(order_seed=index // 2, train_seed=index % 2)
    table = seed_spread(crossed)
    assert sorted(table["strategy"]) == ["curriculum", "random"]
    assert set(table[["order_seeds", "train_seeds"]].stack()) == {2}
    one_order = frame.assign(order_seed=0, train_seed=index)
    assert seed_spread(one_order).empty  # a single order seed has no order component to estimate
