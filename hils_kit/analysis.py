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
- :func:`compare_to_random` and :func:`compare_label_sources` (over cells) and :func:`question_tests` (over the
  questions, Holm-corrected) are the paired tests, :func:`power_analysis` what a study could detect; each
  says in its ``paired_over`` column what was paired (the paper does not).

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

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from hils_kit.contract import BASELINE as BASELINE_KEY
from hils_kit.contract import (
    CURRICULUM_STRATEGIES,
    STRATEGY,
    CellResults,
    labels_used,
    predictions_file,
    scenario_of,
    strategy_key,
    strategy_name,
)
from hils_kit.metrics import summarize
from hils_kit.power import power_table
from hils_kit.significance import (
    add_holm,
    mcnemar_exact,
    replicate_bootstrap_difference,
    replicate_bootstrap_mean,
    sign_flip_test,
)

log = logging.getLogger(__name__)

BASELINE = strategy_name(BASELINE_KEY)  # tables and tests use display names
POOLED_PART = "cv"  # the part of a k-fold figure pooled over its folds


def _paper_order(names) -> list[str]:
    """Display names in the paper's row order, then any others in order of appearance."""
    names = list(dict.fromkeys(names))
    known = [s.name for s in STRATEGY.values() if s.name in names]
    return known + [n for n in names if n not in known]


# -- collecting ------------------------------------------------------------------------------------------------------


def _result_rows(path: Path) -> list[dict]:
    """The rows (one per test set) of one cell's ``results.json`` (checked by :class:`CellResults`)."""
    results = CellResults.read(path)
    rows = []
    for dataset, scores in results.metrics.items():
        measured = {"dataset": dataset}
        for name, value in scores.items():
            if name.endswith("_ci") and isinstance(value, (list, tuple)) and len(value) == 2:
                measured[f"{name}_low"], measured[f"{name}_high"] = value
            else:
                measured[name] = value
        row = {
            (f"cell_{k}" if k in measured or k in ("cell_dir", "predictions", "level", "overlap_dropped") else k): v
            for k, v in results.cell.items()
        }
        row.update(measured)
        row.update({f"train_{k}": v for k, v in results.train.items()})
        row["overlap_dropped"] = results.test_overlap_dropped.get(dataset)
        row["cell_dir"] = str(path.parent)
        row["predictions"] = (str(predictions_file(path.parent, dataset)),)
        row["level"] = "cell"
        rows.append(row)
    return rows


