"""Synthetic studies with run-to-run noise: per-question predictions of strategies × runs × questions, for
checking a test's false-positive rate and power by simulation.

Each question has a gold letter (drawn with ``letter_shares``) and a difficulty on the logit scale. Each run
shifts every logit by a normal draw (``run_sd``, the run's overall luck) and prefers one favourite letter:
questions whose gold letter is the run's favourite gain ``letter_bias`` logits, the others lose a third of it,
as a fine-tuned model that drifts towards one answer letter does. A strategy's ``effect`` is added to its
logits. ``correct`` is a Bernoulli draw; ``gold_logprob`` the log of the gold letter's probability plus noise.

>>> frame = simulate_predictions(["random", "curriculum"], runs=3, questions=150, seed=1)
>>> len(frame), sorted(frame.columns)
(900, ['answer', 'correct', 'dataset', 'gold_logprob', 'question', 'run', 'strategy'])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

LETTERS = "ABCD"


def simulate_predictions(
    strategies: Sequence[str],
    runs: int,
    questions: int,
    effects: dict[str, float] | None = None,
    run_sd: float = 0.12,
    letter_bias: float = 0.25,
    letter_shares: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
    difficulty_sd: float = 1.0,
    mean_logit: float = 0.0,
    dataset: str = "synthetic",
    seed: int = 0,
) -> pd.DataFrame:
    """One row per strategy × run × question with ``dataset, strategy, run, question, correct, gold_logprob,
    answer``; run ids are unique across strategies (``<strategy>-<r>``). ``effects``: logit shift per strategy
    (missing: 0). See the module docstring for the model."""
    rng = np.random.default_rng(seed)
    effects = effects or {}
    answers = rng.choice(len(LETTERS), size=questions, p=np.asarray(letter_shares) / np.sum(letter_shares))
    difficulty = rng.normal(mean_logit, difficulty_sd, size=questions)
    frames = []
    for strategy in strategies:
        for r in range(runs):
            favourite = rng.integers(len(LETTERS))
            letter = np.where(answers == favourite, letter_bias, -letter_bias / 3)
            logit = difficulty + effects.get(strategy, 0.0) + rng.normal(0, run_sd) + letter
            p = 1 / (1 + np.exp(-logit))
            frames.append(
                pd.DataFrame(
                    {
                        "dataset": dataset,
                        "strategy": strategy,
                        "run": f"{strategy}-{r}",
                        "question": np.arange(questions),
                        "correct": (rng.random(questions) < p).astype(int),
                        "gold_logprob": np.log(p) + rng.normal(0, 0.3, size=questions),
                        "answer": np.asarray(list(LETTERS))[answers],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def run_accuracy_sd(frame: pd.DataFrame) -> float:
    """The spread (sd, accuracy points) of run accuracies within a strategy, pooled over strategies.

    >>> round(run_accuracy_sd(simulate_predictions(["a"], runs=50, questions=400, seed=0)), 1)
    3.0
    """
    accuracy = frame.groupby(["strategy", "run"])["correct"].mean() * 100
    return float(np.sqrt(accuracy.groupby(level="strategy").var(ddof=1).mean()))
