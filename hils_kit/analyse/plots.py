"""Figures of a study's results: the strategy table as a heatmap, gains over Random Shuffle, human vs LLM labels.

Each function returns a matplotlib Figure (closed in pyplot, so a notebook shows it once, as the cell's value).

>>> from hils_kit.analyse.collect import collect_results
>>> from hils_kit.analyse.paired import gain_intervals
>>> from hils_kit.analyse.tables import strategy_table
>>> long = collect_results("runs/pilot")                                    # doctest: +SKIP
>>> fig = plot_strategy_table(strategy_table(long, "llm"))                  # doctest: +SKIP
>>> fig = plot_gains(gain_intervals(long, "llm"))                           # doctest: +SKIP
>>> fig.savefig("reports/figures/gains_llm.png")                            # doctest: +SKIP
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hils_kit.analyse.tables import gains_over_random
from hils_kit.order.registry import BASELINE_NAME, CURRICULUM_STRATEGIES, strategy_name


def plot_strategy_table(table: pd.DataFrame, relative: bool = True, title: str | None = None, fmt: str = ".2f"):
    """Heatmap of a :func:`~hils_kit.analyse.tables.strategy_table`, annotated with its values.

    With ``relative`` the colours show each cell's gain over Random Shuffle (columns differ far more between models
    than between strategies, so raw values would hide the strategy effect); otherwise the values themselves.
    """
    colours = table - table.loc[BASELINE_NAME] if relative and BASELINE_NAME in table.index else table
    fig, ax = plt.subplots(figsize=(1.1 * table.shape[1] + 3, 0.5 * table.shape[0] + 1.5))
    limit = np.nanmax(np.abs(colours.to_numpy(dtype=float))) if relative else None
    sns.heatmap(
        colours,
        annot=table.to_numpy(dtype=float),
        fmt=fmt,
        ax=ax,
        linewidths=0.5,
        cmap="RdBu" if relative else "viridis",
        center=0 if relative else None,
        vmin=-limit if relative else None,
        vmax=limit if relative else None,
        cbar_kws={"label": f"gain over {BASELINE_NAME}" if relative else table.attrs.get("value", "value")},
    )
    ax.set_ylabel("")
    ax.set_title(title or f"{table.attrs.get('value', 'accuracy')} (%), labels: {table.attrs.get('scenario', '?')}")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_gains(gains: pd.DataFrame | pd.Series, title: str | None = None):
    """Bar chart of each strategy's gain over Random Shuffle.

    ``gains``: :func:`~hils_kit.analyse.paired.gain_intervals` (``gain``, ``low``, ``high``: drawn as error bars where
    present) or a Series such as :func:`~hils_kit.analyse.tables.mean_gain_per_strategy` (no error bars).
    """
    frame = gains.to_frame("gain") if isinstance(gains, pd.Series) else gains
    fig, ax = plt.subplots(figsize=(1.2 * len(frame) + 2, 4))
    x = np.arange(len(frame))
    errors = None
    if {"low", "high"} <= set(frame.columns) and frame[["low", "high"]].notna().all().all():
        errors = np.vstack([frame["gain"] - frame["low"], frame["high"] - frame["gain"]])
    colours = ["tab:blue" if g >= 0 else "tab:red" for g in frame["gain"]]
    ax.bar(x, frame["gain"], yerr=errors, capsize=4, color=colours)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [strategy_name(s) for s in frame.index], rotation=20, ha="right")
    source = frame["interval_from"].iloc[0] if "interval_from" in frame and errors is not None else None
    ax.set_ylabel(f"gain over {BASELINE_NAME} (points)" + (f"; 95% interval from {source}" if source else ""))
    ax.set_title(title or f"Mean gain over {BASELINE_NAME}")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_label_sources(
    human_table: pd.DataFrame,
    llm_table: pd.DataFrame,
    column: str = "Mean",
    strategies=CURRICULUM_STRATEGIES,
    title: str | None = None,
):
    """Grouped bars of the curriculum strategies' gain over Random Shuffle in ``column``, human vs LLM labels
    (the paper's Figure 2b)."""
    names = [strategy_name(s) for s in strategies]
    data = pd.concat(
        [
            gains_over_random(table)
            .loc[names, column]
            .rename("gain")
            .rename_axis("strategy")
            .reset_index()
            .assign(labels=labels)
            for labels, table in (("human", human_table), ("LLM", llm_table))
        ]
    )
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.barplot(data=data, x="strategy", y="gain", hue="labels", errorbar=None, ax=ax)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("")
    ax.set_ylabel(f"gain over {BASELINE_NAME} (points)")
    ax.set_title(title or f"Difficulty labels: human vs LLM ({column})")
    fig.tight_layout()
    plt.close(fig)
    return fig
