"""Collecting a study run: every cell's ``results.json`` as a long frame (k-fold cells pooled), the cells of a
scenario, cell means, and the per-question predictions behind them.

>>> long = collect_results("runs/pilot")                                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hils_kit.analyse.results import CellResults, read_manifest
from hils_kit.core.layout import MANIFEST, CellFiles, cells_dir
from hils_kit.labels.scenarios import scenario_of
from hils_kit.order.registry import (
    labels_used,
    strategy_name,
)
from hils_kit.score.metrics import summarize

log = logging.getLogger(__name__)

POOLED_PART = "cv"  # the part of a k-fold figure pooled over its folds
CELL_SEEDS = ("order_seed", "train_seed")  # a run's seeds (cell parameters), shared by the folds of a pooled row


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
        row["predictions"] = (str(CellFiles(path.parent).predictions(dataset)),)
        row["level"] = "cell"
        rows.append(row)
    return rows


def collect_results(run_dir: str | Path) -> pd.DataFrame:
    """One row per (cell, test set) of a study run: the cell's fields (``order_seed`` and ``train_seed`` among
    them, to split the run-to-run spread into its order and initialisation parts), ``dataset``, its metrics, the
    training summary ``train_*``, ``cell_dir``, ``predictions`` (the per-question files behind the row) and
    ``level``.

    ``run_dir`` is the study run folder (with ``cells/``) or its ``cells/`` folder. A confidence interval
    ``accuracy_ci: [lo, hi]`` becomes ``accuracy_ci_low`` / ``accuracy_ci_high``. Cells that have no
    ``results.json`` yet are logged and listed in ``frame.attrs["missing_cells"]``; a malformed one is an error.
    k-fold cells are pooled by :func:`pool_folds`: their rows stay (``level == "fold"``) beside the pooled ones.
    """
    run_dir = Path(run_dir)
    cells = cells_dir(run_dir)
    if not cells.is_dir():
        raise FileNotFoundError(f"no study run folder at {run_dir}")
    rows, missing = [], []
    manifest = cells.parent / MANIFEST
    if manifest.is_file():
        # the runner's list of this study's cells: folders left by an older study definition, and
        # failed cells that wrote results before failing, do not count
        status = {c["cell_id"]: c["status"] for c in read_manifest(manifest, required=("cells",))["cells"]}
        folders = [cells / cell for cell in sorted(status)]
    else:
        status = {}
        # folders starting with "." are atomic writes in progress, not cells
        folders = sorted(p for p in cells.iterdir() if p.is_dir() and not p.name.startswith("."))
    for cell_dir in folders:
        path = CellFiles(cell_dir).results
        if path.is_file() and status.get(cell_dir.name, "done") == "done":
            rows.extend(_result_rows(path))
        else:
            missing.append(cell_dir.name)
    if missing:
        log.warning("%d cell(s) in %s have no results.json: %s", len(missing), cells, ", ".join(missing))
    if not rows:
        raise FileNotFoundError(f"no results.json in any cell folder under {cells}")
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
            if (k in CELL_SEEDS or not k.startswith("train_"))
            and k not in metrics
            and not k.startswith(tuple(f"{m}_ci_" for m in metrics))
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
