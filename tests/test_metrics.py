"""Metrics on hand-made predictions: accuracy, F1, baselines, debiasing, bootstrap, paired differences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hils_kit.score.metrics import (
    bootstrap_distribution,
    bootstrap_interval,
    debiased_bootstrap,
    debiased_log_probabilities,
    debiased_predictions,
    gold_scores,
    majority_baseline,
    paired_bootstrap_difference,
    summarize,
)


def predictions(gold: str, pred: str, probs, categories=None) -> pd.DataFrame:
    probs = np.asarray(probs, dtype=float)
    table = pd.DataFrame({"answer": list(gold), "pred": list(pred), "category": categories or ["c"] * len(gold)})
    for k, letter in enumerate("ABCDE"[: probs.shape[1]]):
        table[f"p_{letter}"] = probs[:, k]
    return table


def test_accuracy_f1_categories_and_letter_counts():
    gold, pred = "AABBCD", "ABBBCA"
    probs = np.full((6, 4), 0.25)
    s = summarize(predictions(gold, pred, probs, ["x", "x", "x", "y", "y", "y"]))
    assert s["n"] == 6
    assert s["accuracy"] == pytest.approx(4 / 6)
    # per letter: A precision 1/2 recall 1/2, B 2/3 and 1, C 1 and 1, D never predicted
    f1 = {"A": 0.5, "B": 0.8, "C": 1.0, "D": 0.0}
    support = {"A": 2, "B": 2, "C": 1, "D": 1}
    assert s["f1_macro"] == pytest.approx(np.mean(list(f1.values())))
    assert s["f1_weighted"] == pytest.approx(sum(f1[k] * support[k] for k in f1) / 6)
    assert s["per_category"] == {
        "x": {"n": 3, "accuracy": pytest.approx(2 / 3)},
        "y": {"n": 3, "accuracy": pytest.approx(2 / 3)},
    }
    assert s["predicted_letters"] == {"A": 2, "B": 3, "C": 1, "D": 0}
    assert s["gold_letters"] == {"A": 2, "B": 2, "C": 1, "D": 1}
    assert s["chance"] == pytest.approx(0.25)
    assert s["mean_p_gold"] == pytest.approx(0.25)


def test_majority_baseline_is_the_share_of_the_commonest_gold_letter():
    assert majority_baseline(list("ABBCB")) == ("B", pytest.approx(0.6))
    assert majority_baseline(list("BBAA")) == ("A", 0.5)  # ties go to the earlier letter
    s = summarize(predictions("ABBCB", "AAAAA", np.full((5, 3), 1 / 3)))
    assert (s["majority_letter"], s["majority_baseline"]) == ("B", pytest.approx(0.6))


def test_debiasing_removes_a_constant_letter_preference():
    # the model always prefers A, but relative to its usual preference it ranks the gold letter first
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3]])
    assert debiased_predictions(probs).tolist() == ["A", "B", "A", "B"]
    s = summarize(predictions("ABAB", "AAAA", probs))
    assert s["accuracy"] == 0.5
    assert s["debiased_accuracy"] == 1.0


def test_debiasing_costs_an_unbiased_model_on_skewed_gold_letters():
    # the documented assumption: the letter means are read off the test set, so a gold letter that is
    # more common there looks like a preference and is subtracted even from a model with none
    rng = np.random.default_rng(0)
    losses = {}
    for name, counts in (("skewed", [1100, 300, 300, 300]), ("balanced", [500] * 4)):
        gold = rng.permutation(np.repeat(np.arange(4), counts))
        logits = rng.normal(0, 1, (2000, 4))
        logits[np.arange(2000), gold] += 1.0  # the same signal for every letter: no letter preference
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        letters = np.array(list("ABCD"))
        s = summarize(predictions("".join(letters[gold]), "".join(letters[probs.argmax(axis=1)]), probs), 20)
        losses[name] = s["accuracy"] - s["debiased_accuracy"]
        if name == "skewed":
            assert s["gold_letter_shares"] == {"A": 0.55, "B": 0.15, "C": 0.15, "D": 0.15}
            assert 0.53 < s["accuracy"] < 0.59 and s["mean_gold_logprob_debiased"] < s["mean_gold_logprob"]
    assert 0.03 < losses["skewed"] < 0.07  # about 5 points, as the module docstring says
    assert abs(losses["balanced"]) < 0.015


def test_debiasing_with_mixed_option_counts_uses_each_rows_own_options():
    probs = np.array([[0.5, 0.3, 0.2, np.nan], [0.1, 0.1, 0.1, 0.7], [0.6, 0.2, 0.1, 0.1]])
    letters = debiased_predictions(probs)
    assert letters[0] in "ABC"  # never the missing option D
    s = summarize(predictions("ADA", "ADA", probs))
    assert s["chance"] == pytest.approx((1 / 3 + 1 / 4 + 1 / 4) / 3)


def test_bootstrap_interval_contains_estimate_and_is_deterministic_by_seed():
    rng = np.random.default_rng(1)
    correct = rng.random(200) < 0.3
    stat = lambda idx: correct[idx].mean()  # noqa: E731
    lo, hi = bootstrap_interval(stat, len(correct), seed=0)
    assert lo <= correct.mean() <= hi
    assert 0.05 < hi - lo < 0.2  # about ±6 pp at n=200
    assert bootstrap_interval(stat, len(correct), seed=0) == [lo, hi]
    assert bootstrap_interval(stat, len(correct), seed=1) != [lo, hi]


def test_summary_intervals_and_json():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=60)
    gold = "".join(rng.choice(list("ABCD"), 60))
    pred = "".join("ABCD"[i] for i in probs.argmax(1))
    table = predictions(gold, pred, probs)
    s = summarize(table, seed=3)
    assert s["accuracy_ci"][0] <= s["accuracy"] <= s["accuracy_ci"][1]
    assert s["debiased_accuracy_ci"][0] <= s["debiased_accuracy"] <= s["debiased_accuracy_ci"][1]
    assert summarize(table, seed=3) == s
    json.dumps(s, allow_nan=False)


def test_empty_predictions_are_refused():
    with pytest.raises(ValueError, match="empty"):
        summarize(predictions("", "", np.zeros((0, 4))))


def test_paired_bootstrap_difference():
    a = np.array([1, 1, 1, 0, 1, 1, 0, 1] * 25)
    b = np.array([1, 0, 1, 0, 0, 1, 0, 0] * 25)
    d = paired_bootstrap_difference(a, b, seed=0)
    assert d["difference"] == pytest.approx(a.mean() - b.mean())
    assert d["ci"][0] > 0 and d["p_value"] < 0.01
    assert (d["a_only"], d["b_only"], d["test"], d["paired_over"]) == (75, 0, "McNemar exact", "questions")
    assert paired_bootstrap_difference(a, b, seed=0) == d
    same = paired_bootstrap_difference(a, a)
    assert same["difference"] == 0 and same["ci"] == [0.0, 0.0] and same["p_value"] == 1.0
    # a small difference among many agreements is not significant
    c = a.copy()
    c[:3] = 1 - c[:3]
    # the p-value is exact McNemar: 3 discordant questions all one way give 2 / 2**3, whatever the bootstrap says
    assert paired_bootstrap_difference(a, c)["p_value"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap_difference(a, b[:-1])


def test_gold_scores_hand_values_with_mixed_option_counts():
    probs = np.array([[0.5, 0.3, 0.2, np.nan], [0.1, 0.2, 0.3, 0.4]])
    scores = gold_scores(probs, ["B", "D"])
    assert scores["p_gold"].tolist() == pytest.approx([0.3, 0.4])
    assert scores["gold_logprob"].tolist() == pytest.approx([np.log(0.3), np.log(0.4)])
    # Brier over the question's own letters: the missing D of row 0 does not count
    assert scores["brier"].tolist() == pytest.approx([0.25 + 0.49 + 0.04, 0.01 + 0.04 + 0.09 + 0.36])
    # letter means: A (ln .5 + ln .1)/2, B (ln .3 + ln .2)/2, C (ln .2 + ln .3)/2, D ln .4 (row 1 only)
    means = np.log([np.sqrt(0.05), np.sqrt(0.06), np.sqrt(0.06), 0.4])
    row0 = np.log(probs[0, :3]) - means[:3]
    assert scores["gold_logprob_debiased"][0] == pytest.approx(row0[1] - np.log(np.exp(row0).sum()))
    with pytest.raises(ValueError, match="row 0: gold letter 'D' is not one of the question's options"):
        gold_scores(probs, ["D", "D"])
    with pytest.raises(ValueError, match="row 1: gold letter 'x'"):
        gold_scores(probs, ["A", "x"])


def test_debiased_log_probabilities_ignore_a_constant_letter_preference():
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(4), size=30)
    tilted = probs * np.array([8.0, 1.0, 1.0, 0.5])  # the same model with a strong taste for A
    tilted /= tilted.sum(axis=1, keepdims=True)
    debiased = debiased_log_probabilities(probs)
    assert np.exp(debiased).sum(axis=1) == pytest.approx(np.ones(30))
    assert debiased_log_probabilities(tilted) == pytest.approx(debiased)
    assert (debiased_predictions(tilted) == debiased_predictions(probs)).all()
    assert not np.allclose(np.log(tilted), np.log(probs))


def test_summary_means_of_gold_scores_with_intervals():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(4), size=80)
    gold = "".join(rng.choice(list("ABCD"), 80))
    table = predictions(gold, "".join("ABCD"[i] for i in probs.argmax(1)), probs)
    s = summarize(table, seed=1)
    scores = gold_scores(probs, list(gold))
    for key, column in (
        ("mean_p_gold", "p_gold"),
        ("mean_gold_logprob", "gold_logprob"),
        ("mean_gold_logprob_debiased", "gold_logprob_debiased"),
        ("mean_brier", "brier"),
    ):
        assert s[key] == pytest.approx(scores[column].mean())
        low, high = s[f"{key}_ci"]
        assert low < s[key] < high
    # about ±1.96 sd / sqrt(n) for a plain mean
    half = 1.96 * scores["brier"].std() / np.sqrt(80)
    assert s["mean_brier_ci"][1] - s["mean_brier_ci"][0] == pytest.approx(2 * half, rel=0.2)


def test_vectorised_debiased_bootstrap_equals_recomputing_each_resample():
    rng = np.random.default_rng(6)
    probs = rng.dirichlet(np.ones(5), size=40)
    probs[:15, 4] = np.nan  # some questions have only four options
    probs[:15, :4] /= probs[:15, :4].sum(axis=1, keepdims=True)
    gold_index = rng.integers(0, 4, 40)
    gold = np.array(list("ABCDE"))[gold_index]
    accuracy, gold_logprob = debiased_bootstrap(probs, gold_index, 200, seed=4, chunk=64)
    slow_accuracy = bootstrap_distribution(lambda i: (debiased_predictions(probs[i]) == gold[i]).mean(), 40, 200, 4)
    slow_logprob = bootstrap_distribution(
        lambda i: debiased_log_probabilities(probs[i])[np.arange(40), gold_index[i]].mean(), 40, 200, 4
    )
    assert (accuracy == slow_accuracy).all()
    assert gold_logprob == pytest.approx(slow_logprob, rel=1e-9)
