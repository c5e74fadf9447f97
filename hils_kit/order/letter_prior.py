"""The letter-prior confound: a small model fine-tuned on a few questions mostly learns which answer letter to
say, and then a "strategy gain" is largely which gold letters came last in its order.

Diagnostics: :func:`tail_letter_mix` (the gold-letter mix of the last 10 % of an order), :func:`prior_accuracy`
(the accuracy a model would get from its predicted-letter mix alone, answering independently of the question)
and :func:`letter_prior_table` (per trained model and test set: accuracy against that letter-prior accuracy and
the majority-letter baseline). Remedy: :func:`balance_letters` rotates each training question's options so the
gold letters are balanced and spread along the order; the question order itself does not change.

>>> ordered = pd.DataFrame({"id": list("abcd"), "answer": list("ABAA"),
...                         "options": [["x", "y"], ["x", "y"], ["x", "y"], ["x", "y"]]})
>>> balance_letters(ordered)["answer"].tolist()
['A', 'B', 'A', 'B']
>>> prior_accuracy({"A": 10, "B": 0}, {"A": 6, "B": 4})
0.6
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from hils_kit.data.questions import LETTERS

TAIL = 0.10  # the share of an order whose letters a one-epoch model remembers best
ALPHA = 0.05  # the level at which gains_track_letters decides


def tail_letter_mix(ordered: pd.DataFrame, tail: float = TAIL) -> dict[str, float]:
    """Share of each gold letter among the last ``tail`` of the training order (at least one question)."""
    n = max(1, int(round(len(ordered) * tail)))
    width = int(ordered["options"].map(len).max())
    counts = ordered["answer"].iloc[-n:].value_counts()
    return {letter: round(float(counts.get(letter, 0)) / n, 4) for letter in LETTERS[:width]}


def prior_accuracy(predicted: dict[str, int], gold: dict[str, int]) -> float:
    """Expected accuracy of answering each question with a letter drawn from the ``predicted`` mix, independently
    of the question: the sum over letters of predicted share x gold share."""
    n_pred, n_gold = sum(predicted.values()), sum(gold.values())
    if not n_pred or not n_gold:
        return float("nan")
    return round(sum(predicted.get(k, 0) / n_pred * gold.get(k, 0) / n_gold for k in gold), 6)


def letter_prior_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per cell and test set: accuracy, the letter-prior accuracy of its predicted-letter mix, the majority-letter
    baseline, the most predicted letter and its share, and the top letter of the order's tail (when recorded)."""
    rows = []
    for row in long.itertuples(index=False):
        predicted = getattr(row, "predicted_letters", None)
        gold = getattr(row, "gold_letters", None)
        if not isinstance(predicted, dict) or not isinstance(gold, dict):
            continue
        top = max(predicted, key=predicted.get)
        tail = getattr(row, "train_tail_letters", None)
        rows.append(
            {
                "cell_id": row.cell_id,
                "strategy": row.strategy,
                "model": row.model,
                "dataset": row.dataset,
                "replicate": row.replicate,
                "accuracy": row.accuracy,
                "letter_prior_accuracy": prior_accuracy(predicted, gold),
                "majority_baseline": getattr(row, "majority_baseline", np.nan),
                "top_predicted": top,
                "top_predicted_share": predicted[top] / max(sum(predicted.values()), 1),
                "tail_top_letter": max(tail, key=tail.get) if isinstance(tail, dict) and tail else None,
            }
        )
    return pd.DataFrame(rows)


