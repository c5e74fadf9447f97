"""Learning curves: what an order does during training, which the paper never shows.

:class:`ProbeCallback` scores a fixed probe set of held-out questions every ``every`` optimizer steps (and before
the first step) and records the mean log-probability of the gold letter, the mean gold probability and the
accuracy. The curve is written as ``learning_curve.csv`` in the run folder and plotted per strategy in the report.

>>> default_every(16), default_every(3)
(2, 1)
>>> callback = ProbeCallback(probe_table, every=2)                       # doctest: +SKIP
>>> train(ordered, model="tiny", out_dir="/tmp/run", callbacks=[callback])  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from transformers import TrainerCallback

from hils_kit.questions import LETTERS
from hils_kit.scoring import letter_probabilities

CURVE_FILE = "learning_curve.csv"


def default_every(total_steps: int) -> int:
    """About 10 % of training: ``max(1, round(total_steps / 10))``."""
    return max(1, round(total_steps / 10))


def probe_scores(model, tokenizer, probe: pd.DataFrame, template: str = "paper") -> dict:
    """Mean gold log-probability, mean gold probability and accuracy of ``model`` on ``probe``."""
    probs = letter_probabilities(model, tokenizer, probe, template)
    gold = probs[np.arange(len(probe)), probe["answer"].map(LETTERS.index).to_numpy()]
    filled = np.where(np.isnan(probs), -np.inf, probs)
    return {
        "gold_logprob": float(np.log(np.clip(gold, 1e-300, None)).mean()),
        "p_gold": float(gold.mean()),
        "accuracy": float((filled.argmax(axis=1) == probe["answer"].map(LETTERS.index).to_numpy()).mean()),
    }


class ProbeCallback(TrainerCallback):
    """Scores ``probe`` at step 0 and every ``every`` optimizer steps (``None`` or 0: about 10 % of training) and
    at the end, with the trainer's model and tokenizer; ``rows`` holds ``step``, ``examples_seen`` and
    :func:`probe_scores`."""

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
                **probe_scores(model, tokenizer, self.probe, self.template),
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
    from hils_kit.splits import sample_questions

    return [ProbeCallback(sample_questions(next(iter(test_sets.values())), n, seed=seed), every or None, template)]


def save_curve(callbacks: list, folder: str | Path) -> pd.DataFrame | None:
    """Write the curve of the :class:`ProbeCallback` among ``callbacks`` to ``folder/learning_curve.csv``."""
    probes = [c for c in callbacks if isinstance(c, ProbeCallback)]
    if not probes:
        return None
    curve = probes[0].curve
    curve.to_csv(Path(folder) / CURVE_FILE, index=False)
    return curve


def plot_training(log: pd.DataFrame, curve: pd.DataFrame | None = None, title: str = ""):
    """The training loss by step and, when given, the probe's mean gold log-prob on a second axis."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.plot(log["step"], log["loss"], color="tab:blue", marker=".", label="training loss")
    ax.set(xlabel="optimizer step", ylabel="training loss", title=title)
    if curve is not None and len(curve):
        other = ax.twinx()
        other.plot(curve["step"], curve["gold_logprob"], color="tab:orange", marker="o", label="probe gold log-prob")
        other.set_ylabel("probe: mean gold log-prob")
        fig.legend(loc="upper right", fontsize=8, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def read_curves(cell_dirs: dict[str, str]) -> pd.DataFrame:
    """The learning curves of several cells (``{cell_id: cell folder}``), long, with ``cell_id``; cells without
    one are skipped."""
    frames = [
        pd.read_csv(f"{folder}/train/{CURVE_FILE}").assign(cell_id=cell)
        for cell, folder in cell_dirs.items()
        if folder and Path(f"{folder}/train/{CURVE_FILE}").is_file()
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_curves(curves: pd.DataFrame, title: str = ""):
    """Mean gold log-prob on the probe by examples seen, one line per strategy (mean over its cells and runs)."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 3.5))
    sns.lineplot(
        data=curves, x="examples_seen", y="gold_logprob", hue="strategy", errorbar=("ci", 95), ax=ax, marker="o"
    )
    ax.set(xlabel="training questions seen", ylabel="probe: mean gold log-prob", title=title)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig
