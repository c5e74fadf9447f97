"""The two steps a study runs through its notebooks: prepare the data and labels once, then run each cell.

``02_difficulty_labeling`` calls :func:`prepare_data` and :func:`label_questions`; ``03_train_evaluate``
calls :func:`cell_training_table`, :func:`cell_test_sets` and :func:`write_results`. The file names come
from :mod:`hils_kit.study`, so the runner, the notebooks and the analysis agree.

>>> from hils_kit.experiment import difficulty_column
>>> difficulty_column("llm_clusters"), category_column("llm_clusters"), category_column("human")
('difficulty_llm', 'cluster', 'category')
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from hils_kit.labels import read_labels
from hils_kit.loaders import load_questions, save_questions
from hils_kit.paths import atomic_path, write_text_atomic
from hils_kit.splits import kfold, sample_questions, save_split, select, train_test_split
from hils_kit.study import dataset_label, test_file, train_file

log = logging.getLogger(__name__)


def difficulty_column(scenario: str) -> str | None:
    """The labels column a scenario orders by: ``difficulty_human``, ``difficulty_llm`` or None (``none``)."""
    if scenario == "none":
        return None
    return f"difficulty_{scenario.removesuffix('_clusters')}"


def category_column(scenario: str) -> str:
    """``cluster`` for the ``*_clusters`` scenarios (LLM-defined categories), else the data's ``category``."""
    return "cluster" if scenario.endswith("_clusters") else "category"


def _part_ids(table: pd.DataFrame, split: dict) -> dict[str, tuple[list[str], list[str]]]:
    """``{part: (train ids, own test ids)}`` for a holdout or k-fold split."""
    if split["kind"] == "holdout":
        s = train_test_split(table, test_size=float(split["test_fraction"]), seed=int(split["seed"]))
        return {"holdout": (s["train"], s["test"]), "_split": s}
    folds = kfold(table, k=int(split["k"]), seed=int(split["seed"]))
    parts = {f"fold{f['fold']}": (f["train"], f["test"]) for f in folds}
    parts["full"] = (table["id"].astype(str).tolist(), [])
    parts["_split"] = folds
    return parts


def prepare_data(train_data: str, split: dict, parts: dict[str, list[str]], test_sets: list[str],
                 prepare_dir: str | Path, train_format: str | None = None, train_limit: int = 0,
                 test_limit: int = 0) -> pd.DataFrame:
    """Split ``train_data``, sample each part's training and test questions, and write them as kit CSVs.

    Writes ``split.json``, ``train_<part>.csv`` and ``test_<part>__<label>.csv`` into ``prepare_dir``
    (paths from :func:`hils_kit.study.train_file` / :func:`~hils_kit.study.test_file`). Returns one row per
    written file: part, role, label and question count.
    """
    prepare_dir = Path(prepare_dir)
    table = load_questions(train_data, format=train_format)
    ids = _part_ids(table, split)
    save_split(ids.pop("_split"), prepare_dir / "split.json")
    own = dataset_label(train_data)
    external = {dataset_label(s): s for s in test_sets}
    rows = []
    for part, labels in parts.items():
        train_ids, test_ids = ids[part]
        train = sample_questions(select(table, train_ids), train_limit, seed=int(split["seed"]))
        save_questions(train, train_file(prepare_dir, part))
        rows.append({"part": part, "role": "train", "label": own, "questions": len(train)})
        for label in labels:
            if label in (f"{own}_test", own) and label not in external:
                test = select(table, test_ids)
            elif label in external:
                test = load_questions(external[label])
            else:
                raise ValueError(f"test set '{label}' of part '{part}' is neither '{own}_test' nor one of "
                                 f"{', '.join(external) or 'the external test sets'}")
            test = sample_questions(test, test_limit, seed=int(split["seed"]))
            save_questions(test, test_file(prepare_dir, part, label))
            rows.append({"part": part, "role": "test", "label": label, "questions": len(test)})
    return pd.DataFrame(rows)


