"""The learning strategies of the paper (§2, Figure 1) as training orders of a question table.

Every strategy is a pure function of the table, two labels (``category``, ``difficulty``: higher is
harder) and a seed. It returns the same rows in a new order (index 0..n-1, every input column kept)
plus helper columns that describe the structure, all counted from 1:

=========================  ===================================================================  ===============
strategy                   order                                                                helper columns
=========================  ===================================================================  ===============
``random``                 a seeded shuffle
``blocked``                one block per category (in ``category_order``), shuffled inside      ``block``
``interleaved``            each shuffled category block cut into ``rounds`` chunks              ``block round``
                           (``np.array_split``); round r = chunk r of every category
``curriculum``             easy -> hard over the whole set
``blocked_curriculum``     one block per category, easy -> hard inside each block               ``block``
``interleaved_curriculum`` each category sorted easy -> hard, cut into ``rounds`` chunks;       ``block round``
                           round 1 = the easiest chunk of every category
``anti_curriculum``        hard -> easy over the whole set (not in the paper)
``competence``             position p draws at random from the questions whose difficulty       ``open_share``
                           percentile is at most c(p/n) (Platanios et al. 2019; not in the
                           paper)
``random_matched``         a shuffle of every question once plus ``review_budget`` x n          ``pass``
                           questions twice (Spaced Repetition's examples at random)
``self_paced``             decided during training (:mod:`hils_kit.order.adaptive`, Kumar et
                           al. 2010): the table is a seeded shuffle, the pool
``spaced_repetition``      decided during training (Leitner): one epoch in this seeded
                           shuffle, reviews inserted
=========================  ===================================================================  ===============

``block`` numbers the contiguous groups (a category block, or one category's chunk in a round).

A placebo twin (``curriculum_placebo``, ...; :mod:`hils_kit.order.placebo`) orders as its strategy does on the
labels shuffled among the questions: the rows keep their real labels, the shuffled ones it ordered by are added as
``placebo_difficulty`` / ``placebo_category``, and ``attrs["placebo"]`` records the check (rank r, kappa, attempt).

Difficulty variants (the paper code's "strict" and "EMH"):

- ``strict``: sorted by difficulty, ties in a seeded random order.
- ``tiers``: easy (d < lo), medium (lo <= d < hi), hard (d >= hi), shuffled inside each tier; adds
  ``tier``. ``thresholds=(lo, hi)`` or a name in :data:`hils_kit.labels.tiers.THRESHOLDS`; the terciles of the
  table when None. For ``interleaved_curriculum`` the rounds are the tiers (easy questions of every category,
  then medium, then hard), as in the paper code's ``interleaved_emh``.

``repeat=m`` shows each group m times in a row: its first pass in the strategy's order, then m-1
reshuffled copies (paper §2.4); adds ``pass``. The group is the smallest one whose inside order is
random: the whole set (``random``, strict ``curriculum``/``anti_curriculum``), a category block
(``blocked``, strict ``blocked_curriculum``), a round chunk (interleaved strategies), or a tier
(``tiers`` variants, inside its category block for ``blocked_curriculum``).

What differs from the paper's code (``training/data_ordering.py``):

- The interleaved strategies run (the committed ones raise ``TypeError``), and ``rounds`` is a parameter.
- The category order is chosen (``size`` by default, ``name``, ``shuffle``, or a list) and is the
  same for every seed; the code's ``blocked`` was alphabetical by accident of ``groupby``.
- One ``seed`` drives every random choice (the code mixed seeds 1 and 42 across strategies); the
  same seed gives the same within-block order in every strategy.
- Difficulty always means "higher is harder": use ``1 - human_p_correct`` (error rate) for human
  labels. The tiers are then exactly the paper code's human rule (share correct > 0.94 easy, <= 0.85
  hard); its LLM rule (easy <= 0.66, hard > 0.80) differs only at exact ties (:mod:`hils_kit.labels.tiers`).
- No ``groupby.apply`` (pandas 3 drops the grouping column there, which breaks the code's ``blocked*``).

>>> table = pd.DataFrame({"id": [f"q{i}" for i in range(8)], "category": list("aaaaabbb"),
...                       "difficulty": [0.9, 0.2, 0.5, 0.1, 0.7, 0.3, 0.8, 0.4]})
>>> out = order_questions(table, "interleaved_curriculum", rounds=2)
>>> out["category"].str.cat(), out["difficulty"].tolist()
('aaabbaab', [0.1, 0.2, 0.5, 0.3, 0.4, 0.7, 0.9, 0.8])
>>> out["round"].tolist(), out["block"].tolist()
([1, 1, 1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 3, 3, 4])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hils_kit.labels.tiers import TIERS, resolve_thresholds, tier_codes
from hils_kit.order.adaptive import adaptive_plan, check_budget
from hils_kit.order.placebo import draw_placebo
from hils_kit.order.registry import STRATEGIES, STRATEGY
from hils_kit.order.strategies import Keys

VARIANTS = ("strict", "tiers")
CATEGORY_ORDERS = ("size", "name", "shuffle")
# Columns an ordering writes; an input that already has them (an earlier order) gets them replaced.
ORDER_COLUMNS = (
    "position",
    "block",
    "round",
    "tier",
    "pass",
    "stage",
    "open_share",
    "placebo_difficulty",
    "placebo_category",
)
COMPETENCE_SHAPES = ("sqrt", "linear")


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the row shuffle, the category shuffle and the repeats."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def _ids(table: pd.DataFrame, mask: np.ndarray) -> str:
    rows = table["id"][mask] if "id" in table else pd.Series(np.flatnonzero(mask))
    return ", ".join(str(v) for v in rows.head(3))


def difficulty_values(table: pd.DataFrame, column: str, strategy: str) -> np.ndarray:
    """The ``column`` as floats; a ValueError naming the column and strategy when missing or not numeric."""
    if column not in table:
        raise ValueError(
            f"strategy '{strategy}' needs difficulty column '{column}', which the table does not have "
            f"(columns: {', '.join(map(str, table.columns))})"
        )
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values)
    if bad.any():
        raise ValueError(
            f"strategy '{strategy}' needs a number in difficulty column '{column}' for every question; "
            f"{bad.sum()} of {len(table)} are missing or not numbers (e.g. {_ids(table, bad)})"
        )
    return values


def _category_values(table: pd.DataFrame, column: str, strategy: str) -> pd.Series:
    if column not in table:
        raise ValueError(
            f"strategy '{strategy}' needs category column '{column}', which the table does not have "
            f"(columns: {', '.join(map(str, table.columns))})"
        )
    bad = table[column].isna().to_numpy()
    if bad.any():
        raise ValueError(
            f"strategy '{strategy}' needs a category for every question; column '{column}' is empty "
            f"for {bad.sum()} of {len(table)} (e.g. {_ids(table, bad)})"
        )
    return table[column]


def category_sequence(categories: pd.Series, order: str | Sequence = "size", seed: int = 0) -> list:
    """The order of the category blocks.

    ``"size"``: largest first, ties by name (the default); ``"name"``: sorted; ``"shuffle"``: a seeded
    shuffle; or a list holding every category (extra names are skipped).

    >>> category_sequence(pd.Series(["b", "a", "b", "c", "c"]))
    ['b', 'c', 'a']
    """
    counts = categories.value_counts()
    if not isinstance(order, str):
        order = list(order)
        missing = [c for c in counts.index if c not in order]
        if missing:
            raise ValueError(f"category order lacks {len(missing)} categories of the table: {missing[:5]}")
        return [c for c in order if c in counts.index]
    if order == "size":
        return sorted(counts.index, key=lambda c: (-counts[c], c))
    if order == "name":
        return sorted(counts.index)
    if order == "shuffle":
        names = sorted(counts.index)
        return [names[i] for i in _rngs(seed)[1].permutation(len(names))]
    raise ValueError(f"category order '{order}' is not one of {', '.join(CATEGORY_ORDERS)} (or a list)")


def _run_numbers(*keys: np.ndarray) -> np.ndarray:
    """1-based number of the contiguous run each position is in, a run ending where any key changes."""
    n = len(keys[0])
    change = np.zeros(n, dtype=bool)
    change[:1] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.cumsum(change)


def _repeat(units: np.ndarray, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions with every run of equal ``units`` shown ``m`` times (first as is, then reshuffled), and the pass."""
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    stops = np.r_[starts[1:], len(units)]
    positions, passes = [], []
    for start, stop in zip(starts, stops):
        run = np.arange(start, stop)
        for p in range(m):
            positions.append(run if p == 0 else rng.permutation(run))
            passes.append(np.full(len(run), p + 1))
    return np.concatenate(positions), np.concatenate(passes)


