"""Deterministic train/test and k-fold splits, stratified by category, saved as id lists.

A split is keyed by its seed and saved as JSON, so every run of a study reuses exactly the same questions.

>>> import pandas as pd
>>> table = pd.DataFrame({"id": [f"q{i}" for i in range(12)], "category": ["a", "b", "c"] * 4})
>>> split = train_test_split(table, test_size=0.25, seed=0)
>>> len(split["train"]), len(split["test"])
(9, 3)
>>> folds = kfold(table, k=4, seed=0)
>>> sorted(len(f["test"]) for f in folds)
[3, 3, 3, 3]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hils_kit.core.paths import write_text_atomic


def _stratified_fold_ids(table: pd.DataFrame, k: int, seed: int, stratify: str | None) -> np.ndarray:
    """A fold number 0..k-1 per row: within each stratum, shuffled rows are dealt round-robin."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(table), dtype=int)
    groups = table.groupby(stratify, sort=True).indices if stratify else {"all": np.arange(len(table))}
    offset = 0
    for _, rows in sorted(groups.items(), key=lambda kv: str(kv[0])):
        rows = rng.permutation(rows)
        folds[rows] = (np.arange(len(rows)) + offset) % k
        offset = (offset + len(rows)) % k  # keeps fold sizes within one of each other overall
    return folds


def train_test_split(
    table: pd.DataFrame, test_size: float | int = 0.2, seed: int = 0, stratify: str | None = "category"
) -> dict:
    """Split ids into ``train`` and ``test``, stratified by ``stratify`` (a column, or None).

    ``test_size`` is a share (0-1) or a count; each category contributes in proportion.
    """
    n = len(table)
    n_test = int(round(test_size * n)) if isinstance(test_size, float) and test_size < 1 else int(test_size)
    if not 0 < n_test < n:
        raise ValueError(f"test_size {test_size} leaves no train or no test questions among {n}")
    rng = np.random.default_rng(seed)
    if stratify:
        # largest remainder allocation of the test count over categories
        counts = table[stratify].value_counts().sort_index()
        quota = counts / n * n_test
        take = np.floor(quota).astype(int)
        rest = (quota - take).sort_values(ascending=False, kind="stable")
        take[rest.index[: n_test - int(take.sum())]] += 1
        test_rows = []
        for cat, m in take.items():
            rows = np.flatnonzero(table[stratify].to_numpy() == cat)
            test_rows.extend(rng.permutation(rows)[:m])
    else:
        test_rows = rng.permutation(n)[:n_test]
    is_test = np.zeros(n, dtype=bool)
    is_test[np.asarray(test_rows, dtype=int)] = True
    ids = table["id"].astype(str).to_numpy()
    return {"seed": seed, "stratify": stratify, "train": ids[~is_test].tolist(), "test": ids[is_test].tolist()}


def kfold(table: pd.DataFrame, k: int = 4, seed: int = 0, stratify: str | None = "category") -> list[dict]:
    """``k`` train/test splits whose test parts partition the table (the paper used 4 folds of LEK)."""
    if not 2 <= k <= len(table):
        raise ValueError(f"k={k} folds need between 2 and {len(table)} questions")
    folds = _stratified_fold_ids(table, k, seed, stratify)
    ids = table["id"].astype(str).to_numpy()
    return [
        {
            "seed": seed,
            "stratify": stratify,
            "fold": f,
            "k": k,
            "train": ids[folds != f].tolist(),
            "test": ids[folds == f].tolist(),
        }
        for f in range(k)
    ]


def save_split(split: dict, path: str | Path) -> Path:
    """Save a split (or a list of folds) as JSON, atomically."""
    return write_text_atomic(path, json.dumps(split, indent=1))


def load_split(path: str | Path) -> dict | list[dict]:
    """Load what :func:`save_split` wrote."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def select(table: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """The rows of ``table`` with these ids, in the order of ``ids``; unknown ids are an error."""
    index = pd.Index(table["id"].astype(str))
    pos = index.get_indexer(ids)
    if (pos < 0).any():
        missing = [i for i, p in zip(ids, pos) if p < 0][:5]
        raise KeyError(f"{int((pos < 0).sum())} split id(s) are not in the table, e.g. {missing}")
    return table.iloc[pos].reset_index(drop=True)


def sample_questions(table: pd.DataFrame, n: int, seed: int = 0, stratify: str | None = "category") -> pd.DataFrame:
    """A seeded sample of ``n`` questions, stratified by ``stratify``, in table order; all when ``n`` is 0 or too big."""
    if n <= 0 or n >= len(table):
        return table.reset_index(drop=True)
    keep = set(train_test_split(table, test_size=int(n), seed=seed, stratify=stratify)["test"])
    return table[table["id"].astype(str).isin(keep)].reset_index(drop=True)
