"""Adaptive orders: the next training question decided while the model trains, from its own current loss.

A schedule is asked for the next question (:meth:`AdaptiveSchedule.next_row`) each time the training feed needs
one (:mod:`hils_kit.train.adaptive_feed`), and is told the model's losses on the questions it asks about at every
re-scoring (:meth:`AdaptiveSchedule.candidates`, :meth:`AdaptiveSchedule.rescore`). Rows are the positions of the
cell's table, whose row order is the strategy's initial plan (a seeded shuffle, :func:`hils_kit.order.orderings.
order_questions`); ties go to the earlier row.

- ``self_paced`` (after Kumar, Packer & Koller 2010, *Self-paced learning for latent variable models*): a
  question's difficulty is the model's current loss on it. Every re-scoring scores the questions not yet seen, and
  the easiest of them is fed next. Each question once: one epoch.
- ``spaced_repetition`` (a Leitner schedule; after Leitner 1972 and Amiri et al. 2017, *Repeat before forgetting*):
  one epoch in the initial plan's order plus a budget of reviews (``review_budget`` x the questions, counted). A
  question is checked at the first re-scoring after it was fed; at a check, a loss above the median of every
  question's latest loss, or above its own last one, sends it back (box 1, checked again at the next re-scoring),
  and any other moves it up a box (box b is checked again 2^(b-1) re-scorings later). Reviews, highest loss first,
  are spread along the epoch in proportion to its progress; what the budget still holds when the epoch ends goes to
  the highest-loss questions. The stream is exactly ``n + budget`` long, so the budget is always spent.

A question's loss is the cross-entropy of its gold letter among its option letters (``-log p(gold)`` from
:func:`hils_kit.score.scoring.letter_probabilities`): the loss training puts on the answer, from one forward pass.

A placebo twin (``placebo_seed``) shuffles the scores among the questions scored at each re-scoring before the
schedule sees them: pacing, budget and checks keep their shape, the scores lose their meaning. Each shuffle is
drawn as the static placebos' labels are (:func:`hils_kit.order.placebo.draw_placebo`: rank r with the real scores
below 0.2 where enough questions allow) and recorded.

Every decision is recorded (:meth:`AdaptiveSchedule.decisions_table`): its position, the optimizer steps done when
it was made, the row, the score that chose it and why (``easiest unseen``, ``new``, ``review``, ``final review``).

>>> schedule = SelfPaced(3)
>>> schedule.candidates().tolist()
[0, 1, 2]
>>> schedule.rescore(np.array([0, 1, 2]), np.array([0.9, 0.1, 0.5]))
>>> [schedule.next_row() for _ in range(3)], schedule.decisions[0]["reason"]
([1, 2, 0], 'easiest unseen')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hils_kit.order.placebo import draw_placebo
from hils_kit.order.registry import STRATEGY

MIN_SHUFFLED = 10  # a re-scoring of fewer questions may not find a shuffle with |rank r| < 0.2; not held against it


class AdaptiveSchedule:
    """What the adaptive schedules share: the decision log, the step counter, the re-scorings and the placebo.

    ``step`` is set by the training feed to the optimizer steps done; ``total`` is the stream's length.
    """

    key = ""

    def __init__(self, n: int, placebo_seed: int | None = None):
        if n < 1:
            raise ValueError("an adaptive schedule needs at least one question")
        self.n, self.placebo_seed = n, placebo_seed
        self.step = 0
        self.rescorings = 0  # re-scorings done
        self.n_scored = 0  # questions scored over all re-scorings
        self.decisions: list[dict] = []
        self.placebo_checks: list[dict] = []

    @property
    def total(self) -> int:
        return self.n

    def candidates(self) -> np.ndarray:
        """The rows whose loss the schedule needs now."""
        raise NotImplementedError

    def rescore(self, rows: np.ndarray, losses: np.ndarray) -> None:
        """Take the model's current ``losses`` on ``rows`` (shuffled among them first, for a placebo)."""
        rows, losses = np.asarray(rows, dtype=int), np.asarray(losses, dtype=float)
        if len(rows) != len(losses):
            raise ValueError(f"{len(rows)} rows but {len(losses)} losses")
        if self.placebo_seed is not None and len(rows) > 1:
            drawn = draw_placebo(losses, None, seed=self.placebo_seed * 100_003 + self.rescorings)
            losses = losses[drawn.permutation]
            self.placebo_checks.append({"rescoring": self.rescorings, "n": len(rows), **drawn.record()})
        self._update(rows, losses)
        self.rescorings += 1
        self.n_scored += len(rows)

    def _update(self, rows: np.ndarray, losses: np.ndarray) -> None:
        raise NotImplementedError

    def next_row(self) -> int:
        """Decide the next row to feed (and record the decision)."""
        raise NotImplementedError

    def _decide(self, row: int, score: float, reason: str) -> int:
        self.decisions.append(
            {
                "position": len(self.decisions),
                "step": self.step,
                "row": int(row),
                "score": None if np.isnan(score) else float(score),
                "reason": reason,
            }
        )
        return int(row)

    def decisions_table(self, ids) -> pd.DataFrame:
        """The decision log with each row's question ``id`` (``ids`` in the table's row order)."""
        table = pd.DataFrame(self.decisions, columns=["position", "step", "row", "score", "reason"])
        table.insert(3, "id", [str(ids[r]) for r in table["row"]])
        return table

    def record(self) -> dict:
        """What a run's summary keeps about the schedule."""
        reasons = pd.Series([d["reason"] for d in self.decisions], dtype=object).value_counts()
        checks = self.placebo_checks
        return {
            "strategy": self.key,
            "examples": len(self.decisions),
            "rescorings": self.rescorings,
            "questions_scored": self.n_scored,
            "decisions": {str(k): int(v) for k, v in reasons.items()},
            "placebo": None
            if self.placebo_seed is None
            else {
                "seed": self.placebo_seed,
                "shuffles": len(checks),
                "max_abs_rank_r": max((abs(c["difficulty_rank_r"] or 0) for c in checks), default=None),
                "uncorrelated": all(c["uncorrelated"] for c in checks if c["n"] >= MIN_SHUFFLED),
            },
        }