def order_questions(
    table: pd.DataFrame,
    strategy: str,
    *,
    difficulty: str = "difficulty",
    category: str = "category",
    variant: str = "strict",
    rounds: int = 3,
    seed: int = 0,
    category_order: str | Sequence = "size",
    thresholds=None,
    repeat: int = 1,
    competence_shape: str = "sqrt",
    competence_start: float = 0.01,
    review_budget: float = 0.25,
) -> pd.DataFrame:
    """``table`` in the training order of ``strategy`` (see the module docstring).

    Args:
        table: question table; needs ``category`` and/or ``difficulty`` columns as the strategy requires.
        strategy: one of :data:`STRATEGIES`.
        difficulty, category: the label columns (difficulty: higher is harder).
        variant: ``"strict"`` or ``"tiers"``, for the strategies that use difficulty.
        rounds: interleaving rounds (chunks per category).
        seed: drives every random choice; the same seed gives the same order.
        category_order: ``"size"``, ``"name"``, ``"shuffle"`` or a list of categories.
        thresholds: ``(lo, hi)``, ``"human"`` or ``"llm"`` for ``variant="tiers"``; None = terciles.
        repeat: show each group this many times (adds ``pass``; ids then repeat).
        competence_shape, competence_start: the competence function (``sqrt``, ``linear``) and its start c(0), for
            ``competence``.
        review_budget: the extra examples of ``spaced_repetition`` as a share of one epoch; ``random_matched``
            (its equal-compute twin) repeats that many questions.

    An adaptive strategy (``self_paced``, ``spaced_repetition``: :mod:`hils_kit.order.adaptive`) is decided during
    training; its table is the initial plan (a seeded shuffle: the pool, or the epoch the reviews go into) and
    ``attrs["adaptive"]`` says what training decides.

    >>> table = pd.DataFrame({"id": list("abcdef"), "category": list("xxxyyy"),
    ...                       "difficulty": [0.3, 0.1, 0.2, 0.9, 0.5, 0.7]})
    >>> order_questions(table, "blocked_curriculum")["id"].tolist()
    ['b', 'c', 'a', 'e', 'f', 'd']
    >>> order_questions(table, "interleaved_curriculum", rounds=3)["id"].tolist()
    ['b', 'e', 'c', 'f', 'a', 'd']
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}' (one of {', '.join(STRATEGIES)})")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant '{variant}' (one of {', '.join(VARIANTS)})")
    for name, value in (("rounds", rounds), ("repeat", repeat)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if variant == "strict" and thresholds is not None:
        raise ValueError("thresholds apply to variant 'tiers' only")
    if thresholds is not None:
        resolve_thresholds(thresholds, None)  # refuse a malformed pair even where it is not used
    if len(table) == 0:
        raise ValueError("the question table is empty")
    info = STRATEGY[strategy]
    if repeat > 1 and (info.adaptive or info.extra_examples):
        raise ValueError(f"repeat applies to orders planned one pass at a time, not to '{strategy}'")
    if competence_shape not in COMPETENCE_SHAPES:
        raise ValueError(f"competence_shape '{competence_shape}': use one of {', '.join(COMPETENCE_SHAPES)}")
    if isinstance(competence_start, bool) or not 0 < competence_start < 1:
        raise ValueError(f"competence_start {competence_start!r}: the share open at the start, in (0, 1)")
    check_budget(review_budget)

    table = table.drop(columns=[c for c in ORDER_COLUMNS if c in table.columns]).reset_index(drop=True)
    n = len(table)
    row_rng, _, repeat_rng = _rngs(seed)
    shuffle = row_rng.permutation(n)
    tiers = variant == "tiers" and info.uses_difficulty
    cats = cat_rank = difficulties = level = None
    helpers: dict[str, np.ndarray] = {}
    if info.uses_category:
        cats = _category_values(table, category, strategy).to_numpy()
    if info.uses_difficulty:
        difficulties = difficulty_values(table, difficulty, strategy)
    labelled_placebo = info.placebo_of and (info.uses_difficulty or info.uses_category)
    if labelled_placebo:
        placebo = draw_placebo(difficulties, cats, seed)
        shuffled = {
            name: v[placebo.permutation]
            for name, v in (("difficulty", difficulties), ("category", cats))
            if v is not None
        }
        difficulties, cats = shuffled.get("difficulty"), shuffled.get("category")
    if info.uses_category:
        rank_of = {c: i for i, c in enumerate(category_sequence(pd.Series(cats), category_order, seed))}
        cat_rank = np.array([rank_of[c] for c in cats], dtype=int)
    if info.uses_difficulty:
        level = difficulties  # what "easy -> hard" sorts on
        if tiers:
            level = helpers["tier"] = tier_codes(difficulties, thresholds)
    extra = int(round(review_budget * n)) if info.extra_examples and not info.adaptive else 0
    order, made = info.order(Keys(shuffle, level, cat_rank, rounds, tiers, competence_shape, competence_start, extra))
    helpers.update(made)

    ordered = table.iloc[order].reset_index(drop=True)
    if len(order) > n or info.extra_examples and not info.adaptive:  # shown more than once: the how-many-th time
        ordered["pass"] = ordered.groupby(order).cumcount().to_numpy() + 1
    if "open_share" in helpers:
        ordered["open_share"] = helpers["open_share"][order]
    if info.adaptive:
        ordered.attrs["adaptive"] = adaptive_plan(strategy, n, review_budget)
    if labelled_placebo:
        for name, v in shuffled.items():
            ordered[f"placebo_{name}"] = v[order]
        ordered.attrs["placebo"] = {"of": info.placebo_of, "seed": int(seed), **placebo.record()}
    helpers = {name: values[order] for name, values in helpers.items()}
    if "round" in helpers:
        helpers["block"] = _run_numbers(helpers["round"], cat_rank[order])
    for name in ("block", "round"):
        if name in helpers:
            ordered[name] = helpers[name]
    if "tier" in helpers:
        ordered["tier"] = np.asarray(TIERS, dtype=object)[helpers["tier"]]
    if repeat > 1:
        groups = _run_numbers(np.zeros(n), *(helpers[k] for k in ("block", "tier") if k in helpers))
        positions, passes = _repeat(groups, repeat, repeat_rng)
        ordered = ordered.iloc[positions].reset_index(drop=True)
        ordered["pass"] = passes
    return ordered


def pacing(table: pd.DataFrame, pools: int = 3, difficulty: str = "difficulty", seed: int = 0) -> pd.DataFrame:
    """Baby-step schedule: stage k (1..pools) holds the easiest k/pools of the questions, shuffled.

    The stages are concatenated, so easy questions come back in every later stage (ids repeat on
    purpose: stage k has the sizes of ``np.array_split`` pools 1..k); adds a ``stage`` column.

    >>> table = pd.DataFrame({"id": list("abcd"), "difficulty": [0.4, 0.1, 0.3, 0.2]})
    >>> pacing(table, pools=2)["stage"].tolist()
    [1, 1, 2, 2, 2, 2]
    """
    if isinstance(pools, bool) or not isinstance(pools, (int, np.integer)) or pools < 1:
        raise ValueError(f"pools must be a whole number >= 1, got {pools!r}")
    if len(table) == 0:
        raise ValueError("the question table is empty")
    table = table.drop(columns=[c for c in ORDER_COLUMNS if c in table.columns]).reset_index(drop=True)
    values = difficulty_values(table, difficulty, "pacing")
    row_rng, _, stage_rng = _rngs(seed)
    easiest = np.lexsort((row_rng.permutation(len(table)), values))
    ends = np.cumsum([len(pool) for pool in np.array_split(easiest, pools)])
    positions = [stage_rng.permutation(easiest[:end]) for end in ends]
    ordered = table.iloc[np.concatenate(positions)].reset_index(drop=True)
    ordered["stage"] = np.repeat(np.arange(1, pools + 1), ends)
    return ordered
