"""Per-question predictions in one long frame, the input of every strategy comparison: from a study run
(:func:`study_predictions`) or from a CSV file made anywhere (:func:`read_long_predictions`).

One row per test question × training run × test set: ``dataset, strategy, run, question, correct`` and, where
known, ``gold_logprob``, ``brier``, ``answer``, ``model``, ``scenario``, ``order_seed``, ``train_seed``. A run is one
trained model: its id belongs to one strategy (and one model), and it answers each question of a test set once.

>>> frame = read_long_predictions("predictions.csv")                       # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hils_kit.analyse.collect import read_predictions, scenario_cells

REQUIRED = ("dataset", "strategy", "run", "question", "correct")
SCORES = ("gold_logprob", "brier")
LABELS = ("model", "scenario", "answer", "order_seed", "train_seed")
KEYS = ("scenario", "model", "dataset")  # one comparison table per key: the runs answer the same questions


def _shown(value) -> str:
    """A cell's value as a message shows it: 'empty' for a blank, else its text."""
    if pd.isna(value):
        return "empty"
    return repr(value.item() if hasattr(value, "item") else value)


def _where(path, line: int, column: str) -> str:
    return f"{path}, line {line}, column '{column}'"


def check_predictions(frame: pd.DataFrame, path: str | Path = "predictions") -> pd.DataFrame:
    """``frame`` checked and typed as a long predictions frame; ``model`` and ``scenario`` filled in where absent.

    Refused, naming ``path``, the line (the header is line 1) and the column: a missing column, a ``correct``
    that is not 0/1 or True/False, a score that is not a number, a run id under two strategies (or models),
    and a question answered twice by one run on one test set.

    >>> rows = pd.DataFrame({"dataset": "d", "strategy": ["a", "b"], "run": ["r1", "r1"], "question": 1, "correct": 1})
    >>> check_predictions(rows, "x.csv")
    Traceback (most recent call last):
    ValueError: x.csv, line 3, column 'run': run 'r1' is under strategy 'a' (line 2) and strategy 'b'; a run id names one trained model
    """
    lacking = [c for c in REQUIRED if c not in frame]
    if lacking:
        raise ValueError(
            f"{path}, line 1: missing column(s) {', '.join(lacking)} "
            f"(needs {', '.join(REQUIRED)}; optional {', '.join(SCORES + LABELS)})"
        )
    frame = frame.reset_index(drop=True).copy()
    for column in ("model", "scenario"):
        if column not in frame:
            frame[column] = ""
    for column in ("dataset", "strategy", "run", "question", "model", "scenario"):
        blank = frame[column].isna()
        if blank.any():
            raise ValueError(f"{_where(path, int(blank.idxmax()) + 2, column)}: empty")
        frame[column] = frame[column].astype(str)
    # 1 also matches True and 1.0, 0 also False and 0.0
    correct = frame["correct"].map({1: 1, 0: 0, "1": 1, "0": 0, "True": 1, "False": 0, "true": 1, "false": 0})
    if correct.isna().any():
        line = int(correct.isna().idxmax())
        raise ValueError(
            f"{_where(path, line + 2, 'correct')}: {_shown(frame['correct'].iloc[line])} is not 0/1 (or True/False)"
        )
    frame["correct"] = correct.astype(int)
    for column in SCORES:
        if column in frame:
            numbers = pd.to_numeric(frame[column], errors="coerce")
            bad = numbers.isna() | ~np.isfinite(numbers.fillna(0))
            if bad.any():
                line = int(bad.idxmax())
                raise ValueError(
                    f"{_where(path, line + 2, column)}: {_shown(frame[column].iloc[line])} is not a finite number"
                )
            frame[column] = numbers.astype(float)
    for other in ("strategy", "model"):
        owners = frame.drop_duplicates(["run", other])
        clash = owners["run"].duplicated(keep=False)
        if clash.any():
            run = owners.loc[clash, "run"].iloc[0]
            first, second = owners[owners["run"] == run].index[:2]
            raise ValueError(
                f"{_where(path, second + 2, 'run')}: run {run!r} is under {other} {frame[other][first]!r} "
                f"(line {first + 2}) and {other} {frame[other][second]!r}; a run id names one trained model"
            )
    twice = frame.duplicated(["scenario", "dataset", "run", "question"])
    if twice.any():
        line = int(twice.idxmax())
        row = frame.iloc[line]
        first = frame[
            (frame["scenario"] == row["scenario"])
            & (frame["dataset"] == row["dataset"])
            & (frame["run"] == row["run"])
            & (frame["question"] == row["question"])
        ].index[0]
        raise ValueError(
            f"{_where(path, line + 2, 'question')}: question {row['question']!r} of run {row['run']!r} on "
            f"{row['dataset']!r} appears again (first at line {first + 2}); each run answers a question once"
        )
    return frame


def read_long_predictions(path: str | Path) -> pd.DataFrame:
    """A long predictions CSV, checked by :func:`check_predictions`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no predictions file {path}")
    frame = pd.read_csv(
        path,
        dtype={"run": str, "question": str, "dataset": str, "strategy": str},
        keep_default_na=False,
        na_values=[""],
    )
    return check_predictions(frame, path)


def study_predictions(long: pd.DataFrame, scenarios: list[str]) -> pd.DataFrame:
    """The long predictions of a study's cells (:func:`hils_kit.analyse.collect.collect_results`) in each of
    ``scenarios``: the run is the trained cell (a pooled k-fold row is the run made of its folds' models)."""
    frames = []
    for scenario in scenarios:
        for row in scenario_cells(long, scenario).itertuples(index=False):
            preds = read_predictions(row.predictions)
            keep = [c for c in ("id", "correct", *SCORES) if c in preds]
            seeds = {k: getattr(row, k) for k in ("order_seed", "train_seed") if hasattr(row, k)}
            frames.append(
                preds[keep]
                .rename(columns={"id": "question"})
                .assign(
                    scenario=scenario,
                    model=row.model,
                    dataset=row.dataset,
                    strategy=row.strategy,
                    run=row.cell_id,
                    **seeds,
                )
            )
    frame = pd.concat(frames, ignore_index=True)
    return check_predictions(frame, "the study's predictions")


def run_answers(run_dir: str | Path) -> pd.DataFrame:
    """The right (1) and wrong (0) answers of every trained run of a finished study, one row per test question
    (its id), one column per run (cell id); a question a run did not answer is missing. Pooled k-fold rows are left
    out: each fold's model is a run of its own. The respondents of an IRT fit (scenario ``irt``)."""
    from hils_kit.analyse.collect import collect_results

    long = collect_results(run_dir)
    cells = long[long.get("level", "cell") != "pooled"]
    if cells.empty:
        raise ValueError(f"{run_dir}: no finished cells whose answers could be read")
    columns = {}
    for cell_id, rows in cells.groupby("cell_id", sort=False):
        answers = [read_predictions(path).set_index("id")["correct"] for path in rows["predictions"]]
        joined = pd.concat(answers)
        columns[cell_id] = joined[~joined.index.duplicated()].astype(int)
    return pd.DataFrame(columns)
