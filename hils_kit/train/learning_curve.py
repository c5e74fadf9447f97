"""Learning curves: what an order does during training, which the paper never shows.

A cell's :class:`hils_kit.train.probe.ProbeCallback` scores held-out questions during training and writes
``learning_curve.csv`` into the run folder; this module plots one cell's loss and curve, and reads and plots the
curves of a whole study per strategy (the report's learning-curve section). It needs no model libraries.

>>> read_curves({"a cell without a curve": "/nonexistent"}).empty
True
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from hils_kit.core.layout import CellFiles


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
    files = {cell: CellFiles(folder).curve for cell, folder in cell_dirs.items() if folder}
    frames = [pd.read_csv(path).assign(cell_id=cell) for cell, path in files.items() if path.is_file()]
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
