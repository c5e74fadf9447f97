"""Metrics on hand-made predictions: accuracy, F1, baselines, debiasing, bootstrap, paired differences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hils_kit.metrics import (bootstrap_interval, debiased_predictions, majority_baseline,
                              paired_bootstrap_difference, summarize)


def predictions(gold: str, pred: str, probs, categories=None) -> pd.DataFrame:
    probs = np.asarray(probs, dtype=float)
    table = pd.DataFrame({"answer": list(gold), "pred": list(pred),
                          "category": categories or ["c"] * len(gold)})
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
    assert s["per_category"] == {"x": {"n": 3, "accuracy": pytest.approx(2 / 3)},
                                 "y": {"n": 3, "accuracy": pytest.approx(2 / 3)}}
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
    assert paired_bootstrap_difference(a, b, seed=0) == d
    same = paired_bootstrap_difference(a, a)
    assert same["difference"] == 0 and same["ci"] == [0.0, 0.0] and same["p_value"] == 1.0
    # a small difference among many agreements is not significant
    c = a.copy()
    c[:3] = 1 - c[:3]
    assert paired_bootstrap_difference(a, c)["p_value"] > 0.05
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap_difference(a, b[:-1])