class SelfPaced(AdaptiveSchedule):
    """The easiest question not yet fed, by the loss at the latest re-scoring (unscored rows last, in row order)."""

    key = "self_paced"

    def __init__(self, n: int, placebo_seed: int | None = None):
        super().__init__(n, placebo_seed)
        self.seen = np.zeros(n, dtype=bool)
        self.score = np.full(n, np.nan)

    def candidates(self) -> np.ndarray:
        return np.flatnonzero(~self.seen)

    def _update(self, rows, losses):
        self.score[rows] = losses

    def next_row(self) -> int:
        unseen = np.flatnonzero(~self.seen)
        if not len(unseen):
            raise RuntimeError(f"self_paced: all {self.n} questions were fed already")
        scores = np.where(np.isnan(self.score[unseen]), np.inf, self.score[unseen])
        row = unseen[np.lexsort((unseen, scores))[0]]
        self.seen[row] = True
        return self._decide(row, self.score[row], "easiest unseen")


class SpacedRepetition(AdaptiveSchedule):
    """One epoch in row order plus ``budget`` reviews of the questions whose loss stays high or rises."""

    key = "spaced_repetition"

    def __init__(self, n: int, review_budget: float = 0.25, placebo_seed: int | None = None):
        super().__init__(n, placebo_seed)
        check_budget(review_budget)
        self.budget = int(round(review_budget * n))
        self.base_done = self.reviews_done = 0
        self.box = np.zeros(n, dtype=int)  # 0: not fed yet
        self.due = np.zeros(n, dtype=int)  # the number of the re-scoring (0-based) that checks it next
        self.loss = np.full(n, np.nan)  # its latest loss
        self.queue: list[int] = []  # rows sent back, highest loss first
        self.final: list[int] = []  # rows of the final review, highest loss first

    @property
    def total(self) -> int:
        return self.n + self.budget

    def candidates(self) -> np.ndarray:
        queued = np.zeros(self.n, dtype=bool)
        queued[self.queue] = True
        return np.flatnonzero((self.box > 0) & (self.due <= self.rescorings) & ~queued)

    def _update(self, rows, losses):
        before = self.loss[rows].copy()
        self.loss[rows] = losses
        median = np.nanmedian(self.loss) if np.isfinite(self.loss).any() else np.inf
        back = (losses > median) | (~np.isnan(before) & (losses > before))
        self.box[rows] = np.where(back, 1, self.box[rows] + 1)
        self.due[rows] = self.rescorings + 2 ** (self.box[rows] - 1)
        self.queue = sorted({*self.queue, *rows[back].tolist()}, key=lambda r: (-self.loss[r], r))

    def next_row(self) -> int:
        if len(self.decisions) >= self.total:
            raise RuntimeError(f"spaced_repetition: all {self.total} examples were decided already")
        allowed = self.budget * self.base_done // self.n  # reviews spread along the epoch
        if self.queue and (self.reviews_done < allowed or self.base_done == self.n):
            return self._review(self.queue.pop(0), "review")
        if self.base_done < self.n:
            row = self.base_done
            self.base_done += 1
            self.box[row], self.due[row] = 1, self.rescorings  # checked at the next re-scoring
            return self._decide(row, np.nan, "new")
        if not self.final:  # the epoch is over and nothing is queued: the highest latest losses
            self.final = sorted(range(self.n), key=lambda r: (-np.nan_to_num(self.loss[r], nan=-np.inf), r))
        return self._review(self.final.pop(0), "final review")

    def _review(self, row: int, reason: str) -> int:
        self.reviews_done += 1
        self.box[row], self.due[row] = 1, self.rescorings
        return self._decide(row, self.loss[row], reason)

    def record(self) -> dict:
        return {**super().record(), "review_budget": self.budget, "reviews": self.reviews_done}


