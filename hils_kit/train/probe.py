"""The probe: held-out and training questions scored during training, for a cell's learning curve and for each
question's learning and forgetting.

:class:`ProbeCallback` scores a fixed probe of held-out questions and of training questions every ``every``
optimizer steps (and before the first step), within a share of the training time (15 % by default). The held-out
questions' mean gold log-prob, mean gold probability and accuracy make ``learning_curve.csv``
(:mod:`hils_kit.train.learning_curve` plots them); every question's gold log-prob and correctness at each scoring
make ``trajectories.csv`` (:mod:`hils_kit.analyse.forgetting` counts its learning and forgetting events).

>>> default_every(16), default_every(3)
(2, 1)
>>> callback = ProbeCallback(probe_table, every=2)                       # doctest: +SKIP
>>> train(ordered, model="tiny", out_dir="/tmp/run", callbacks=[callback])  # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import TrainerCallback

from hils_kit.core.layout import CURVE_FILE, TRAJECTORIES_FILE
from hils_kit.data.questions import LETTERS
from hils_kit.score.scoring import letter_probabilities

MAX_SHARE = 0.15  # the probe's default share of the training time


def default_every(total_steps: int) -> int:
    """About 10 % of training: ``max(1, round(total_steps / 10))``."""
    return max(1, round(total_steps / 10))


class ProbeCallback(TrainerCallback):
    """Scores ``probe`` (held-out questions) and ``train_probe`` (training questions) at step 0, every ``every``
    optimizer steps (``None`` or 0: about 10 % of training) and at the end, with the trainer's model and tokenizer,
    in the training's precision, in one pass over both.

    ``rows`` holds the held-out curve (``step``, ``examples_seen``, mean gold log-prob, mean gold probability and
    accuracy), ``questions`` every
    question's gold log-prob and correctness at each scoring (:attr:`trajectories`). A scoring between the first
    and the last is skipped when it would take the probe's time above ``max_share`` of the training time so far
    (measured), so the probe costs at most that share once training is long enough to pay for its first and last
    scoring; :meth:`record` states the cost.
    """

    def __init__(
        self,
        probe: pd.DataFrame,
        every: int | None = None,
        template: str = "paper",
        train_probe: pd.DataFrame | None = None,
        max_share: float = MAX_SHARE,
    ):
        train_probe = train_probe if train_probe is not None else probe.iloc[:0]
        if probe.empty and train_probe.empty:
            raise ValueError("the probe set has no questions")
        if not max_share > 0:
            raise ValueError(f"max_share {max_share!r}: the probe's most share of the training time, above 0")
        self.probe, self.every, self.template = probe.reset_index(drop=True), every, template
        self.train_probe, self.max_share = train_probe.reset_index(drop=True), max_share
        self.rows: list[dict] = []
        self.questions: list[pd.DataFrame] = []
        self.seconds = self.last_cost = 0.0
        self.skipped = 0
        self._began = self._ended = None

    def _score(self, args, state, model, tokenizer) -> None:
        if self.rows and self.rows[-1]["step"] == state.global_step:
            return
        start = time.perf_counter()
        both = pd.concat([self.probe, self.train_probe], ignore_index=True)
        probs = letter_probabilities(
            model, tokenizer, both, self.template, precision="bf16" if args.bf16 else "fp32", desc="probe"
        )
        gold_index = both["answer"].map(LETTERS.index).to_numpy()
        gold = probs[np.arange(len(both)), gold_index]
        correct = np.where(np.isnan(probs), -np.inf, probs).argmax(axis=1) == gold_index
        logprob = np.log(np.clip(gold, 1e-300, None))
        seen = state.global_step * args.per_device_train_batch_size * args.gradient_accumulation_steps
        held = slice(0, len(self.probe))
        if len(self.probe):
            self.rows.append(
                {
                    "step": state.global_step,
                    "examples_seen": seen,
                    "gold_logprob": float(logprob[held].mean()),
                    "p_gold": float(gold[held].mean()),
                    "accuracy": float(correct[held].mean()),
                }
            )
        self.questions.append(
            pd.DataFrame(
                {
                    "question": both["id"].astype(str).to_numpy(),
                    "set": ["held_out"] * len(self.probe) + ["train"] * len(self.train_probe),
                    "step": state.global_step,
                    "examples_seen": seen,
                    "gold_logprob": logprob,
                    "correct": correct,
                    "difficulty": both["difficulty"].to_numpy() if "difficulty" in both else np.nan,
                }
            )
        )
        self.last_cost = time.perf_counter() - start
        self.seconds += self.last_cost

    def _training_seconds(self) -> float:
        end = self._ended if self._ended is not None else time.perf_counter()
        return max(end - self._began - self.seconds, 0.0)

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.every = self.every or default_every(state.max_steps)
        self._began = time.perf_counter()
        self._score(args, state, model, processing_class)

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        last = state.global_step == state.max_steps
        if not last and state.global_step % self.every:
            return
        if not last and self.seconds + self.last_cost > self.max_share * self._training_seconds():
            self.skipped += 1  # over its share of the training time so far: skip this checkpoint
            return
        self._score(args, state, model, processing_class)

    def on_train_end(self, args, state, control, **kwargs):
        self._ended = time.perf_counter()

    @property
    def curve(self) -> pd.DataFrame:
        """The recorded points of the held-out probe as a table."""
        return pd.DataFrame(self.rows, columns=["step", "examples_seen", "gold_logprob", "p_gold", "accuracy"])

    @property
    def trajectories(self) -> pd.DataFrame:
        """Every probe question at every scoring: ``question``, ``set`` (``train``, ``held_out``), ``step``,
        ``examples_seen``, ``gold_logprob``, ``correct`` and its ``difficulty`` label (where the table has one)."""
        return pd.concat(self.questions, ignore_index=True) if self.questions else pd.DataFrame()

    def record(self) -> dict:
        """What the probe cost: its questions, scorings, skipped checkpoints, seconds and share of training time."""
        training = self._training_seconds() if self._began is not None else 0.0
        return {
            "held_out_questions": len(self.probe),
            "train_questions": len(self.train_probe),
            "scorings": len(self.questions),
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "share_of_training": round(self.seconds / training, 3) if training else None,
            "max_share": self.max_share,
        }


def probe_callbacks(
    test_sets: dict[str, pd.DataFrame],
    n: int,
    every: int = 0,
    seed: int = 0,
    template: str = "paper",
    train_table: pd.DataFrame | None = None,
    n_train: int = 0,
    max_share: float = MAX_SHARE,
) -> list[ProbeCallback]:
    """``[ProbeCallback]`` on a seeded sample of ``n`` questions of the first test set (held out) and of ``n_train``
    questions of ``train_table`` (its distinct questions), or ``[]`` when both are 0; ``every`` 0 means about 10 %
    of training."""
    if n <= 0 and (n_train <= 0 or train_table is None):
        return []
    from hils_kit.data.splits import sample_questions

    held = sample_questions(next(iter(test_sets.values())), n, seed=seed) if n > 0 else None
    trained = None
    if n_train > 0 and train_table is not None:
        trained = sample_questions(train_table.drop_duplicates("id"), n_train, seed=seed)
    held = held if held is not None else trained.iloc[:0]
    return [ProbeCallback(held, every or None, template, trained, max_share)]


def save_curve(callbacks: list, folder: str | Path) -> pd.DataFrame | None:
    """Write the curve of the :class:`ProbeCallback` among ``callbacks`` to ``folder/learning_curve.csv`` and its
    per-question trajectories to ``folder/trajectories.csv``; return the curve."""
    probes = [c for c in callbacks if isinstance(c, ProbeCallback)]
    if not probes:
        return None
    curve = probes[0].curve
    curve.to_csv(Path(folder) / CURVE_FILE, index=False)
    probes[0].trajectories.to_csv(Path(folder) / TRAJECTORIES_FILE, index=False)
    return curve


def probe_text(record: dict | None) -> str:
    """One line on what the probe cost (:meth:`ProbeCallback.record`).

    >>> probe_text({"held_out_questions": 8, "train_questions": 16, "scorings": 5, "skipped": 4, "seconds": 30.0,
    ...             "share_of_training": 0.381, "max_share": 0.4})
    'probe: 8 held-out and 16 training questions, 5 scorings (4 skipped), 30.0 s: 38 % of training (at most 40 %)'
    >>> probe_text(None)
    'probe: none'
    """
    if record is None:
        return "probe: none"
    share = record["share_of_training"]
    return (
        f"probe: {record['held_out_questions']} held-out and {record['train_questions']} training questions, "
        f"{record['scorings']} scorings ({record['skipped']} skipped), {record['seconds']:.1f} s: "
        + (f"{share:.0%} of training" if share is not None else "training time unknown").replace("%", " %")
        + f" (at most {record['max_share']:.0%})".replace("%", " %")
    )


def probe_record(callbacks: list) -> dict | None:
    """The cost record of the :class:`ProbeCallback` among ``callbacks`` (None without one)."""
    probes = [c for c in callbacks if isinstance(c, ProbeCallback)]
    return probes[0].record() if probes else None