def training_questions(prepare_dir: str | Path, parts) -> pd.DataFrame:
    """Every question that some part trains on, once."""
    tables = [load_questions(train_file(prepare_dir, part)) for part in parts]
    return pd.concat(tables, ignore_index=True).drop_duplicates("id").reset_index(drop=True)


def label_questions(table: pd.DataFrame, scenarios: list[str], prepare_dir: str | Path,
                    difficulty_models: list[str], debias: bool = True, difficulty_file: str | None = None,
                    cluster_model: str | None = None, cluster_trials: int = 30) -> pd.DataFrame:
    """Labels for ``table`` by scenario, written to ``prepare_dir/labels.csv`` and returned.

    Columns: ``id``; ``difficulty_human`` (examinee error rate) for ``human``; ``difficulty_llm`` for ``llm``
    and ``llm_clusters`` (from ``difficulty_file`` when given, else scored by ``difficulty_models``);
    ``cluster`` for ``*_clusters`` (embeddings of ``cluster_model``, default the first difficulty model).
    """
    from hils_kit.difficulty import human_difficulty, label_difficulty

    prepare_dir = Path(prepare_dir)
    labels = pd.DataFrame({"id": table["id"].astype(str)})
    if "human" in scenarios:
        labels["difficulty_human"] = human_difficulty(table).to_numpy()
    if any(s.startswith("llm") for s in scenarios):
        if difficulty_file:
            given = read_labels(difficulty_file, table, data_rows=table.attrs.get("data_rows"))
            if "difficulty" not in given:
                raise ValueError(f"{difficulty_file}: needs a 'difficulty' column (id,difficulty or "
                                 f"Index,llm_difficulty); has {', '.join(given.columns)}")
            labels["difficulty_llm"] = given["difficulty"].to_numpy()
        else:
            llm = label_difficulty(table, difficulty_models, debias, prepare_dir / "llm_difficulty.csv")
            labels["difficulty_llm"] = llm["difficulty"].to_numpy()
    if any(s.endswith("_clusters") for s in scenarios):
        from hils_kit.categories import label_categories

        result = label_categories(table, cluster_model or difficulty_models[0], prepare_dir / "clusters.csv",
                                  n_trials=cluster_trials)
        labels["cluster"] = [f"cluster {c}" for c in result.labels]
    with atomic_path(prepare_dir / "labels.csv") as tmp:
        labels.to_csv(tmp, index=False)
    return labels


def cell_training_table(prepare_dir: str | Path, part: str, scenario: str) -> pd.DataFrame:
    """The training questions of ``part`` with the scenario's labels as ``difficulty`` (and ``cluster``)."""
    prepare_dir = Path(prepare_dir)
    table = load_questions(train_file(prepare_dir, part))
    labels = pd.read_csv(prepare_dir / "labels.csv", dtype={"id": str})
    table = table.drop(columns=[c for c in labels.columns if c != "id" and c in table]).merge(labels, on="id",
                                                                                             how="left")
    column = difficulty_column(scenario)
    if column is not None:
        if column not in table or table[column].isna().any():
            raise ValueError(f"{prepare_dir / 'labels.csv'}: no '{column}' labels for every question of part "
                             f"'{part}' (scenario '{scenario}')")
        table["difficulty"] = table[column]
    return table


def cell_test_sets(prepare_dir: str | Path, part: str, labels: list[str]) -> dict[str, pd.DataFrame]:
    """The test sets prepared for ``part``, by label."""
    return {label: load_questions(test_file(prepare_dir, part, label)) for label in labels}


def write_results(out_dir: str | Path, cell: dict, metrics: dict, train_summary: dict) -> Path:
    """Write ``results.json`` (cell parameters, metrics per test set, training summary) for the analysis."""
    payload = {"cell": cell, "metrics": metrics, "train": train_summary}
    return write_text_atomic(Path(out_dir) / "results.json", json.dumps(payload, indent=1, default=str))
