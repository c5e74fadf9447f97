"""The training orders themselves: one function per strategy, from the row keys to a permutation.

Each function takes the :class:`Keys` of a question table and returns ``(order, helpers)``: the row positions in
training order and helper columns per input row (``block``, ``round``). :mod:`hils_kit.order.registry` names
them; :func:`hils_kit.order.orderings.order_questions` computes the keys, calls one and lays out the table.

>>> keys = Keys(shuffle=np.array([2, 0, 1]), level=np.array([0.5, 0.9, 0.1]), category=None, rounds=3, tiers=False)
>>> curriculum(keys)[0].tolist(), anti_curriculum(keys)[0].tolist(), random(keys)[0].tolist()
([2, 0, 1], [1, 0, 2], [1, 2, 0])
"""

from __future__ import annotations

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


Ordering = tuple[np.ndarray, dict[str, np.ndarray]]


def random(k: Keys) -> Ordering:
    """A seeded shuffle."""
    return np.argsort(k.shuffle), {}


def curriculum(k: Keys) -> Ordering:
    """Easy -> hard over the whole set."""
    return np.lexsort((k.shuffle, k.level)), {}


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