SCHEDULES = {SelfPaced.key: SelfPaced, SpacedRepetition.key: SpacedRepetition}


def check_budget(review_budget: float) -> None:
    """Refuse a review budget outside (0, 1] (a share of one epoch)."""
    if isinstance(review_budget, bool) or not isinstance(review_budget, (int, float)) or not 0 < review_budget <= 1:
        raise ValueError(
            f"review_budget {review_budget!r}: give the extra examples as a share of one epoch, in (0, 1] "
            "(0.25: a quarter more examples)"
        )


def adaptive_schedule(strategy: str, n: int, seed: int = 0, review_budget: float = 0.25) -> AdaptiveSchedule | None:
    """The schedule of an adaptive strategy (its placebo twin shuffles the scores with ``seed``); None for a
    strategy whose whole order is planned in advance.

    >>> adaptive_schedule("curriculum", 10) is None, adaptive_schedule("spaced_repetition", 8, review_budget=0.5).total
    (True, 12)
    """
    info = STRATEGY[strategy]
    if not info.adaptive:
        return None
    base = info.placebo_of or strategy
    placebo_seed = seed if info.placebo_of else None
    if base == SpacedRepetition.key:
        schedule = SpacedRepetition(n, review_budget, placebo_seed)
    else:
        schedule = SCHEDULES[base](n, placebo_seed)
    schedule.key = strategy  # the twin's own key in its record
    return schedule


def adaptive_plan(strategy: str, n: int, review_budget: float = 0.25) -> dict:
    """What is planned before training for an adaptive strategy, and what training decides (``hils order`` and
    the strategy picker show it).

    >>> adaptive_plan("spaced_repetition", 100)["examples"]
    125
    """
    base = STRATEGY[strategy].placebo_of or strategy
    total = adaptive_schedule(strategy, n, review_budget=review_budget).total
    if base == SpacedRepetition.key:
        plan = (
            f"the {n} questions in this order, once each; {total - n} reviews of the questions whose loss stays "
            "high or rises are inserted during training"
        )
    else:
        plan = "none: the order is decided during training, the easiest question not yet seen by the model's loss"
    placebo = " (placebo: the scores are shuffled among the questions at every re-scoring)" if base != strategy else ""
    return {"strategy": strategy, "examples": total, "initial_plan": plan + placebo}
