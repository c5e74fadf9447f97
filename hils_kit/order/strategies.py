"""The training orders themselves: one function per strategy, from the row keys to a permutation.

Each function takes the :class:`Keys` of a question table and returns ``(order, helpers)``: the row positions in
training order and helper columns per input row (``block``, ``round``). :mod:`hils_kit.order.registry` names
them; :func:`hils_kit.order.orderings.order_questions` computes the keys, calls one and lays out the table.

>>> keys = Keys(shuffle=np.array([2, 0, 1]), level=np.array([0.5, 0.9, 0.1]), category=None, rounds=3, tiers=False)
>>> curriculum(keys)[0].tolist(), anti_curriculum(keys)[0].tolist(), random(keys)[0].tolist()
([2, 0, 1], [1, 0, 2], [1, 2, 0])
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np

from hils_kit.labels.tiers import TIERS


class Keys(NamedTuple):
    """What an order is computed from, one value per row of the table."""

    shuffle: np.ndarray  # a seeded random rank: breaks ties and orders the inside of a block
    level: np.ndarray | None  # difficulty (higher is harder), or the tier code; None when the strategy uses none
    category: np.ndarray | None  # rank of the row's category block; None when the strategy uses no categories
    rounds: int  # interleaving rounds
    tiers: bool  # difficulty comes in tiers (variant "tiers")
    competence_shape: str = "sqrt"  # the competence function c(t) of ``competence``: sqrt or linear
    competence_start: float = 0.01  # c(0): the share of the easiest questions open at the start
    extra: int = 0  # examples beyond one epoch (``random_matched``: the review budget it is matched to)


Ordering = tuple[np.ndarray, dict[str, np.ndarray]]


def random(k: Keys) -> Ordering:
    """A seeded shuffle."""
    return np.argsort(k.shuffle), {}


def curriculum(k: Keys) -> Ordering:
    """Easy -> hard over the whole set."""
    return np.lexsort((k.shuffle, k.level)), {}


def random_matched(k: Keys) -> Ordering:
    """A seeded shuffle of every question once plus ``extra`` questions twice: a Random Shuffle with the examples
    of a schedule that spends an extra budget (``spaced_repetition``), for comparisons at equal compute."""
    rng = np.random.default_rng(k.shuffle)  # seeded by the shuffle, so by the ordering seed
    rows = np.concatenate([np.arange(len(k.shuffle)), rng.choice(len(k.shuffle), k.extra, replace=False)])
    return rows[rng.permutation(len(rows))], {}


def competence_at(x: np.ndarray, shape: str, start: float) -> np.ndarray:
    """Platanios et al. (2019)'s competence c at training progress ``x`` in [0, 1]: ``sqrt`` is
    ``sqrt(x (1 - c0^2) + c0^2)``, ``linear`` is ``x (1 - c0) + c0``.

    >>> competence_at(np.array([0.0, 0.25, 1.0]), "sqrt", 0.0).tolist()
    [0.0, 0.5, 1.0]
    """
    if shape == "sqrt":
        return np.sqrt(x * (1 - start**2) + start**2)
    if shape == "linear":
        return x * (1 - start) + start
    raise ValueError(f"competence '{shape}': use sqrt or linear")


def competence(k: Keys) -> Ordering:
    """Competence-based curriculum (Platanios et al. 2019, NAACL): the example at position p is drawn (seeded, without
    replacement) from the questions whose difficulty percentile is at most c(p / n), so the pool opens from the
    easiest ``competence_start`` share to every question; each question once. Adds ``open_share`` (the share of the
    questions open when it was drawn)."""
    n = len(k.shuffle)
    easiest = np.lexsort((k.shuffle, k.level))
    opened = np.ceil(competence_at(np.arange(n) / n, k.competence_shape, k.competence_start) * n - 1e-9).astype(int)
    pool: list[tuple[int, int]] = []
    order, drawn_at, next_open = np.empty(n, dtype=int), np.empty(n), 0
    for p in range(n):
        while next_open < max(opened[p], p + 1):  # at least one question not yet drawn is open
            heapq.heappush(pool, (int(k.shuffle[easiest[next_open]]), int(easiest[next_open])))
            next_open += 1
        order[p] = heapq.heappop(pool)[1]
        drawn_at[order[p]] = next_open / n
    return order, {"open_share": drawn_at}


def anti_curriculum(k: Keys) -> Ordering:
    """Hard -> easy over the whole set."""
    return np.lexsort((k.shuffle, -k.level)), {}


def blocked(k: Keys) -> Ordering:
    """One block per category, shuffled inside."""
    return np.lexsort((k.shuffle, k.category)), {"block": k.category + 1}


def blocked_curriculum(k: Keys) -> Ordering:
    """One block per category, easy -> hard inside each block."""
    return np.lexsort((k.shuffle, k.level, k.category)), {"block": k.category + 1}


def interleaved(k: Keys) -> Ordering:
    """Each shuffled category block cut into ``rounds`` chunks; round r = chunk r of every category."""
    return _rounds(k, np.lexsort((k.shuffle, k.category)))


def interleaved_curriculum(k: Keys) -> Ordering:
    """Each category sorted easy -> hard and cut into ``rounds`` chunks (the tiers, for tiered difficulty);
    round 1 = the easiest chunk of every category."""
    if not k.tiers:
        return _rounds(k, np.lexsort((k.shuffle, k.level, k.category)))
    if k.rounds != len(TIERS):
        raise ValueError(
            f"interleaved_curriculum with variant 'tiers' has one round per tier "
            f"({len(TIERS)}); rounds={k.rounds} does not apply (use variant 'strict')"
        )
    return np.lexsort((k.shuffle, k.category, k.level)), {"round": k.level + 1}


def _rounds(k: Keys, blocked_order: np.ndarray) -> Ordering:
    """Round r = the r-th ``np.array_split`` chunk of every category block of ``blocked_order``."""
    n = len(k.shuffle)
    chunk = np.empty(n, dtype=int)
    chunk[blocked_order] = _chunk_numbers(np.bincount(k.category, minlength=k.category.max() + 1), k.rounds)
    within = np.empty(n, dtype=int)
    within[blocked_order] = np.arange(n)
    return np.lexsort((within, k.category, chunk)), {"round": chunk + 1}


def _chunk_numbers(sizes: np.ndarray, rounds: int) -> np.ndarray:
    """The ``np.array_split(group, rounds)`` chunk (0-based) of each item, for groups of ``sizes`` laid end to end."""
    out = []
    for size in sizes:
        base, extra = divmod(int(size), rounds)
        out.append(np.repeat(np.arange(rounds), [base + (r < extra) for r in range(rounds)]))
    return np.concatenate(out) if out else np.array([], dtype=int)
