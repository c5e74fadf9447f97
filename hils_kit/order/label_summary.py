"""What notebook 02 shows about a study's labels: difficulty distributions and tiers, scoring-model agreement,
clusters against the data's categories, and the table the orderings are drawn from.

Each function takes the training questions merged with their labels (``labels.csv``: ``difficulty_human``,
``difficulty_llm``, ``cluster``) and returns a table or a figure; a label the study does not have gives an
empty result, so the notebook needs no branches.

>>> import pandas as pd
>>> train = pd.DataFrame({"difficulty_llm": [0.1, 0.5, 0.7, 0.9]})
>>> tier_table(train).to_dict()["difficulty_llm · paper"]
{'easy': 2, 'medium': 1, 'hard': 1}
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from hils_kit.core.layout import PrepareFiles
from hils_kit.labels.difficulty import model_agreement
from hils_kit.labels.tiers import HUMAN_THRESHOLDS, LLM_THRESHOLDS, TIERS, tier_names
from hils_kit.order.registry import NEEDS_DIFFICULTY, PAPER_STRATEGIES, STRATEGY

DIFFICULTY_COLUMNS = {"difficulty_human": HUMAN_THRESHOLDS, "difficulty_llm": LLM_THRESHOLDS}


def difficulty_columns(train: pd.DataFrame) -> list[str]:
    """The difficulty label columns present, LLM first (the one the orderings are drawn with)."""
    return [c for c in ("difficulty_llm", "difficulty_human") if c in train]


def plot_difficulty(train: pd.DataFrame):
    """Histogram of each difficulty label (None without one)."""
    columns = difficulty_columns(train)
    if not columns:
        return None
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3), squeeze=False)
    for ax, column in zip(axes[0], columns):
        sns.histplot(train[column], bins=20, ax=ax)
        ax.set(title=column, xlabel="difficulty (higher = harder)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def tier_table(train: pd.DataFrame) -> pd.DataFrame:
    """Questions per tier for each difficulty label, by the paper's cut points and by terciles."""
    counts = {
        f"{c} · {name}": tier_names(train[c], cuts).value_counts()
        for c in difficulty_columns(train)
        for name, cuts in (("paper", DIFFICULTY_COLUMNS[c]), ("terciles", None))
    }
    return pd.DataFrame(counts, index=list(TIERS)).fillna(0).astype(int)


def agreement_tables(prepare_dir: str | Path, train: pd.DataFrame) -> list[pd.DataFrame]:
    """Mean expected accuracy per scoring model, their pairwise correlations (paper: 0.54 on average) and the
    Spearman correlation of human and LLM difficulty, as far as the study has them."""
    tables = []
    llm_file = PrepareFiles(prepare_dir).llm_difficulty
    if llm_file.exists():
        agreement = model_agreement(pd.read_csv(llm_file, dtype={"id": str}))
        tables.append(agreement.mean_accuracy.rename("mean expected accuracy").to_frame().round(3))
        if len(agreement.mean_accuracy) > 1:
            tables.append(agreement.correlation.round(2).assign(mean_pairwise=round(agreement.mean_pairwise, 2)))
    if {"difficulty_human", "difficulty_llm"} <= set(train.columns):
        rho = train["difficulty_human"].corr(train["difficulty_llm"], method="spearman")
        tables.append(pd.DataFrame({"Spearman": [round(rho, 3)]}, index=["human vs LLM difficulty"]))
    return tables


def cluster_tables(train: pd.DataFrame) -> list[pd.DataFrame]:
    """Per cluster its size, top terms and main category, and clusters x categories (empty without clusters)."""
    if "cluster" not in train:
        return []
    from hils_kit.labels.categories import cluster_report

    return [cluster_report(train, train["cluster"].to_numpy()), pd.crosstab(train["category"], train["cluster"])]


def ordering_view(train: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The table the orderings are drawn from (``difficulty`` = the first difficulty label) and the strategies
    it can draw: the paper's six, then those beyond it (adaptive ones as their initial plan), placebos left out;
    without a difficulty label, those that need none."""
    columns = difficulty_columns(train)
    real = list(PAPER_STRATEGIES) + [k for k, s in STRATEGY.items() if not s.in_paper and not s.placebo_of]
    if not columns:
        return train, [s for s in real if s not in NEEDS_DIFFICULTY]
    return train.assign(difficulty=train[columns[0]]), real
