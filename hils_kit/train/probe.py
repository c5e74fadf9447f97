"""The probe: held-out questions scored during training, the points of a cell's learning curve.

:class:`ProbeCallback` scores a fixed probe set of held-out questions every ``every`` optimizer steps (and before
the first step) and records the mean log-probability of the gold letter, the mean gold probability and the
accuracy. :func:`save_curve` writes them as ``learning_curve.csv`` (:mod:`hils_kit.train.learning_curve` plots them).

>>> default_every(16), default_every(3)
(2, 1)
>>> callback = ProbeCallback(probe_table, every=2)                       # doctest: +SKIP
>>> train(ordered, model="tiny", out_dir="/tmp/run", callbacks=[callback])  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from transformers import TrainerCallback

from hils_kit.core.layout import CURVE_FILE
from hils_kit.data.questions import LETTERS
from hils_kit.score.scoring import letter_probabilities


def default_every(total_steps: int) -> int:
    """About 10 % of training: ``max(1, round(total_steps / 10))``."""
    return max(1, round(total_steps / 10))


def probe_scores(model, tokenizer, probe: pd.DataFrame, template: str = "paper", precision=None) -> dict:
    """Mean gold log-probability, mean gold probability and accuracy of ``model`` on ``probe``, scored in
    ``precision`` (:mod:`hils_kit.core.precision`)."""
    probs = letter_probabilities(model, tokenizer, probe, template, precision=precision)
    gold = probs[np.arange(len(probe)), probe["answer"].map(LETTERS.index).to_numpy()]
    filled = np.where(np.isnan(probs), -np.inf, probs)
    return {
        "gold_logprob": float(np.log(np.clip(gold, 1e-300, None)).mean()),
        "p_gold": float(gold.mean()),
        "accuracy": float((filled.argmax(axis=1) == probe["answer"].map(LETTERS.index).to_numpy()).mean()),
    }


class ProbeCallback(TrainerCallback):
    """Scores ``probe`` at step 0 and every ``every`` optimizer steps (``None`` or 0: about 10 % of training) and
    at the end, with the trainer's model and tokenizer, in the training's precision; ``rows`` holds ``step``,
    ``examples_seen`` and :func:`probe_scores`."""

    def __init__(self, probe: pd.DataFrame, every: int | None = None, template: str = "paper"):
        if probe.empty:
            raise ValueError("the probe set has no questions")
        self.probe, self.every, self.template = probe.reset_index(drop=True), every, template
        self.rows: list[dict] = []

    def _score(self, args, state, model, tokenizer) -> None:
        if self.rows and self.rows[-1]["step"] == state.global_step:
            return
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
        self.rows.append(
            {
                "step": state.global_step,
                "examples_seen": state.global_step * per_step,
                **probe_scores(model, tokenizer, self.probe, self.template, "bf16" if args.bf16 else "fp32"),
            }
        )

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.every = self.every or default_every(state.max_steps)
        self._score(args, state, model, processing_class)

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._score(args, state, model, processing_class)

    @property
    def curve(self) -> pd.DataFrame:
        """The recorded points as a table."""
        return pd.DataFrame(self.rows, columns=["step", "examples_seen", "gold_logprob", "p_gold", "accuracy"])


def probe_callbacks(
    test_sets: dict[str, pd.DataFrame], n: int, every: int = 0, seed: int = 0, template: str = "paper"
) -> list[ProbeCallback]:
    """``[ProbeCallback]`` on a seeded sample of ``n`` questions of the first test set (held out), or ``[]`` when
    ``n`` is 0; ``every`` 0 means about 10 % of training."""
    if n <= 0:
        return []
    from hils_kit.data.splits import sample_questions

    return [ProbeCallback(sample_questions(next(iter(test_sets.values())), n, seed=seed), every or None, template)]


def save_curve(callbacks: list, folder: str | Path) -> pd.DataFrame | None:
    """Write the curve of the :class:`ProbeCallback` among ``callbacks`` to ``folder/learning_curve.csv``."""
    probes = [c for c in callbacks if isinstance(c, ProbeCallback)]
    if not probes:
        return None
    curve = probes[0].curve
    curve.to_csv(Path(folder) / CURVE_FILE, index=False)
    return curve
