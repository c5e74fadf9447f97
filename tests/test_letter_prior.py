"""The letter-prior confound: diagnostics and the balancing remedy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hils_kit.order.letter_prior import (
    balance_letters,
    gains_track_letters,
    letter_prior_table,
    prior_accuracy,
    tail_letter_mix,
)
from hils_kit.order.orderings import order_questions
from tests.conftest import make_questions


def test_tail_letter_mix_reads_the_last_tenth_of_the_order():
    ordered = make_questions(20).assign(answer=list("ABCD" * 4 + "DDDD"))
    assert tail_letter_mix(ordered) == {"A": 0.0, "B": 0.0, "C": 0.0, "D": 1.0}  # the last 2 questions
    assert tail_letter_mix(ordered, tail=0.5)["D"] == pytest.approx(0.6)


def test_prior_accuracy_is_what_the_predicted_letter_mix_earns_on_its_own():
    assert prior_accuracy({"A": 10, "B": 0, "C": 0}, {"A": 3, "B": 5, "C": 2}) == pytest.approx(0.3)
    assert prior_accuracy({"A": 5, "B": 5}, {"A": 8, "B": 2}) == pytest.approx(0.5)


def test_balance_letters_keeps_the_order_and_the_answers_content():
    table = make_questions(24)
    ordered = order_questions(table, "curriculum")
    balanced = balance_letters(ordered)
    assert balanced["id"].tolist() == ordered["id"].tolist()  # the order is untouched
    assert balanced["answer"].tolist() == list("ABCD" * 6)  # gold letters cycle along the order
    for (_, before), (_, after) in zip(ordered.iterrows(), balanced.iterrows()):
        gold = before["options"]["ABCD".index(before["answer"])]
        assert after["options"]["ABCD".index(after["answer"])] == gold  # the correct option moved with its letter
        assert sorted(after["options"]) == sorted(before["options"])
        k = after["options"].index(before["options"][0])  # a cyclic rotation keeps the relative order
        assert after["options"][k:] + after["options"][:k] == before["options"]


def paired_gains(gains, prior_gains) -> pd.DataFrame:
    """Random Shuffle at 0.25 and one strategy per replicate with the given accuracy and letter-prior gains."""
    n = len(gains)
    return pd.DataFrame(
        {
            "strategy": ["random"] * n + ["blocked"] * n,
            "model": "m",
            "dataset": "d",
            "replicate": [*range(n), *range(n)],
            "accuracy": np.r_[np.full(n, 0.25), 0.25 + np.asarray(gains)],
            "letter_prior_accuracy": np.r_[np.full(n, 0.25), 0.25 + np.asarray(prior_gains)],
        }
    )


def test_gains_that_follow_the_letter_mix_are_called_out():
    gains = [0.10, -0.05, 0.03, 0.07, -0.02, 0.00]
    result = gains_track_letters(paired_gains(gains, [g * 0.9 + 0.001 * k for k, g in enumerate(gains)]))
    assert result["n_pairs"] == 6 and result["r"] > 0.99
    assert result["p_value"] == pytest.approx(1 / 720)  # exact: only the observed pairing reaches r
    assert result["verdict"].startswith("the gains follow the letter prior")


def test_gains_track_letters_tests_nothing_with_three_pairs():
    result = gains_track_letters(paired_gains([0.1, -0.05, 0.03], [0.09, -0.04, 0.02]))
    assert result["n_pairs"] == 3 and result["r"] > 0.99 and np.isnan(result["p_value"])
    assert result["verdict"] == "not tested (fewer than 4 pairs: with 3 the smallest achievable p is 0.167)"


def test_gains_track_letters_rarely_follows_unrelated_letters():
    rng = np.random.default_rng(7)
    verdicts = []
    for _ in range(300):
        n = int(rng.integers(3, 7))
        verdicts.append(gains_track_letters(paired_gains(rng.normal(0, 0.05, n), rng.normal(0, 0.05, n)))["verdict"])
    follows = np.mean([v.startswith("the gains follow") for v in verdicts])
    assert follows <= 0.07
    assert any(v.startswith("no evidence") for v in verdicts) and any(v.startswith("not tested") for v in verdicts)


def test_letter_prior_table_from_collected_rows():
    long = pd.DataFrame(
        [
            {
                "cell_id": "c",
                "strategy": "random",
                "model": "m",
                "dataset": "d",
                "replicate": 0,
                "accuracy": 0.3,
                "majority_baseline": 0.32,
                "predicted_letters": {"A": 9, "B": 1},
                "gold_letters": {"A": 3, "B": 7},
                "train_tail_letters": {"A": 0.8, "B": 0.2},
            }
        ]
    )
    row = letter_prior_table(long).iloc[0]
    assert row["letter_prior_accuracy"] == pytest.approx(0.34) and row["top_predicted"] == "A"
    assert row["top_predicted_share"] == pytest.approx(0.9) and row["tail_top_letter"] == "A"


def test_hils_train_balance_letters_keeps_the_order_audited(tmp_path, capsys):
    from hils_kit.cli import main
    from hils_kit.data.loaders import save_questions

    save_questions(make_questions(8).assign(answer="A"), tmp_path / "ordered.csv")
    code = main(
        [
            "train",
            str(tmp_path / "ordered.csv"),
            "--model",
            "tiny",
            "--preset",
            "tiny",
            "--balance-letters",
            "-o",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0 and "gold letters balanced" in capsys.readouterr().out
    planned = pd.read_csv(tmp_path / "run" / "order_planned.csv")
    assert planned["id"].tolist() == make_questions(8)["id"].tolist()  # same questions, same order, audited
