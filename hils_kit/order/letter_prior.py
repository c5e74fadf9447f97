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

import numpy as np
import pandas as pd

from hils_kit.data.questions import LETTERS

TAIL = 0.10  # the share of an order whose letters a one-epoch model remembers best


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


def gains_track_letters(table: pd.DataFrame, baseline: str = "random") -> dict:
    """Do the strategies' accuracy gains over ``baseline`` follow the gains of their letter-prior accuracy?

    Pairs each strategy's cell with the baseline's on model x test set x replicate, and returns the number of
    pairs, the Pearson correlation of the two gains, the share of the mean accuracy gain that the letter prior
    accounts for, and a one-line verdict for the report.
    """
    keys = ["model", "dataset", "replicate"]
    base = table[table["strategy"] == baseline].set_index(keys)
    others = (
        table[table["strategy"] != baseline]
        .join(base[["accuracy", "letter_prior_accuracy"]], on=keys, rsuffix="_base")
        .dropna(subset=["accuracy_base"])
    )
    gain = others["accuracy"] - others["accuracy_base"]
    prior_gain = others["letter_prior_accuracy"] - others["letter_prior_accuracy_base"]
    n = len(others)
    corr = (
        float(np.corrcoef(gain, prior_gain)[0, 1])
        if n >= 3 and gain.std() > 0 and prior_gain.std() > 0
        else float("nan")
    )
    explained = float(prior_gain.mean() / gain.mean()) if n and abs(gain.mean()) > 1e-12 else float("nan")
    if n >= 3 and gain.std() == 0:
        verdict = f"no strategy changed accuracy in any of {n} paired cells, so there is no gain to explain"
    elif n < 3 or np.isnan(corr):
        verdict = f"too few paired cells ({n}) to tell whether the gains follow the letter mix"
    elif corr >= 0.5:
        verdict = (
            f"the gains track the letter prior (r = {corr:.2f} over {n} pairs): they say more about which "
            "letters each order taught than about the order of the knowledge"
        )
    else:
        verdict = f"the gains do not follow the letter prior (r = {corr:.2f} over {n} pairs)"
    return {"pairs": n, "correlation": corr, "share_explained": explained, "verdict": verdict}


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