def gains_track_letters(table: pd.DataFrame, baseline: str = "random", alpha: float = ALPHA) -> dict:
    """Do the strategies' accuracy gains over ``baseline`` follow the gains of their letter-prior accuracy?

    Pairs each strategy's cell with the baseline's on model x test set x replicate and tests for a positive
    Pearson correlation of the two gains by permuting the pairings (one-sided; exact when there are at most
    9999 pairings, else 9999 seeded ones). Returns ``n_pairs``, ``r``, ``p_value``, ``share_explained`` (the
    share of the mean accuracy gain that the letter prior accounts for) and a one-line ``verdict``; with too
    few pairs for any p to reach ``alpha`` (n! pairings, so fewer than 4 at 0.05) nothing is tested.

    >>> pairs = pd.DataFrame({"strategy": ["random"] * 3 + ["blocked"] * 3, "model": "m", "dataset": "d",
    ...                       "replicate": [0, 1, 2] * 2, "accuracy": [0.2, 0.2, 0.2, 0.3, 0.1, 0.2],
    ...                       "letter_prior_accuracy": [0.2, 0.2, 0.2, 0.3, 0.1, 0.25]})
    >>> gains_track_letters(pairs)["verdict"]
    'not tested (fewer than 4 pairs: with 3 the smallest achievable p is 0.167)'
    """
    keys = ["model", "dataset", "replicate"]
    base = table[table["strategy"] == baseline].set_index(keys)
    others = (
        table[table["strategy"] != baseline]
        .join(base[["accuracy", "letter_prior_accuracy"]], on=keys, rsuffix="_base")
        .dropna(subset=["accuracy_base"])
    )
    gain = (others["accuracy"] - others["accuracy_base"]).to_numpy(dtype=float)
    prior_gain = (others["letter_prior_accuracy"] - others["letter_prior_accuracy_base"]).to_numpy(dtype=float)
    n = len(gain)
    explained = float(prior_gain.mean() / gain.mean()) if n and abs(gain.mean()) > 1e-12 else float("nan")
    varies = n >= 3 and np.ptp(gain) > 0 and np.ptp(prior_gain) > 0
    r = float(stats.pearsonr(gain, prior_gain).statistic) if varies else float("nan")
    p = float("nan")
    smallest_p = 1 / math.factorial(n)
    if smallest_p > alpha:
        least = next(k for k in range(1, 21) if 1 / math.factorial(k) <= alpha)
        verdict = f"not tested (fewer than {least} pairs: with {n} the smallest achievable p is {smallest_p:.3g})"
    elif np.ptp(gain) == 0:
        verdict = f"no strategy changed accuracy in any of {n} paired cells, so there is no gain to explain"
    elif not varies:
        verdict = f"the letter-prior accuracy did not change in any of {n} paired cells, so it explains no gain"
    else:
        test = stats.permutation_test(  # permuting one sample's order gives every pairing once: n! of them
            (gain,),
            lambda x, axis: stats.pearsonr(x, prior_gain, axis=axis).statistic,
            permutation_type="pairings",
            vectorized=True,
            alternative="greater",
            rng=0,
        )
        p = float(test.pvalue)
        stated = f"r = {r:.2f}, permutation p = {p:.3g} over {n} pairs"
        if p <= alpha:
            verdict = (
                f"the gains follow the letter prior ({stated}, α {alpha}): they say more about which letters "
                "each order taught than about the order of the knowledge"
            )
        else:
            verdict = f"no evidence that the gains follow the letter prior ({stated}, α {alpha})"
    return {"n_pairs": n, "r": r, "p_value": p, "share_explained": explained, "verdict": verdict}


def balance_letters(ordered: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The same questions in the same order with each question's options rotated so that its gold letter follows
    the cycle A, B, C, ... along the order (for a question with n options: position mod n), so the gold letters
    are balanced and spread evenly; ``seed`` shifts where the cycle starts. Cyclic rotation keeps the options'
    relative order; ``answer`` is moved with its option."""
    out = ordered.copy()
    options, answers = [], []
    for position, (opts, answer) in enumerate(zip(out["options"], out["answer"])):
        opts = list(opts)
        n = len(opts)
        target = (position + seed) % n
        shift = (LETTERS.index(answer) - target) % n
        options.append(opts[shift:] + opts[:shift])
        answers.append(LETTERS[target])
    out["options"], out["answer"] = options, answers
    return out
