"""The training feed of an adaptive strategy: a sampler that asks the schedule for each next question, and a
callback that re-scores the questions the schedule asks about with the model as it trains.

:class:`AdaptiveFeed` joins an :class:`~hils_kit.order.adaptive.AdaptiveSchedule` (what to feed next) to the
trainer: its :attr:`~AdaptiveFeed.sampler` replaces the sequential sampler (the data loader pulls one row index at
a time, so each decision is made when the loader needs it, a micro-batch or two ahead of the step that trains on
it), and its :attr:`~AdaptiveFeed.callback` scores the schedule's candidates before the first step and every
``every`` optimizer steps (0: four times an epoch) with one forward pass per question, in the training's precision.
:func:`hils_kit.train.training.train` takes it as ``feed=`` and audits the fed order against the decisions.

>>> from hils_kit.order.adaptive import SelfPaced
>>> feed = AdaptiveFeed(SelfPaced(len(table)), table)                      # doctest: +SKIP
>>> result = train(table, model="tiny", out_dir="/tmp/sp", feed=feed)     # doctest: +SKIP
>>> result.summary["adaptive"]["rescorings"]                               # doctest: +SKIP
4
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from torch.utils.data import Sampler
from transformers import TrainerCallback

from hils_kit.data.questions import LETTERS
from hils_kit.order.adaptive import AdaptiveSchedule
from hils_kit.score.scoring import letter_probabilities

RESCORINGS_PER_EPOCH = 4  # re-scorings when ``every`` is 0


def gold_losses(model, tokenizer, table: pd.DataFrame, template: str, precision: str) -> np.ndarray:
    """``-log p(gold letter)`` among each question's option letters: the answer's loss, one forward pass each."""
    probs = letter_probabilities(model, tokenizer, table, template, precision=precision, desc="re-scoring")
    gold = probs[np.arange(len(table)), table["answer"].map(LETTERS.index).to_numpy()]
    return -np.log(np.clip(gold, 1e-300, None))


class AdaptiveSampler(Sampler):
    def __init__(self, schedule: AdaptiveSchedule):
        self.schedule = schedule

    def __len__(self) -> int:
        return self.schedule.total

    def __iter__(self):
        for _ in range(self.schedule.total):
            yield self.schedule.next_row()


class _Rescorer(TrainerCallback):
    def __init__(self, feed: AdaptiveFeed):
        self.feed = feed

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.feed.every = self.feed.every or max(1, round(state.max_steps / RESCORINGS_PER_EPOCH))
        self.feed.rescore(model, processing_class, "bf16" if args.bf16 else "fp32")

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.feed.schedule.step = state.global_step
        if state.global_step % self.feed.every == 0 and state.global_step < state.max_steps:
            self.feed.rescore(model, processing_class, "bf16" if args.bf16 else "fp32")


class AdaptiveFeed:
    """A schedule, the table whose rows it decides among, and the re-scoring interval (optimizer steps)."""

    def __init__(self, schedule: AdaptiveSchedule, table: pd.DataFrame, every: int = 0, template: str = "paper"):
        if len(table) != schedule.n:
            raise ValueError(f"the schedule decides among {schedule.n} rows, the table has {len(table)}")
        if every < 0:
            raise ValueError(f"re-scoring every {every} steps: give 0 (four times an epoch) or more")
        self.schedule, self.table, self.every, self.template = schedule, table.reset_index(drop=True), every, template
        self.sampler, self.callback = AdaptiveSampler(schedule), _Rescorer(self)
        self.seconds = 0.0

    def rescore(self, model, tokenizer, precision: str) -> None:
        """Score the schedule's candidates with ``model`` and hand it the losses."""
        rows = self.schedule.candidates()
        start = time.perf_counter()
        losses = gold_losses(model, tokenizer, self.table.iloc[rows], self.template, precision) if len(rows) else []
        self.schedule.rescore(rows, np.asarray(losses, dtype=float))
        self.seconds += time.perf_counter() - start

    def record(self, train_seconds: float) -> dict:
        """The schedule's record, the re-scoring interval and what re-scoring cost."""
        return {
            **self.schedule.record(),
            "rescore_every_steps": self.every,
            "rescoring_seconds": round(self.seconds, 3),
            "rescoring_share_of_training": round(self.seconds / train_seconds, 3) if train_seconds else None,
        }
