"""Paired comparisons over cells: each strategy against Random Shuffle (:func:`compare_to_random`), LLM- against
human-defined difficulty (:func:`compare_label_sources`), and each strategy's gain with an interval
(:func:`gain_intervals`).

The tests pair the strategies' cells (model × test set by default) and say so in ``paired_over``. Cells of one
trained model are not independent (the same run is scored on several test sets), so these tests describe the
cells; the test with the training run as the unit is :func:`hils_kit.analyse.comparisons.compare_strategies`.

>>> long = pd.DataFrame({"scenario": "none", "strategy": ["random"] * 3 + ["blocked"] * 3, "model": "tiny",
...                      "dataset": ["a", "b", "c"] * 2, "accuracy": [0.30, 0.40, 0.50, 0.32, 0.43, 0.51]})
>>> row = compare_to_random(long, "none").round(3).to_dict("records")[0]
>>> row["comparison"], row["paired_over"], row["n_pairs"], row["mean_diff"], row["p_value"]
('Blocked − Random Shuffle (none)', 'model × dataset cells (mean over replicates)', 3, 2.0, 0.074)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hils_kit.analyse.collect import _select_variant, cell_means, scenario_cells
from hils_kit.order.registry import BASELINE_NAME, CURRICULUM_STRATEGIES, paper_order, strategy_name
from hils_kit.stats.family import adjust_family

log = logging.getLogger(__name__)


def _paired_t_test(comparison: str, paired_over: str, a: np.ndarray, b: np.ndarray) -> dict:
    """The paired t-test of ``a - b`` as one tidy row; NaN statistic and p-value with fewer than 2 pairs or
    differences that do not vary."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    defined = len(diff) >= 2 and not np.allclose(diff, diff[0], rtol=0, atol=1e-9)
    result = stats.ttest_rel(a, b) if defined else None
    return {
        "comparison": comparison,
        "test": "paired t-test",
        "paired_over": paired_over,
        "n_pairs": len(diff),
        "mean_diff": float(diff.mean()) if len(diff) else np.nan,
        "statistic": float(result.statistic) if result else np.nan,
        "p_value": float(result.pvalue) if result else np.nan,
    }


def _pairs(means: pd.DataFrame, a: str, b: str, keys: list[str], value: str) -> tuple[np.ndarray, np.ndarray]:
    """Matched values of strategies ``a`` and ``b`` (display names) on ``keys``; unmatched cells are logged."""
    left = means[means["strategy"] == a].set_index(keys)[value]
    right = means[means["strategy"] == b].set_index(keys)[value]
    both = left.index.intersection(right.index)
    if len(both) < max(len(left), len(right)):
        log.warning(
            "%s vs %s: %d of %d cells have no partner and are left out",
            a,
            b,
            max(len(left), len(right)) - len(both),
            max(len(left), len(right)),
        )
    return left[both].to_numpy(), right[both].to_numpy()


def _paired_over(keys: Sequence[str]) -> str:
    text = " × ".join(keys) + " cells"
    return text if "replicate" in keys else text + " (mean over replicates)"


