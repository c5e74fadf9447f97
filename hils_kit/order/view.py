"""Inspect a training order: a table per position, its contiguous runs, and Figure-1 style plots.

The plot reads like the paper's Figure 1: training position runs left to right, a strip along the
bottom is coloured by category, and a line above it is the difficulty (rolling mean, with the single
questions as faint dots). Dashed lines mark the interleaving rounds.

>>> import matplotlib; matplotlib.use("Agg")
>>> from hils_kit.data.loaders import load_questions                           # doctest: +SKIP
>>> table = load_questions("medmcqa").assign(difficulty=0.5)             # doctest: +SKIP
>>> plot_strategies(table).savefig("orders.png")                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from hils_kit.order.orderings import category_sequence, order_questions
from hils_kit.order.registry import STRATEGIES

STRIP = 0.14  # height of the category strip, as a share of the axes
STRUCTURE = ("block", "round", "tier", "pass", "stage")


def summarize_order(ordered: pd.DataFrame, category: str = "category", difficulty: str = "difficulty") -> pd.DataFrame:
    """One row per training position: ``position, category, difficulty, block, round`` (NA where the
    order has no such column), ``tier``/``pass``/``stage`` when present, and the booleans
    ``new_block``/``new_round`` that mark where a block or a round starts.

    >>> ordered = pd.DataFrame({"category": list("aabb"), "block": [1, 1, 2, 2]})
    >>> summarize_order(ordered)["new_block"].tolist()
    [True, False, True, False]
    """
    n = len(ordered)
    view = pd.DataFrame(
        {
            "position": ordered["position"].to_numpy() if "position" in ordered else np.arange(n),
            "category": ordered[category].to_numpy() if category in ordered else pd.array([pd.NA] * n),
            "difficulty": pd.to_numeric(ordered[difficulty]).to_numpy(dtype=float)
            if difficulty in ordered
            else np.full(n, np.nan),
        }
    )
    for name in STRUCTURE:
        if name in ordered or name in ("block", "round"):
            view[name] = ordered[name].to_numpy() if name in ordered else pd.array([pd.NA] * n, dtype="Int64")
    for name in ("block", "round"):
        values = view[name]
        view[f"new_{name}"] = values.notna().to_numpy() & (values.ne(values.shift()).fillna(True).to_numpy(dtype=bool))
    return view


def summarize_runs(ordered: pd.DataFrame, category: str = "category", difficulty: str = "difficulty") -> pd.DataFrame:
    """One row per contiguous run of the same category (and block, round, pass, stage): ``start``,
    ``stop`` (exclusive), ``size``, the labels and the run's mean ``difficulty``.

    >>> summarize_runs(pd.DataFrame({"category": list("aabba"), "difficulty": [0.1, 0.3, 0.5, 0.5, 0.9]}))[
    ...     ["start", "stop", "category", "difficulty"]].to_numpy().tolist()
    [[0, 2, 'a', 0.2], [2, 4, 'b', 0.5], [4, 5, 'a', 0.9]]
    """
    view = summarize_order(ordered, category, difficulty)
    keys = ["category"] + [c for c in STRUCTURE if c in view and view[c].notna().any()]
    change = np.zeros(len(view), dtype=bool)
    change[:1] = True
    for key in keys:
        values = view[key].astype(object).to_numpy()
        change[1:] |= values[1:] != values[:-1]
    starts = np.flatnonzero(change)
    stops = np.r_[starts[1:], len(view)]
    runs = view.iloc[starts][keys].reset_index(drop=True)
    runs.insert(0, "size", stops - starts)
    runs.insert(0, "stop", stops)
    runs.insert(0, "start", starts)
    runs["difficulty"] = view["difficulty"].groupby(np.cumsum(change)).mean().to_numpy()
    return runs


def category_palette(categories) -> dict:
    """A colour per category, the largest categories first; neighbouring entries get different hues."""
    names = category_sequence(pd.Series(categories).dropna(), "size")
    if len(names) <= 10:
        colours = list(colormaps["tab10"].colors)
    elif len(names) <= 40:  # strong hues first, then their lighter and darker relatives
        colours = [c for name in ("tab20", "tab20b") for c in colormaps[name].colors]
        colours = colours[0::2] + colours[1::2]
    else:
        colours = [colormaps["hsv"](i / len(names)) for i in range(len(names))]
    return dict(zip(names, colours[: len(names)]))


def plot_order(
    ordered: pd.DataFrame,
    ax=None,
    *,
    category: str = "category",
    difficulty: str = "difficulty",
    palette: dict | None = None,
    window: int | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Figure:
    """Draw one training order: category strip along the position, difficulty line above it.

    Args:
        ordered: an order from :func:`~hils_kit.order.orderings.order_questions` (or any table in training order).
        ax: the axes to draw in; a new figure when None.
        palette: ``{category: colour}``; :func:`category_palette` of the order when None.
        window: rolling-mean width for the difficulty line; about 1/40 of the positions when None.
        title: written at the top left.
        legend: add a category legend on the right.
    """
    view = summarize_order(ordered, category, difficulty)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 2.4), layout="constrained")
        plt.close(ax.figure)  # returned, not shown: a notebook displays it once
    n = len(view)
    palette = palette or category_palette(view["category"])
    strip = blended_transform_factory(ax.transData, ax.transAxes)
    runs = summarize_runs(ordered, category, difficulty)
    for name, colour in palette.items():
        mine = runs[runs["category"] == name]
        ax.broken_barh(
            list(zip(mine["start"] - 0.5, mine["size"])), (0, STRIP), transform=strip, facecolors=colour, linewidth=0
        )
    ax.vlines(np.flatnonzero(view["new_block"])[1:] - 0.5, 0, STRIP, transform=strip, colors="white", linewidth=0.6)
    ax.vlines(
        np.flatnonzero(view["new_round"])[1:] - 0.5, 0, 1, transform=strip, colors="0.3", linestyles="--", linewidth=0.9
    )

    values = view["difficulty"]
    if values.notna().any():
        lo, hi = values.min(), values.max()
        span = (hi - lo) or 1.0
        window = window or max(5, n // 40)
        ax.scatter(view.index, values, s=1.5, color="0.55", alpha=0.25, linewidths=0, rasterized=True)
        ax.plot(view.index, values.rolling(window, center=True, min_periods=1).mean(), color="black", linewidth=1.3)
        ax.set_ylim(lo - span * (STRIP + 0.06) / (1 - STRIP - 0.06), hi + 0.04 * span)
        ax.set_ylabel(difficulty)
    else:
        ax.set_yticks([])
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_xlabel("training position")
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    if legend:
        ax.legend(
            handles=_legend_handles(palette),
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            fontsize=7,
            frameon=False,
            ncol=1 if len(palette) <= 12 else 2,
        )
    return ax.figure


def _legend_handles(palette: dict) -> list[Patch]:
    return [Patch(facecolor=colour, label=str(name)) for name, colour in palette.items()]


def plot_strategies(
    table: pd.DataFrame,
    strategies: Sequence[str] = STRATEGIES,
    *,
    category: str = "category",
    difficulty: str = "difficulty",
    seed: int = 0,
    window: int | None = None,
    **order_options,
) -> Figure:
    """Figure 1 of the paper for ``table``: one row per strategy, shared colours and one legend.

    ``order_options`` (``variant``, ``rounds``, ``category_order``, ``thresholds``, ``repeat``) go to
    :func:`~hils_kit.order.orderings.order_questions`.
    """
    fig, axes = plt.subplots(
        len(strategies), 1, sharex=True, squeeze=False, layout="constrained", figsize=(11, 1.5 * len(strategies) + 1.2)
    )
    palette = category_palette(table[category]) if category in table else {}
    for ax, strategy in zip(axes[:, 0], strategies):
        ordered = order_questions(table, strategy, category=category, difficulty=difficulty, seed=seed, **order_options)
        plot_order(
            ordered,
            ax,
            category=category,
            difficulty=difficulty,
            palette=palette,
            window=window,
            title=strategy.replace("_", " ")
            + (" (initial plan; adapts during training)" if ordered.attrs.get("adaptive") else ""),
            legend=False,
        )
        ax.label_outer()
    if palette:
        fig.legend(
            handles=_legend_handles(palette),
            loc="outside lower center",
            fontsize=7,
            frameon=False,
            ncol=min(len(palette), 7),
        )
    plt.close(fig)  # returned, not shown: a notebook displays it once
    return fig
