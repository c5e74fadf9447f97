"""Per-question learning and forgetting: what an order does to each training question on the way.

A cell's probe (:class:`hils_kit.train.probe.ProbeCallback`) scores a fixed sample of its training questions at
every checkpoint and writes ``trajectories.csv``. Here, after Toneva et al. (2019, *An empirical study of example
forgetting during deep neural network learning*), a **learning event** is a question going from wrong to right
between two consecutive scorings and a **forgetting event** one going from right to wrong. Per cell:

- ``learning_events``, ``forgetting_events``: per probe question, and ``ever_forgotten``: the share with one;
- ``early_retention_drop``: for the questions fed in the first third of training, the gold log-prob at the first
  scoring after they were fed minus the one at the end (positive: forgotten since; blocked orders are expected to
  lose their early blocks more than interleaved ones); ``late_retention_drop`` for the last third;
- ``easy_first_r``: Spearman's rank correlation of the questions' difficulty labels with the step at which each
  was first right (positive: the questions labelled easy were learned first), None without labels.

>>> t = pd.DataFrame({"question": ["a"] * 3 + ["b"] * 3, "set": "train", "step": [0, 1, 2] * 2,
...                   "gold_logprob": [-2, -1, -2, -2, -1, -0.5], "correct": [0, 1, 0, 0, 1, 1], "difficulty": 0.5})
>>> question_events(t)[["learning_events", "forgetting_events", "first_right_step"]].to_dict("list")
{'learning_events': [1, 1], 'forgetting_events': [1, 0], 'first_right_step': [1.0, 1.0]}
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from hils_kit.core.layout import CellFiles, TrainFiles
from hils_kit.order.registry import strategy_name


def question_events(trajectories: pd.DataFrame) -> pd.DataFrame:
    """Per training probe question: its learning and forgetting events, the first step it was right (NaN: never),
    whether it ended right, and its difficulty label."""
    t = trajectories[trajectories["set"] == "train"].sort_values(["question", "step"])
    right = t["correct"].astype(bool)
    before = right.groupby(t["question"]).shift()
    t = t.assign(
        learned=(before == False) & right,  # noqa: E712 (NaN before the first scoring is neither)
        forgot=(before == True) & ~right,  # noqa: E712
        right_step=t["step"].where(right),
    )
    return t.groupby("question").agg(
        learning_events=("learned", "sum"),
        forgetting_events=("forgot", "sum"),
        first_right_step=("right_step", "min"),
        final_right=("correct", "last"),
        difficulty=("difficulty", "first"),
    )


def retention(trajectories: pd.DataFrame, fed: pd.DataFrame) -> pd.DataFrame:
    """Per training probe question fed during training: the step it was first fed, its gold log-prob at the first
    scoring at or after that step and at the end, and the ``drop`` between them."""
    t = trajectories[trajectories["set"] == "train"]
    first_fed = fed.dropna(subset=["id"]).groupby(fed["id"].astype(str))["step"].min()
    final = t[t["step"] == t["step"].max()].set_index("question")["gold_logprob"]
    rows = []
    for question, scores in t.groupby("question"):
        if question not in first_fed:
            continue
        after = scores[scores["step"] >= first_fed[question]].sort_values("step")
        if after.empty:
            continue
        rows.append((question, first_fed[question], after["gold_logprob"].iloc[0], final[question]))
    out = pd.DataFrame(rows, columns=["question", "fed_step", "after_fed", "final"]).set_index("question")
    return out.assign(drop=out["after_fed"] - out["final"])


def cell_forgetting(trajectories: pd.DataFrame, fed: pd.DataFrame) -> dict:
    """The per-cell figures of the module docstring."""
    events = question_events(trajectories)
    kept = retention(trajectories, fed)
    last_step = max(int(trajectories["step"].max()), 1)
    early = kept[kept["fed_step"] <= last_step / 3]
    late = kept[kept["fed_step"] > 2 * last_step / 3]
    learned = events.dropna(subset=["first_right_step", "difficulty"])
    r = None
    if len(learned) >= 3 and learned["difficulty"].nunique() > 1 and learned["first_right_step"].nunique() > 1:
        r = float(stats.spearmanr(learned["difficulty"], learned["first_right_step"]).statistic)
    return {
        "questions": len(events),
        "learning_events": float(events["learning_events"].mean()) if len(events) else np.nan,
        "forgetting_events": float(events["forgetting_events"].mean()) if len(events) else np.nan,
        "ever_forgotten": float((events["forgetting_events"] > 0).mean()) if len(events) else np.nan,
        "early_retention_drop": float(early["drop"].mean()) if len(early) else np.nan,
        "late_retention_drop": float(late["drop"].mean()) if len(late) else np.nan,
        "easy_first_r": r,
    }


def study_forgetting(long: pd.DataFrame) -> pd.DataFrame:
    """One row per trained cell with a training probe: its strategy's display name and :func:`cell_forgetting`."""
    cells = long[long.get("level", "cell") == "cell"].drop_duplicates("cell_id")
    rows = []
    for _, cell in cells.iterrows():
        train_dir = CellFiles(cell["cell_dir"]).train_dir
        files = TrainFiles(train_dir)
        if not files.trajectories.is_file() or not files.order_fed.is_file():
            continue
        trajectories = pd.read_csv(files.trajectories, dtype={"question": str})
        if not (trajectories["set"] == "train").any():
            continue
        fed = pd.read_csv(files.order_fed, dtype={"id": str})
        rows.append(
            {
                "cell_id": cell["cell_id"],
                "strategy": strategy_name(cell["strategy"]),
                **cell_forgetting(trajectories, fed),
            }
        )
    return pd.DataFrame(rows)


def forgetting_by_strategy(per_cell: pd.DataFrame) -> pd.DataFrame:
    """The mean of each figure over a strategy's cells, with the number of cells."""
    figures = per_cell.drop(columns=["cell_id", "strategy"]).apply(pd.to_numeric, errors="coerce")
    table = figures.groupby(per_cell["strategy"], sort=False).mean()
    return table.assign(cells=per_cell.groupby("strategy", sort=False).size()).rename_axis("strategy")


def plot_forgetting(table: pd.DataFrame, title: str = ""):
    """Forgetting events per probe question, and the early-fed questions' retention drop, per strategy."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.5 + 0.35 * len(table)), sharey=True)
    names = list(table.index)
    axes[0].barh(names, table["forgetting_events"], color="tab:red")
    axes[0].set(xlabel="forgetting events per question", title=title)
    axes[1].barh(names, table["early_retention_drop"], color="tab:purple")
    axes[1].set(xlabel="early-fed questions: gold log-prob lost by the end")
    axes[0].invert_yaxis()
    fig.tight_layout()
    plt.close(fig)
    return fig
