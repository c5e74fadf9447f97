"""Paired comparisons: each strategy against Random Shuffle over cells (:func:`compare_to_random`) and over
questions with Holm's correction (:func:`question_tests`), LLM- against human-defined difficulty, gain intervals,
and what a study could detect (:func:`power_analysis`). Each result names in ``paired_over`` what was paired.

>>> tests = question_tests(collect_results("runs/pilot"), "llm")             # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hils_kit.analyse.collect import _select_variant, cell_means, question_frame, scenario_cells
from hils_kit.order.registry import (
    BASELINE_NAME,
    CURRICULUM_STRATEGIES,
    paper_order,
    strategy_key,
    strategy_name,
)
from hils_kit.stats.power import power_table
from hils_kit.stats.significance import (
    add_holm,
    mcnemar_exact,
    replicate_bootstrap_difference,
    sign_flip_test,
)

log = logging.getLogger(__name__)


def _paired_tests(comparison: str, paired_over: str, a: np.ndarray, b: np.ndarray) -> list[dict]:
    """Paired t-test and Wilcoxon signed-rank of ``a - b``: one tidy row each.

    NaN where a test is undefined: fewer than 2 pairs, or (t-test) differences that do not vary; Wilcoxon on
    differences that are all zero gives p = 1.
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    t = w = None
    if len(diff) >= 2:
        constant = np.allclose(diff, diff[0], rtol=0, atol=1e-9)
        t = None if constant else stats.ttest_rel(a, b)[:2]
        w = (0.0, 1.0) if constant and abs(diff[0]) <= 1e-9 else stats.wilcoxon(diff)[:2]
    return [
        {
            "comparison": comparison,
            "test": test,
            "paired_over": paired_over,
            "n_pairs": len(diff),
            "mean_diff": float(diff.mean()) if len(diff) else np.nan,
            "statistic": float(result[0]) if result else np.nan,
            "p_value": float(result[1]) if result else np.nan,
        }
        for test, result in (("paired t-test", t), ("Wilcoxon signed-rank", w))
    ]


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
) -> pd.DataFrame:
    """Paired tests of each strategy against Random Shuffle in one scenario (``mean_diff`` in ``scale`` units).

    The pairs are the ``pair_on`` cells: model × test set by default (replicates averaged first, as in the table);
    add ``"replicate"`` to pair run r of a strategy with run r of Random Shuffle. ``strategies``: keys or names,
    ``None`` for all, ``"best"`` for the one with the highest mean.
    """
    keys = list(pair_on)
    means = cell_means(long, scenario, value, scale, variant, by=keys)
    if BASELINE_NAME not in set(means["strategy"]):
        raise ValueError(f"scenario '{scenario}' has no Random Shuffle cells to compare with")
    if isinstance(strategies, str) and strategies != "best":
        strategies = [strategies]
    if strategies == "best":
        strategies = [means[means["strategy"] != BASELINE_NAME].groupby("strategy")[value].mean().idxmax()]
    names = [strategy_name(s) for s in (strategies or paper_order(means["strategy"]))]
    rows = []
    for name in names:
        if name == BASELINE_NAME:
            continue
        if name not in set(means["strategy"]):
            raise ValueError(f"scenario '{scenario}' has no cells of strategy '{name}'")
        a, b = _pairs(means, name, BASELINE_NAME, keys, value)
        rows += _paired_tests(f"{name} − {BASELINE_NAME} ({scenario})", _paired_over(keys), a, b)
    return pd.DataFrame(rows)


def compare_label_sources(
    long: pd.DataFrame,
    human: str = "human",
    llm: str = "llm",
    strategies: Sequence[str] = CURRICULUM_STRATEGIES,
    value: str = "accuracy",
    scale: float = 100,
    pair_on: Sequence[str] = ("model", "dataset"),
    variant: str | None = None,
) -> pd.DataFrame:
    """Paired tests of LLM-label against human-label cells, per curriculum strategy (the paper's 10% tests)."""
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
        rows += _paired_tests(f"{name}: {llm} − {human} labels", _paired_over(keys), a, b)
    return pd.DataFrame(rows)


