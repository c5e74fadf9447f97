"""Study analysis: a run's results as the paper's Table 1, gains over Random Shuffle, win counts, paired tests.

A study run folder holds one folder per experiment cell, ``<run>/cells/<cell_id>/results.json`` (one model ×
strategy × label scenario × replicate, scored on several test sets), with ``predictions_<dataset>.csv`` beside it.

- :func:`collect_results` reads them into a long frame: one row per cell and test set.
- :func:`strategy_table` averages that frame into the paper's layout (Table 1a/1b): one row per strategy; a column
  per model (mean over test sets), per test set (mean over models), and ``Mean`` (over every model × test set cell).
- :func:`accuracy_spread` gives each strategy's accuracy per model × test set with an interval and the spread
  between its runs: all that a study of one strategy can report.
- :func:`gains_over_random`, :func:`best_gains`, :func:`mean_gain_per_strategy`, :func:`win_counts` and
  :func:`label_source_deltas` work on such a table, so the paper's published marginals can be fed in directly.
- :func:`~hils_kit.analyse.comparisons.compare_strategies` tests each strategy against Random Shuffle with the
  training run as the unit and says what the study could detect; :func:`~hils_kit.analyse.paired.compare_to_random`
  and :func:`~hils_kit.analyse.paired.compare_label_sources` are paired t-tests over cells that describe them,
  each saying in its ``paired_over`` column what was paired (the paper does not).

Label scenarios are named ``<difficulty source>[_clusters]`` ("human", "llm", "llm_clusters") or "none". A cell is
shared by every scenario that agrees on the labels its strategy uses: Random Shuffle uses none, so one set of Random
Shuffle cells appears in every table; Blocked and Interleaved use only the categories, so they are shared between
"human" and "llm" but not with "llm_clusters" (as in the paper's Tables 1a, 1b and 3).

>>> table = pd.DataFrame({"tiny": [20.40, 21.74], "medqa": [32.40, 32.99]}, index=["Random Shuffle", "Interleaved"])
>>> gains_over_random(table).round(2).loc["Interleaved"].tolist()
[1.34, 0.59]
>>> long = collect_results("runs/pilot")                                    # doctest: +SKIP
>>> strategy_table(long, "llm").round(2)                                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from hils_kit.analyse.collect import _select_variant, cell_means, question_frame, scenario_cells
from hils_kit.order.registry import (
    BASELINE_NAME,
    CURRICULUM_STRATEGIES,
    paper_order,
    strategy_name,
)
from hils_kit.stats.significance import (
    replicate_bootstrap_mean,
)

log = logging.getLogger(__name__)


def strategy_table(
    long: pd.DataFrame, scenario: str, value: str = "accuracy", scale: float = 100, variant: str | None = None
) -> pd.DataFrame:
    """The paper's Table 1 layout for one label scenario: strategies × (models, test sets, ``Mean``).

    Each model × test set cell is first averaged over its replicates; a model column is the mean over test sets, a
    test set column the mean over models, and ``Mean`` the mean over all cells. Rows follow the paper's order, then
    extra strategies. ``table.attrs`` records ``models``, ``datasets``, ``scenario`` and ``value``.
    """
    cells = cell_means(long, scenario, value, scale, variant)
    models, datasets = list(cells["model"].unique()), list(cells["dataset"].unique())
    if set(models) & set(datasets):
        raise ValueError(f"a model and a test set share a name: {sorted(set(models) & set(datasets))}")
    wide = cells.pivot(index="strategy", columns=["model", "dataset"], values=value)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([models, datasets], names=["model", "dataset"]))
    gaps = [f"{s} / {m} / {d}" for s in wide.index for (m, d), v in wide.loc[s].items() if pd.isna(v)]
    if gaps:
        log.warning("scenario %s has no result for: %s", scenario, "; ".join(gaps))
    table = pd.concat(
        [
            wide.T.groupby(level="model", sort=False).mean().T[models],
            wide.T.groupby(level="dataset", sort=False).mean().T[datasets],
            wide.mean(axis=1).rename("Mean"),
        ],
        axis=1,
    )
    table = table.reindex(paper_order(table.index))
    table.index.name, table.columns.name = "strategy", None
    table.attrs = {"scenario": scenario, "value": value, "models": models, "datasets": datasets}
    return table


def gains_over_random(table: pd.DataFrame, baseline: str = BASELINE_NAME) -> pd.DataFrame:
    """Every strategy minus the baseline row, per column (percentage points for a table in %)."""
    if baseline not in table.index:
        raise ValueError(f"the table has no '{baseline}' row (rows: {', '.join(map(str, table.index))})")
    gains = table.drop(index=baseline) - table.loc[baseline]
    gains.attrs = dict(table.attrs)
    return gains


def mean_gain_per_strategy(table: pd.DataFrame, column: str = "Mean", baseline: str = BASELINE_NAME) -> pd.Series:
    """Each strategy's ``column`` minus the baseline's: its gain averaged over all cells (the paper's Figure 3)."""
    if column not in table.columns:
        raise ValueError(f"the table has no '{column}' column")
    return gains_over_random(table, baseline)[column].rename("mean gain")


class BestGains(NamedTuple):
    """:func:`best_gains`: ``per_column`` (group, best, gain) and ``summary`` (max, mean, where the max is)."""

    per_column: pd.DataFrame
    summary: pd.DataFrame


def _column_names(table: pd.DataFrame, names, attr: str) -> list[str]:
    names = list(table.attrs.get(attr, []) if names is None else names)
    unknown = [n for n in names if n not in table.columns]
    if unknown:
        raise ValueError(f"no column(s) {unknown} in the table (columns: {', '.join(map(str, table.columns))})")
    return names


def best_gains(
    table: pd.DataFrame,
    models: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    baseline: str = BASELINE_NAME,
) -> BestGains:
    """Per model and per test set column, the best strategy and its gain over the baseline; then the max and mean
    of those best gains across models and across test sets (the paper's Figure 2a: 1.44 / 0.94, 1.81 / ...).

    ``models`` and ``datasets`` name the columns (default: ``table.attrs`` from :func:`strategy_table`). Strategies
    tied for best are joined with " / ". The best may be below the baseline: then the gain is negative.
    """
    models, datasets = _column_names(table, models, "models"), _column_names(table, datasets, "datasets")
    if not models and not datasets:
        raise ValueError("name the model and test set columns (models=..., datasets=...)")
    gains = gains_over_random(table, baseline)
    per_column = []
    for group, columns in (("model", models), ("dataset", datasets)):
        for column in columns:
            gain = gains[column].max()
            tied = gains.index[np.isclose(gains[column], gain, rtol=0, atol=1e-9)]
            per_column.append({"column": column, "group": group, "best": " / ".join(tied), "gain": gain})
    per_column = pd.DataFrame(per_column).set_index("column")
    summary = {}
    for group, rows in per_column.groupby("group", sort=False):
        top = rows["gain"].idxmax()
        summary[group] = {
            "max": rows["gain"].max(),
            "mean": rows["gain"].mean(),
            "max_column": top,
            "max_best": rows.loc[top, "best"],
            "n_columns": len(rows),
        }
    return BestGains(per_column, pd.DataFrame.from_dict(summary, orient="index"))


def win_counts(tables: Sequence[pd.DataFrame], exclude: Sequence[str] = ("Mean",)) -> pd.DataFrame:
    """How often each strategy is the best in a column, over every column of every table except ``exclude``.

    A tie shares the win equally. Returns ``wins`` and ``share`` (of all columns counted) per strategy, paper order.
    """
    wins: dict[str, float] = {}
    n_columns = 0
    for table in tables:
        for column in table.columns.drop(list(exclude), errors="ignore"):
            values = table[column].astype(float)
            if values.isna().all():
                continue
            tied = values.index[np.isclose(values, values.max(), rtol=0, atol=1e-9)]
            for name in tied:
                wins[name] = wins.get(name, 0) + 1 / len(tied)
            n_columns += 1
    names = paper_order(name for table in tables for name in table.index)
    counts = pd.Series(wins, dtype=float).reindex(names, fill_value=0.0)
    return pd.DataFrame({"wins": counts, "share": counts / max(n_columns, 1)})


def label_source_deltas(
    human_table: pd.DataFrame, llm_table: pd.DataFrame, strategies: Sequence[str] = CURRICULUM_STRATEGIES
) -> pd.DataFrame:
    """LLM-label minus human-label score per column for the curriculum strategies (the paper's §3 / Figure 2b)."""
    names = [strategy_name(s) for s in strategies]
    for label, table in (("human", human_table), ("LLM", llm_table)):
        lacking = [n for n in names if n not in table.index]
        if lacking:
            raise ValueError(f"the {label} table has no row(s) {lacking}")
    return llm_table.loc[names] - human_table.loc[names]


def accuracy_spread(
    long: pd.DataFrame, scenario: str, variant: str | None = None, scale: float = 100, level: float = 0.95
) -> pd.DataFrame:
    """Per strategy × model × test set of ``scenario``: its ``runs``, their mean ``accuracy`` (× ``scale``) with a
    ``level`` interval (``ci_low``, ``ci_high``: questions and runs resampled, as
    :func:`~hils_kit.stats.significance.replicate_bootstrap_mean` does), the spread between the runs (``run_sd``, NaN for
    one run; ``run_min``, ``run_max``) and ``n_questions``. It needs no second strategy.
    """
    rows = _select_variant(scenario_cells(long, scenario), variant)
    rows = rows.assign(accuracy=rows["accuracy"].astype(float) * scale)
    keys = ["strategy", "model", "dataset"]
    runs = rows.groupby(keys, sort=False)["accuracy"].agg(
        runs="size", accuracy="mean", run_sd="std", run_min="min", run_max="max"
    )
    frame = question_frame(long, scenario, variant)
    for (strategy, model, dataset), group in frame.groupby(keys, sort=False):
        correct = group.pivot_table(index="id", columns="replicate", values="correct")
        interval = replicate_bootstrap_mean(correct.to_numpy(), level=level)
        runs.loc[(strategy, model, dataset), ["ci_low", "ci_high"]] = [v * scale for v in interval["ci"]]
        runs.loc[(strategy, model, dataset), "n_questions"] = interval["n"]
    runs = runs.reset_index()
    runs["strategy"] = runs["strategy"].map(strategy_name)
    order = {name: i for i, name in enumerate(paper_order(runs["strategy"]))}
    runs = runs.sort_values("strategy", key=lambda names: names.map(order), kind="stable")
    columns = ["runs", "accuracy", "ci_low", "ci_high", "run_sd", "run_min", "run_max", "n_questions"]
    return runs.set_index(keys)[columns].astype({"n_questions": int})
