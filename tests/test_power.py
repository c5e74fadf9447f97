"""Minimal detectable differences against closed forms, recorded statsmodels values and simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hils_kit.stats.power import (
    discordance_rate,
    mde_accuracy_points,
    mde_paired_mean,
    power_summary,
    power_table,
    questions_needed,
    replicate_variance,
    replicates_needed,
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


def test_questions_and_replicates_needed_with_run_noise():
    # 2.80 * sqrt(2 * 1e-4 / 2) = 0.028 > 0.01: run noise alone hides one point at 2 replicates
    assert questions_needed(0.01, 0.3, replicates=2, replicate_variance=1e-4) == math.inf
    n = questions_needed(0.05, 0.3, replicates=2, replicate_variance=1e-4)
    assert mde_accuracy_points(0.3, n, 2, 1e-4) <= 5 < mde_accuracy_points(0.3, n - 1, 2, 1e-4)
    r = replicates_needed(0.05, 0.2, n_questions=1000, replicate_variance=2e-4)
    assert mde_accuracy_points(0.2, 1000, r, 2e-4) <= 5 < mde_accuracy_points(0.2, 1000, r - 1, 2e-4)
    assert replicates_needed(0.05, 0.2, n_questions=100, replicate_variance=2e-4) == math.inf  # too few questions
    assert replicates_needed(0.05, 0.2, n_questions=1000, replicate_variance=0.0) == 1


@pytest.mark.parametrize(
    "n, effect",
    [
        # statsmodels 0.14 TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8): detectable d = mean / sd
        (10, 0.9960019107624178),
        (50, 0.4041829997377859),
        (200, 0.19906465946973934),
    ],
)
def test_mde_paired_mean_matches_statsmodels(n, effect):
    differences = np.random.default_rng(n).normal(0.1, 0.7, n)
    # statsmodels solves to about 1e-6
    assert mde_paired_mean(differences) == pytest.approx(effect * differences.std(ddof=1), rel=1e-5)


def test_mde_paired_mean_undefined_cases():
    assert math.isnan(mde_paired_mean([0.3, 0.3, 0.3]))
    assert math.isnan(mde_paired_mean([0.3]))
    with pytest.raises(ValueError, match="without NaN"):
        mde_paired_mean([0.1, np.nan])


def test_discordance_rate_over_replicate_pairs():
    assert discordance_rate([1, 0, 1, 1], [1, 1, 0, 1]) == 0.5
    # the replicate columns of A against the single run of B: (0 + 2/3) / 2
    assert discordance_rate([[1, 1], [0, 1], [0, 1]], [1, 0, 0]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="same questions"):
        discordance_rate([1, 0], [1, 0, 1])


def test_replicate_variance_recovers_a_known_run_shift():
    rng = np.random.default_rng(1)
    n, reps, shift_sd = 3000, 30, 0.05
    p = rng.uniform(0.2, 0.6, n)[:, None] + rng.normal(0, shift_sd, reps)[None, :]
    correct = rng.random((n, reps)) < p
    assert replicate_variance(correct) == pytest.approx(shift_sd**2, rel=0.35)
    # no run shift: only question-level flips, which the component leaves out
    flips = rng.random((n, reps)) < rng.uniform(0.2, 0.6, n)[:, None]
    assert replicate_variance(flips) < 0.1 * flips.mean(axis=0).var(ddof=1) + 1e-6
    assert math.isnan(replicate_variance([1, 0, 1]))


def long_predictions(rng, datasets=("medqa", "medmcqa"), strategies=("random", "curriculum", "blocked"), n=60, reps=2):
    rows = []
    for dataset in datasets:
        for strategy in strategies:
            for replicate in range(reps):
                rows.append(
                    pd.DataFrame(
                        {
                            "dataset": dataset,
                            "strategy": strategy,
                            "replicate": replicate,
                            "id": [f"q{i}" for i in range(n)],
                            "correct": rng.random(n) < 0.3,
                            "gold_logprob": rng.normal(-1.4, 0.4, n),
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def test_power_table_one_row_per_test_set_pooling_the_comparisons():
    long = long_predictions(np.random.default_rng(2))
    table = power_table(long, baseline="random")
    assert table["dataset"].tolist() == ["medqa", "medmcqa"]
    assert table["compared"].tolist() == ["curriculum, blocked"] * 2
    for column in (
        "mde_accuracy_points",
        "mde_gold_logprob",
        "questions_needed_1pt",
        "replicates_needed_1pt",
        "discordance",
        "replicate_variance",
        "n_questions",
        "accuracy_method",
    ):
        assert column in table
    medqa = long[long["dataset"] == "medqa"]

    def matrix(strategy, column):
        part = medqa[medqa["strategy"] == strategy]
        return part.pivot(index="id", columns="replicate", values=column).sort_index().to_numpy(dtype=float)

    discordances = [
        discordance_rate(matrix(s, "correct"), matrix("random", "correct")) for s in ("curriculum", "blocked")
    ]
    assert table.loc[0, "discordance"] == pytest.approx(np.mean(discordances))
    assert table.loc[0, "n_questions"] == 60 and table.loc[0, "replicates"] == 2
    # a single comparison gives exactly power_summary
    one = power_table(long[long["strategy"] != "blocked"], baseline="random").iloc[0]
    summary = power_summary(
        matrix("curriculum", "correct"),
        matrix("random", "correct"),
        matrix("curriculum", "gold_logprob"),
        matrix("random", "gold_logprob"),
    )
    for key in ("discordance", "replicate_variance", "mde_accuracy_points", "mde_gold_logprob", "questions_needed_1pt"):
        assert one[key] == pytest.approx(summary[key])


def test_power_table_refuses_ambiguous_or_incomplete_input():
    long = long_predictions(np.random.default_rng(3), datasets=("medqa",))
    with pytest.raises(ValueError, match="question 'q0' twice.*'model'"):
        power_table(pd.concat([long, long.iloc[:1]]), baseline="random")
    with pytest.raises(ValueError, match="no rows of the baseline"):
        power_table(long, baseline="interleaved")
    with pytest.raises(ValueError, match="different questions"):
        power_table(long[~((long["strategy"] == "blocked") & (long["id"] == "q3"))], baseline="random")
    with pytest.raises(KeyError, match="gold_logprob"):
        power_table(long.drop(columns="gold_logprob"), baseline="random")
    assert "mde_gold_logprob" in power_table(long.drop(columns="gold_logprob"), baseline="random", gold_logprob=None)