def question_tests(
    long: pd.DataFrame, scenario: str, baseline: str = "random", variant: str | None = None, scale: float = 100
) -> pd.DataFrame:
    """Each strategy against ``baseline`` on the same test questions, per model x test set, Holm-corrected.

    Per comparison and metric (accuracy, and gold log-prob where the predictions have it): the difference
    (accuracy in ``scale`` units, log-prob in nats), a 95 % bootstrap interval over questions and replicates,
    and a paired test over the questions (replicates averaged first; run r of one strategy shares the
    training seed with run r of the other): exact McNemar when there is one replicate and the metric is
    accuracy, else a sign-flip permutation test. Holm's correction runs across the strategies of the table
    (one family per metric); ``paired_over`` names the pairing unit of every row.
    """
    frame = question_frame(long, scenario, variant)
    metrics = [m for m in ("correct", "gold_logprob") if m in frame and frame[m].notna().all()]
    out = []
    for (model, dataset), group in frame.groupby(["model", "dataset"], sort=False):
        wide = {
            name: group[group["strategy"] == name].pivot_table(index="id", columns="replicate", values=metrics)
            for name in group["strategy"].unique()
        }
        if baseline not in wide:
            continue
        base = wide[baseline]
        for name in paper_order(strategy_name(k) for k in wide):
            key = strategy_key(name)
            if key == baseline:
                continue
            mine = wide[key]
            questions = mine.index.intersection(base.index)
            if len(questions) < len(mine.index) or len(questions) < len(base.index):
                raise ValueError(
                    f"{name} and {strategy_name(baseline)} were not scored on the same questions of {dataset} ({model})"
                )
            for metric in metrics:
                a, b = mine.loc[questions, metric].to_numpy(), base.loc[questions, metric].to_numpy()
                unit = "accuracy points" if metric == "correct" else "nats"
                factor = scale if metric == "correct" else 1.0
                if metric == "correct" and a.shape[1] == b.shape[1] == 1:
                    test = mcnemar_exact(a[:, 0], b[:, 0], paired_over=f"questions of {dataset}")
                else:
                    test = sign_flip_test(
                        a.mean(axis=1), b.mean(axis=1), paired_over=f"questions of {dataset} (replicates averaged)"
                    )
                interval = replicate_bootstrap_difference(a, b)
                out.append(
                    {
                        "comparison": f"{name} − {strategy_name(baseline)} ({scenario})",
                        "model": model,
                        "dataset": dataset,
                        "metric": "accuracy" if metric == "correct" else "gold log-prob",
                        "unit": unit,
                        "difference": interval["difference"] * factor,
                        "ci_low": interval["ci"][0] * factor,
                        "ci_high": interval["ci"][1] * factor,
                        "replicates": f"{a.shape[1]} vs {b.shape[1]}",
                        "n_questions": len(questions),
                        "test": test["test"],
                        "paired_over": test["paired_over"],
                        "p_value": test["p_value"],
                    }
                )
    if not out:
        raise ValueError(
            f"scenario '{scenario}' has no model × test set with both a strategy and '{strategy_name(baseline)}'"
        )
    return add_holm(pd.DataFrame(out), by=["metric"])


def power_analysis(
    long: pd.DataFrame, scenario: str, baseline: str = "random", variant: str | None = None
) -> pd.DataFrame:
    """What the study could have detected: per model x test set, the minimal detectable difference against
    ``baseline`` at 80 % power and α 0.05 (accuracy points and gold log-prob nats) and the questions x replicates
    needed to detect one accuracy point (:func:`hils_kit.stats.power.power_table`)."""
    frame = question_frame(long, scenario, variant)
    gold = "gold_logprob" if "gold_logprob" in frame and frame["gold_logprob"].notna().all() else None
    return power_table(frame, baseline, by=("model", "dataset"), gold_logprob=gold).assign(scenario=scenario)


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