def compare_to_random(
    long: pd.DataFrame,
    scenario: str,
    strategies: Sequence[str] | str | None = None,
    value: str = "accuracy",
    scale: float = 100,
    pair_on: Sequence[str] = ("model", "dataset"),
    variant: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Each strategy against Random Shuffle in one scenario: a paired t-test over the ``pair_on`` cells, one
    row per strategy (``mean_diff`` in ``scale`` units), Holm and Benjamini–Hochberg across the rows
    (:func:`hils_kit.stats.family.adjust_family` at ``alpha``).

    The pairs are model × test set cells by default (replicates averaged first, as in the table); add
    ``"replicate"`` to pair run r of a strategy with run r of Random Shuffle. The cells are not independent
    (see the module docstring): the tests describe them. ``strategies``: keys or names, ``None`` for all.
    """
    keys = list(pair_on)
    means = cell_means(long, scenario, value, scale, variant, by=keys)
    if BASELINE_NAME not in set(means["strategy"]):
        raise ValueError(f"scenario '{scenario}' has no Random Shuffle cells to compare with")
    strategies = [strategies] if isinstance(strategies, str) else strategies
    if strategies is not None and "best" in strategies:
        raise ValueError(
            "strategies='best' is not offered: a strategy chosen for having the highest mean cannot be tested on "
            "the same numbers (its p-value would ignore the choice); name the strategies to test"
        )
    names = [strategy_name(s) for s in (strategies or paper_order(means["strategy"]))]
    rows = []
    for name in names:
        if name == BASELINE_NAME:
            continue
        if name not in set(means["strategy"]):
            raise ValueError(f"scenario '{scenario}' has no cells of strategy '{name}'")
        a, b = _pairs(means, name, BASELINE_NAME, keys, value)
        rows.append(_paired_t_test(f"{name} − {BASELINE_NAME} ({scenario})", _paired_over(keys), a, b))
    if not rows:
        raise ValueError(f"scenario '{scenario}' has no strategy but {BASELINE_NAME} to compare with it")
    return adjust_family(pd.DataFrame(rows), alpha=alpha)


def compare_label_sources(
    long: pd.DataFrame,
    human: str = "human",
    llm: str = "llm",
    strategies: Sequence[str] = CURRICULUM_STRATEGIES,
    value: str = "accuracy",
    scale: float = 100,
    pair_on: Sequence[str] = ("model", "dataset"),
    variant: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """LLM-label against human-label cells per curriculum strategy (the paper's 10 % tests): a paired t-test
    over the ``pair_on`` cells, one row per strategy, Holm and Benjamini–Hochberg across the rows. The cells
    are not independent (see the module docstring): the tests describe them."""
    keys = list(pair_on)
    means = pd.concat(
        [
            cell_means(long, scenario, value, scale, variant, by=keys).assign(source=scenario)
            for scenario in (human, llm)
        ]
    )
    rows = []
    for name in (strategy_name(s) for s in strategies):
        mine = means[means["strategy"] == name]
        if set(mine["source"]) != {human, llm}:
            raise ValueError(f"strategy '{name}' needs cells in both scenarios '{human}' and '{llm}'")
        a, b = _pairs(mine.assign(strategy=mine["source"]), llm, human, keys, value)
        rows.append(_paired_t_test(f"{name}: {llm} − {human} labels", _paired_over(keys), a, b))
    return adjust_family(pd.DataFrame(rows), alpha=alpha)


def gain_intervals(
    long: pd.DataFrame,
    scenario: str,
    value: str = "accuracy",
    scale: float = 100,
    level: float = 0.95,
    variant: str | None = None,
) -> pd.DataFrame:
    """Each strategy's mean gain over Random Shuffle (the ``Mean`` column difference) with a ``level`` interval.

    The interval reflects run-to-run noise: per cell, the standard error of the replicate mean (n - 1 degrees of
    freedom) where a cell has two or more replicates, else the half-width of ``<value>_ci`` (the bootstrap interval
    over questions) / z, taken as exact (infinite df). The gain's variance is the sum of its cells' and its quantile
    a t quantile with the Welch-Satterthwaite ``df`` of that sum, which is z where every cell came from a
    ``<value>_ci``. Strategy and baseline errors are added as if independent, which overstates the error of a
    difference measured on the same questions. ``interval_from`` says which source was used ("(normal z)" where
    only bootstrap intervals were); NaN bounds where there is none.
    """
    rows = _select_variant(scenario_cells(long, scenario), variant)
    if value not in rows:
        raise KeyError(f"no metric '{value}' in the results")
    z = stats.norm.ppf(0.5 + level / 2)
    rows = rows.assign(strategy=rows["strategy"].map(strategy_name), _v=rows[value].astype(float) * scale)
    low_col, high_col = f"{value}_ci_low", f"{value}_ci_high"
    rows["_ci_se"] = (
        ((rows[high_col] - rows[low_col]) * scale / (2 * z)) if {low_col, high_col} <= set(rows) else np.nan
    )
    cells = (
        rows.groupby(["strategy", "model", "dataset"], sort=False)
        .agg(mean=("_v", "mean"), sd=("_v", "std"), n=("_v", "size"), ci_se=("_ci_se", "mean"))
        .reset_index()
    )
    cells["se"] = np.where(cells["n"] >= 2, cells["sd"] / np.sqrt(cells["n"]), cells["ci_se"])
    cells["df"] = np.where(cells["n"] >= 2, cells["n"] - 1, np.inf)
    cells["source"] = np.where(cells["n"] >= 2, "replicates", np.where(cells["ci_se"].notna(), f"{value}_ci", ""))
    base = cells[cells["strategy"] == BASELINE_NAME].set_index(["model", "dataset"])
    if base.empty:
        raise ValueError(f"scenario '{scenario}' has no Random Shuffle cells to compare with")
    out = {}
    for name, mine in cells[cells["strategy"] != BASELINE_NAME].groupby("strategy", sort=False):
        mine = mine.set_index(["model", "dataset"])
        matched = mine.index.intersection(base.index)
        gain = (mine.loc[matched, "mean"] - base.loc[matched, "mean"]).mean()
        variances = np.r_[mine.loc[matched, "se"], base.loc[matched, "se"]] ** 2
        dfs = np.r_[mine.loc[matched, "df"], base.loc[matched, "df"]]
        total, denominator = variances.sum(), (variances**2 / dfs).sum()
        if np.isnan(total):
            df = np.nan
        elif denominator == 0:  # every variance from a bootstrap interval (or zero)
            df = np.inf
        else:
            df = total**2 / denominator
        half = stats.t.ppf(0.5 + level / 2, df) * np.sqrt(total) / len(matched)
        sources = set(mine.loc[matched, "source"]) | set(base.loc[matched, "source"])
        interval_from = "+".join(sorted(s for s in sources if s)) if "" not in sources else "none"
        out[name] = {
            "gain": gain,
            "low": gain - half,
            "high": gain + half,
            "df": df,
            "n_cells": len(matched),
            "interval_from": interval_from + (" (normal z)" if sources == {f"{value}_ci"} else ""),
        }
    table = pd.DataFrame.from_dict(out, orient="index")
    return table.reindex(paper_order(table.index))