def collect_results(run_dir: str | Path) -> pd.DataFrame:
    """One row per (cell, test set) of a study run: the cell's fields, ``dataset``, its metrics, ``train_*``,
    ``cell_dir``, ``predictions`` (the per-question files behind the row) and ``level``.

    ``run_dir`` is the study run folder (with ``cells/``) or its ``cells/`` folder. A confidence interval
    ``accuracy_ci: [lo, hi]`` becomes ``accuracy_ci_low`` / ``accuracy_ci_high``. Cells that have no
    ``results.json`` yet are logged and listed in ``frame.attrs["missing_cells"]``; a malformed one is an error.
    k-fold cells are pooled by :func:`pool_folds`: their rows stay (``level == "fold"``) beside the pooled ones.
    """
    run_dir = Path(run_dir)
    cells_dir = run_dir / "cells" if (run_dir / "cells").is_dir() else run_dir
    if not cells_dir.is_dir():
        raise FileNotFoundError(f"no study run folder at {run_dir}")
    rows, missing = [], []
    manifest = cells_dir.parent / "manifest.json"
    if manifest.is_file():
        # the runner's list of this study's cells: folders left by an older study definition, and
        # failed cells that wrote results before failing, do not count
        status = {c["cell_id"]: c["status"] for c in json.loads(manifest.read_text(encoding="utf-8"))["cells"]}
        folders = [cells_dir / cell for cell in sorted(status)]
    else:
        status = {}
        # folders starting with "." are atomic writes in progress, not cells
        folders = sorted(p for p in cells_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for cell_dir in folders:
        path = cell_dir / "results.json"
        if path.is_file() and status.get(cell_dir.name, "done") == "done":
            rows.extend(_result_rows(path))
        else:
            missing.append(cell_dir.name)
    if missing:
        log.warning("%d cell(s) in %s have no results.json: %s", len(missing), cells_dir, ", ".join(missing))
    if not rows:
        raise FileNotFoundError(f"no results.json in any cell folder under {cells_dir}")
    long = pool_folds(pd.DataFrame(rows))
    long.attrs["missing_cells"] = missing
    return long


def read_predictions(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The per-question predictions behind a row: one file, or the folds of a pooled row concatenated."""
    frames = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no predictions file {path}")
        frames.append(pd.read_csv(path, dtype={"id": str}))
    out = pd.concat(frames, ignore_index=True)
    if out["id"].duplicated().any():
        raise ValueError(
            f"{', '.join(map(str, paths))}: question {out.loc[out['id'].duplicated(), 'id'].iloc[0]!r} "
            "is predicted twice (k-fold test parts must not overlap)"
        )
    return out


def pool_folds(long: pd.DataFrame) -> pd.DataFrame:
    """Add one pooled row per model x strategy x scenario x replicate x test set of a k-fold study.

    As in the paper, a cross-validated figure comes from the per-question predictions of all folds together:
    each question is predicted by the model that did not train on it. The metrics of the pooled row are
    recomputed from those predictions (``part`` = ``"cv"``, ``level`` = ``"pooled"``, ``n_folds``); the fold
    rows stay with ``level`` = ``"fold"`` and are left out of tables and tests. A group that lacks one of
    the study's folds (a failed cell) gets no pooled row, with a warning.
    """
    if "part" not in long:
        return long
    is_fold = long["part"].astype(str).str.fullmatch(r"fold\d+")
    if not is_fold.any():
        return long
    long = long.assign(level=np.where(is_fold, "fold", long["level"]))
    folds = long[is_fold]
    every_fold = set(folds["part"])
    keys = [k for k in ("model", "scenario", "strategy", "variant", "replicate", "dataset") if k in long]
    pooled = []
    for key, group in folds.groupby(keys, sort=False, dropna=False):
        if set(group["part"]) != every_fold or group["part"].duplicated().any():
            log.warning(
                "no pooled k-fold figure for %s: it has folds %s of %s", key, sorted(group["part"]), sorted(every_fold)
            )
            continue
        paths = tuple(p for ps in group.sort_values("part")["predictions"] for p in ps)
        metrics = summarize(read_predictions(paths))
        row = group.iloc[0].to_dict()
        row = {
            k: v
            for k, v in row.items()
            if not k.startswith("train_") and k not in metrics and not k.startswith(tuple(f"{m}_ci_" for m in metrics))
        }
        for name, value in metrics.items():
            if name.endswith("_ci"):
                row[f"{name}_low"], row[f"{name}_high"] = value
            else:
                row[name] = value
        row.update(
            part=POOLED_PART,
            level="pooled",
            predictions=paths,
            n_folds=len(group),
            cell_id=str(row["cell_id"]).replace(f"__{group.iloc[0]['part']}__", f"__{POOLED_PART}__"),
            fold_cells=";".join(group["cell_id"]),
            cell_dir="",
        )
        pooled.append(row)
    # pooled rows first: the own test set leads the columns of a table, as in the paper (LEK, MedMCQA, MedQA)
    return pd.concat([pd.DataFrame(pooled), long], ignore_index=True) if pooled else long


# -- one scenario's cells ----------------------------------------------------------------------------------------------


def scenario_cells(long: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """The rows of ``long`` that make up ``scenario``'s table.

    A strategy's own cells in ``scenario`` if it has any; otherwise its cells from one scenario that supplies the same
    labels for what the strategy uses ("none" preferred, then by name). ``source_scenario`` keeps where a row came
    from; ``scenario`` is set to the table's.
    """
    parts = []
    if "level" in long:
        long = long[long["level"] != "fold"]  # a k-fold study is analysed through its pooled rows
    target = scenario_of(scenario)
    for strategy, rows in long.groupby("strategy", sort=False):
        chosen = rows[rows["scenario"] == scenario]
        if chosen.empty:
            sources = sorted(rows["scenario"].unique(), key=lambda s: (s != "none", s))
            sources = [
                s
                for s in sources
                if all(getattr(scenario_of(s), label) == getattr(target, label) for label in labels_used(strategy, s))
            ]
            chosen = rows[rows["scenario"] == sources[0]] if sources else chosen
        if not chosen.empty:
            parts.append(chosen.assign(source_scenario=chosen["scenario"], scenario=scenario))
    if not parts:
        raise ValueError(
            f"no cells for scenario '{scenario}' (the results have: {', '.join(map(str, long['scenario'].unique()))})"
        )
    return pd.concat(parts, ignore_index=True)


def _select_variant(rows: pd.DataFrame, variant: str | None) -> pd.DataFrame:
    """Keep ``variant``'s cells of each strategy that has any; ``None`` keeps all (the paper averaged its variants)."""
    if variant is None or "variant" not in rows:
        return rows
    has = rows["variant"].eq(variant).groupby(rows["strategy"]).transform("any")
    return rows[rows["variant"].eq(variant) | ~has]


def cell_means(
    long: pd.DataFrame,
    scenario: str,
    value: str = "accuracy",
    scale: float = 100,
    variant: str | None = None,
    by: Sequence[str] = ("model", "dataset"),
) -> pd.DataFrame:
    """``value`` × ``scale`` per strategy and ``by`` cell of ``scenario``, averaged over replicates (and variants).

    Columns: ``strategy`` (display name), the ``by`` columns, ``value``, ``n_runs``.
    """
    rows = _select_variant(scenario_cells(long, scenario), variant)
    if value not in rows:
        raise KeyError(f"no metric '{value}' in the results (columns: {', '.join(map(str, rows.columns))})")
    lacking = rows[rows[value].isna()]
    if len(lacking):
        raise ValueError(
            f"metric '{value}' is missing for {len(lacking)} row(s), e.g. cell "
            f"{lacking['cell_id'].iloc[0]} on {lacking['dataset'].iloc[0]}"
        )
    rows = rows.assign(strategy=rows["strategy"].map(strategy_name), **{value: rows[value].astype(float) * scale})
    means = rows.groupby(["strategy", *by], sort=False)[value].agg(["mean", "count"]).reset_index()
    return means.rename(columns={"mean": value, "count": "n_runs"})


# -- the table and what is derived from it ---------------------------------------------------------------------------


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
    table = table.reindex(_paper_order(table.index))
    table.index.name, table.columns.name = "strategy", None
    table.attrs = {"scenario": scenario, "value": value, "models": models, "datasets": datasets}
    return table


def gains_over_random(table: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """Every strategy minus the baseline row, per column (percentage points for a table in %)."""
    if baseline not in table.index:
        raise ValueError(f"the table has no '{baseline}' row (rows: {', '.join(map(str, table.index))})")
    gains = table.drop(index=baseline) - table.loc[baseline]
    gains.attrs = dict(table.attrs)
    return gains


def mean_gain_per_strategy(table: pd.DataFrame, column: str = "Mean", baseline: str = BASELINE) -> pd.Series:
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
    baseline: str = BASELINE,
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
    names = _paper_order(name for table in tables for name in table.index)
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


# -- paired tests ----------------------------------------------------------------------------------------------------


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
    if BASELINE not in set(means["strategy"]):
        raise ValueError(f"scenario '{scenario}' has no Random Shuffle cells to compare with")
    if isinstance(strategies, str) and strategies != "best":
        strategies = [strategies]
    if strategies == "best":
        strategies = [means[means["strategy"] != BASELINE].groupby("strategy")[value].mean().idxmax()]
    names = [strategy_name(s) for s in (strategies or _paper_order(means["strategy"]))]
    rows = []
    for name in names:
        if name == BASELINE:
            continue
        if name not in set(means["strategy"]):
            raise ValueError(f"scenario '{scenario}' has no cells of strategy '{name}'")
        a, b = _pairs(means, name, BASELINE, keys, value)
        rows += _paired_tests(f"{name} − {BASELINE} ({scenario})", _paired_over(keys), a, b)
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


def read_correct(paths: str | Path | Sequence[str | Path]) -> pd.Series:
    """Per-question correctness (bool, indexed by ``id``) from ``predictions_<dataset>.csv`` file(s)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    preds = read_predictions(paths)
    where = ", ".join(map(str, paths))
    if "id" not in preds or not ({"correct"} <= set(preds) or {"answer", "pred"} <= set(preds)):
        raise ValueError(f"{where}: needs columns 'id' and 'correct' (or 'answer' and 'pred')")
    if "correct" in preds:
        correct = preds["correct"].map({True: True, False: False, "True": True, "False": False})
        if correct.isna().any():
            raise ValueError(
                f"{where}: column 'correct' must be True/False or 1/0 "
                f"(row {int(correct.isna().to_numpy().argmax()) + 2})"
            )
    else:
        correct = preds["answer"].astype(str) == preds["pred"].astype(str)
    return pd.Series(correct.to_numpy(dtype=bool), index=preds["id"], name="correct")


def question_frame(long: pd.DataFrame, scenario: str, variant: str | None = None) -> pd.DataFrame:
    """Per-question results of a scenario's cells: one row per question x cell x test set, with ``strategy``,
    ``model``, ``dataset``, ``replicate``, ``id``, ``correct`` and ``gold_logprob`` where the predictions have it
    (a pooled k-fold row contributes the questions of all its folds)."""
    rows = _select_variant(scenario_cells(long, scenario), variant)
    frames = []
    for row in rows.itertuples(index=False):
        preds = read_predictions(row.predictions)
        keep = [c for c in ("id", "correct", "gold_logprob") if c in preds]
        frames.append(
            preds[keep].assign(strategy=row.strategy, model=row.model, dataset=row.dataset, replicate=row.replicate)
        )
    out = pd.concat(frames, ignore_index=True)
    out["correct"] = out["correct"].map({True: 1, False: 0, "True": 1, "False": 0}).astype(float)
    return out


def accuracy_spread(
    long: pd.DataFrame, scenario: str, variant: str | None = None, scale: float = 100, level: float = 0.95
) -> pd.DataFrame:
    """Per strategy × model × test set of ``scenario``: its ``runs``, their mean ``accuracy`` (× ``scale``) with a
    ``level`` interval (``ci_low``, ``ci_high``: questions and runs resampled, as
    :func:`~hils_kit.significance.replicate_bootstrap_mean` does), the spread between the runs (``run_sd``, NaN for
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
    order = {name: i for i, name in enumerate(_paper_order(runs["strategy"]))}
    runs = runs.sort_values("strategy", key=lambda names: names.map(order), kind="stable")
    columns = ["runs", "accuracy", "ci_low", "ci_high", "run_sd", "run_min", "run_max", "n_questions"]
    return runs.set_index(keys)[columns].astype({"n_questions": int})


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
        for name in _paper_order(strategy_name(k) for k in wide):
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
    needed to detect one accuracy point (:func:`hils_kit.power.power_table`)."""
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

    The interval reflects run-to-run noise: per cell, the standard error of the replicate mean where a cell has two
    or more replicates, else the half-width of ``<value>_ci`` (the bootstrap interval over questions) / z. Strategy
    and baseline errors are added as if independent, which overstates the error of a difference measured on the
    same questions. ``interval_from`` says which source was used; NaN bounds where there is none.
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
    cells["source"] = np.where(cells["n"] >= 2, "replicates", np.where(cells["ci_se"].notna(), f"{value}_ci", ""))
    base = cells[cells["strategy"] == BASELINE].set_index(["model", "dataset"])
    if base.empty:
        raise ValueError(f"scenario '{scenario}' has no Random Shuffle cells to compare with")
    out = {}
    for name, mine in cells[cells["strategy"] != BASELINE].groupby("strategy", sort=False):
        mine = mine.set_index(["model", "dataset"])
        matched = mine.index.intersection(base.index)
        gain = (mine.loc[matched, "mean"] - base.loc[matched, "mean"]).mean()
        half = z * np.sqrt((mine.loc[matched, "se"] ** 2 + base.loc[matched, "se"] ** 2).sum()) / len(matched)
        sources = set(mine.loc[matched, "source"]) | set(base.loc[matched, "source"])
        out[name] = {
            "gain": gain,
            "low": gain - half,
            "high": gain + half,
            "n_cells": len(matched),
            "interval_from": "+".join(sorted(s for s in sources if s)) if "" not in sources else "none",
        }
    table = pd.DataFrame.from_dict(out, orient="index")
    return table.reindex(_paper_order(table.index))
